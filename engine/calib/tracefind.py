"""Find lenslet traces on the dome flat and measure their centres and widths.

1. Peaks of the cross-dispersion profile are found in every 4th column of the x-smoothed dome.
2. Peaks are linked along x into traces (a trace is ~280 px of dome light); traces that ran
   into the next one in the same row are split at their flux minimum; short fragments (at the
   detector edge) are kept but flagged.
3. Every column of every trace gets a pixel-integrated Gaussian + constant fit, the
   neighbouring traces' modelled light removed (:mod:`engine.calib.profilefit`); ``y(x)`` is a
   robust quadratic fit of the centres, ``sigma(x)`` a robust polynomial of the widths measured
   where the neighbours' light is small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from engine.calib.batched import grouped_robust_poly
from engine.calib.profilefit import deblended_fit, width_laws
from engine.errors import AlgorithmError
from engine.instrument import sedm

COLUMN_STEP = 4
MIN_TRACE_LENGTH_PX = 60
FULL_TRACE_LENGTH_PX = 330
"""Linked traces longer than this are two traces end to end and are split."""
CENTRE_ERROR_FLOOR_PX = 0.005
"""Smallest centre error a column fit is weighted with in ``y(x)`` [pixel] (the profile model's
own accuracy; a near-degenerate fit can claim far less)."""
LIT_FRACTION = 0.02
"""A column is lit when its dome flux exceeds this fraction of the trace's peak."""


@dataclass(frozen=True)
class TraceFit:
    """Measured traces (shape ``(n,)`` arrays unless noted).

    Attributes
    ----------
    x_lo, x_hi : numpy.ndarray
        First and last column lit by the dome (integers).
    ycoef : numpy.ndarray
        Shape ``(n, 3)``: ``y(x) = c0 + c1 u + c2 u^2``, ``u = (x - x_mid) / 100``.
    scoef : numpy.ndarray
        Shape ``(n, 3)``: ``sigma(x)`` in the same form [pixel].
    x_mid : numpy.ndarray
        Reference column of the polynomials.
    amplitude : numpy.ndarray
        Median dome flux per column [e-].
    rms : numpy.ndarray
        Scatter of the per-column centres about ``y(x)`` [pixel].
    complete : numpy.ndarray
        bool: the trace is not cut by the detector edge or a saturated region.
    """

    x_lo: np.ndarray
    x_hi: np.ndarray
    ycoef: np.ndarray
    scoef: np.ndarray
    x_mid: np.ndarray
    amplitude: np.ndarray
    rms: np.ndarray
    complete: np.ndarray

    @property
    def n(self) -> int:
        """Number of traces."""
        return int(self.x_lo.size)

    def y_at(self, x: np.ndarray, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Trace centre rows at columns ``x`` (shape ``(n_idx, m)`` or broadcastable) [pixel]."""
        u = (np.asarray(x, dtype=float) - self.x_mid[idx][:, None]) / 100.0
        c = self.ycoef[idx]
        return c[:, 0:1] + c[:, 1:2] * u + c[:, 2:3] * u * u

    def sigma_at(self, x: np.ndarray, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Cross-dispersion Gaussian sigma at columns ``x`` [pixel]."""
        u = (np.asarray(x, dtype=float) - self.x_mid[idx][:, None]) / 100.0
        c = self.scoef[idx]
        return np.clip(c[:, 0:1] + c[:, 1:2] * u + c[:, 2:3] * u * u, 0.5, 3.0)


def find_peaks_in_columns(image: np.ndarray, step: int = COLUMN_STEP) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Sub-pixel peak rows of the cross-dispersion profile in every ``step``-th column.

    Returns
    -------
    list of (column, rows, heights)
    """
    smooth = uniform_filter1d(image, 5, axis=1)
    cols = np.arange(2, image.shape[1] - 2, step)
    sub = smooth[:, cols]
    ny = image.shape[0]
    out = []
    up = np.vstack([sub[1:], np.full((1, sub.shape[1]), -np.inf)])
    dn = np.vstack([np.full((1, sub.shape[1]), -np.inf), sub[:-1]])
    # Prominence over the lowest point within 3 rows on each side, against the noise.
    valley = np.minimum(minimum_filter1d(sub, 4, axis=0, origin=1), minimum_filter1d(sub, 4, axis=0, origin=-2))
    valley = np.maximum(valley, np.maximum(
        minimum_filter1d(sub, 4, axis=0, origin=1), minimum_filter1d(sub, 4, axis=0, origin=-2)))
    noise = np.sqrt(np.maximum(sub, 0.0) / 5.0 + 25.0)
    is_peak = (sub > up) & (sub >= dn) & (sub - valley > 8.0 * noise)
    for j, col in enumerate(cols):
        rows = np.flatnonzero(is_peak[:, j])
        rows = rows[(rows > 0) & (rows < ny - 1)]
        a, b, c = sub[rows - 1, j], sub[rows, j], sub[rows + 1, j]
        la, lb, lc = (np.log(np.maximum(v, 1e-3)) for v in (a, b, c))
        denom = la - 2 * lb + lc
        off = np.where(denom < 0, 0.5 * (la - lc) / np.where(denom < 0, denom, -1), 0.0)
        out.append((int(col), rows + np.clip(off, -0.5, 0.5), b))
    return out


def link_peaks(peaks: list[tuple[int, np.ndarray, np.ndarray]], tol: float = 0.9, max_gap: int = 2) -> list[np.ndarray]:
    """Link column peaks into traces.

    Returns
    -------
    list of numpy.ndarray
        One ``(m, 3)`` array (column, row, height) per trace.
    """
    active: list[list] = []  # each: [points, last_row, slope, misses]
    done: list[np.ndarray] = []
    for col, rows, heights in peaks:
        if active:
            pred = np.array([a[1] + a[2] * (col - a[0][-1][0]) for a in active])
            order = np.argsort(pred)
            ps = pred[order]
            idx = np.clip(np.searchsorted(ps, rows), 1, max(len(ps) - 1, 1))
            left = np.abs(rows - ps[idx - 1])
            right = np.abs(rows - ps[np.minimum(idx, len(ps) - 1)])
            best = np.where(left <= right, idx - 1, np.minimum(idx, len(ps) - 1))
            dist = np.minimum(left, right)
        else:
            best = np.full(rows.size, -1)
            dist = np.full(rows.size, np.inf)
        claimed = set()
        new_active = []
        matched_of: dict[int, int] = {}
        for i in np.argsort(dist):
            if dist[i] < tol and best[i] >= 0 and int(order[best[i]]) not in claimed:
                a = int(order[best[i]])
                claimed.add(a)
                matched_of[a] = i
        for a_i, a in enumerate(active):
            if a_i in matched_of:
                i = matched_of[a_i]
                pts = a[0]
                pts.append((col, rows[i], heights[i]))
                slope = a[2]
                if len(pts) > 3:
                    slope = (pts[-1][1] - pts[-4][1]) / (pts[-1][0] - pts[-4][0])
                new_active.append([pts, rows[i], slope, 0])
            elif a[3] + 1 <= max_gap:
                new_active.append([a[0], a[1], a[2], a[3] + 1])
            else:
                done.append(np.array(a[0]))
        used = set(matched_of.values())
        for i in range(rows.size):
            if i not in used:
                new_active.append([[(col, rows[i], heights[i])], rows[i], 0.004, 0])
        active = new_active
    done.extend(np.array(a[0]) for a in active)
    return [d for d in done if d[-1, 0] - d[0, 0] >= MIN_TRACE_LENGTH_PX]


RISE_RATIO = 4.0
"""A link is cut before a rise of its height by this factor within :data:`RISE_SPAN` points
(the faint blue end of one trace, then the bright red start of the next in the same row)."""
RISE_SPAN = 3
RISE_MIN_FRACTION = 0.3
"""...to at least this fraction of the link's brightest point (noise in the faint end is no rise)."""


def split_at_rises(t: np.ndarray) -> list[np.ndarray]:
    """Cut a link wherever its height jumps up: one trace's faint blue end, then the next
    trace's bright red start.

    On the densest lattices the traces of a row are only ~13 px apart end to end, the faint
    blue end reaches almost to the next red start, and the peaks link along the whole row
    (seed 126, pitch 40 px: median link 1,484 px for traces of 233 px). A single trace's dome
    profile is smooth (lamp x throughput), so a jump by :data:`RISE_RATIO` within
    :data:`RISE_SPAN` points (12 px) only happens at a junction.

    Parameters
    ----------
    t : numpy.ndarray
        Shape ``(m, 3)``: column, row, height of one link, by column.

    Returns
    -------
    list of numpy.ndarray
        The pieces, in column order.
    """
    h = uniform_filter1d(t[:, 2].astype(float), 3)
    if h.size < 2 * RISE_SPAN + 2:
        return [t]
    ahead = np.max(np.lib.stride_tricks.sliding_window_view(np.r_[h[1:], np.zeros(RISE_SPAN)], RISE_SPAN), axis=1)
    rise = (ahead > RISE_RATIO * np.maximum(h, 1e-9)) & (ahead > RISE_MIN_FRACTION * h.max())
    cuts, last = [], -1
    for i in np.flatnonzero(rise):
        if i > last + RISE_SPAN and i > 0:  # cut after the faintest point before the jump
            c = int(i + np.argmin(t[i: i + RISE_SPAN + 1, 2]))
            cuts.append(c)
            last = c
    pieces, start = [], 0
    for c in cuts:
        pieces.append(t[start: c + 1])
        start = c + 1
    pieces.append(t[start:])
    return [p for p in pieces if len(p)]


def split_joined(traces: list[np.ndarray]) -> list[np.ndarray]:
    """Split links that ran from one trace into the next of the same row.

    First at every rise of the height (:func:`split_at_rises`). Then the length of a single
    trace is measured as the median link length (most links are now single traces); a link
    longer than 1.45 times that still holds two or more traces end to end. It is cut where its
    smoothed height is lowest within 15 % of a trace length of where the first trace should
    end (its red start plus one length): the faint blue end of a trace is never taken for the
    gap before its neighbour's bright red start.
    """
    traces = [piece for t in traces for piece in split_at_rises(t)]
    lengths = np.array([t[-1, 0] - t[0, 0] for t in traces])
    single = float(np.median(lengths)) if lengths.size else FULL_TRACE_LENGTH_PX
    single = min(single, FULL_TRACE_LENGTH_PX)
    out = []
    stack = list(traces)
    while stack:
        t = stack.pop()
        if t[-1, 0] - t[0, 0] <= 1.45 * single:
            out.append(t)
            continue
        h = uniform_filter1d(t[:, 2], 3)
        expected = t[0, 0] + single
        near = np.flatnonzero(np.abs(t[:, 0] - expected) <= 0.15 * single)
        if near.size == 0:
            near = np.arange(len(t) // 6, len(t) - len(t) // 6)
        cut = int(near[np.argmin(h[near])])
        stack.extend([t[: cut + 1], t[cut + 1 :]])
    return [t for t in out if t[-1, 0] - t[0, 0] >= MIN_TRACE_LENGTH_PX]


def measure_traces(dome: np.ndarray, variance: np.ndarray, saturated: np.ndarray | None = None) -> TraceFit:
    """Find and measure every lenslet trace on a dome flat.

    Parameters
    ----------
    dome, variance : numpy.ndarray
        Shape ``CCD_SHAPE`` master dome [e-] and its variance.
    saturated : numpy.ndarray, optional
        Saturated pixels (their columns are not used).

    Raises
    ------
    AlgorithmError
        Too few traces found (a dark or saturated dome).
    """
    links = split_joined(link_peaks(find_peaks_in_columns(dome)))
    if len(links) < 200:
        raise AlgorithmError(f"only {len(links)} traces found on the dome flat (lamp off or dome saturated?)",
                             {"n_traces": len(links)})
    nx = dome.shape[1]
    ids, cols, guesses = [], [], []
    for k, t in enumerate(links):
        c = np.arange(int(t[0, 0]), int(t[-1, 0]) + 1)
        ids.append(np.full(c.size, k))
        cols.append(c)
        guesses.append(np.interp(c, t[:, 0], t[:, 1]))
    ids, cols, guesses = np.concatenate(ids), np.concatenate(cols), np.concatenate(guesses)
    mu, sig, amp, err = deblended_fit(dome, variance, cols, guesses, ids=ids)
    if saturated is not None:
        sat_col = saturated[np.clip(np.round(guesses).astype(int), 0, dome.shape[0] - 1), cols]
        mu[sat_col] = np.nan
    n = len(links)
    x_lo, x_hi, x_mid = np.zeros(n, int), np.zeros(n, int), np.zeros(n)
    amplitude = np.zeros(n)
    complete = np.ones(n, bool)
    lit_traces = np.zeros(n, bool)  # at least 10 lit columns
    good = np.zeros(cols.size, bool)  # lit and fitted: the profiles the laws are fitted to
    order = np.argsort(ids, kind="stable")
    bounds = np.searchsorted(ids[order], np.arange(n + 1))
    for k in range(n):
        sel = order[bounds[k] : bounds[k + 1]]
        c, m, a = cols[sel], mu[sel], amp[sel]
        peak = np.nanmax(a) if np.any(np.isfinite(a)) else 0.0
        lit = np.flatnonzero(a > LIT_FRACTION * peak)
        if lit.size < 10:
            complete[k] = False
            continue
        lit_traces[k] = True
        x_lo[k], x_hi[k] = c[lit[0]], c[lit[-1]]
        x_mid[k] = 0.5 * (x_lo[k] + x_hi[k])
        good[sel] = (a > LIT_FRACTION * peak) & np.isfinite(m)
        amplitude[k] = float(np.median(a[lit]))
        if x_lo[k] <= 6 or x_hi[k] >= nx - 7:
            complete[k] = False
        if saturated is not None and np.isnan(m[lit]).mean() > 0.2:
            complete[k] = False
    u = (cols - x_mid[ids]) / 100.0
    wts = np.where(good, 1.0 / np.maximum(err, CENTRE_ERROR_FLOOR_PX) ** 2, 0.0)
    ycoef, rms = grouped_robust_poly(ids, u, np.where(good, mu, np.nan), wts, 2, n)
    scoef, has_law = width_laws(ids, u, sig, np.where(good, amp, 0.0), n)
    # crowded all along: the night's typical width
    scoef[~has_law] = [float(np.nanmedian(sig)) if np.isfinite(sig).any() else 1.2, 0, 0]
    rms[~lit_traces] = 0.0
    ycoef[~lit_traces] = 0.0
    scoef[~lit_traces] = 0.0
    complete &= np.isfinite(rms)
    return TraceFit(x_lo=x_lo, x_hi=x_hi, ycoef=ycoef, scoef=scoef, x_mid=x_mid, amplitude=amplitude, rms=rms,
                    complete=complete)


def check_saturation(saturated: np.ndarray) -> None:
    """Refuse a dome whose usable region is largely saturated."""
    cx, cy = (int(v) for v in sedm.USABLE_CENTER_PX)
    core = saturated[cy - 500 : cy + 500, cx - 500 : cx + 500]
    frac = float(core.mean())
    if frac > 0.001:
        raise AlgorithmError(
            f"the dome flat is saturated ({100 * frac:.2f} % of the central pixels at the digital limit): "
            "take a shorter dome exposure", {"saturated_fraction": frac},
        )
