"""Find lenslet traces on the dome flat and measure their centres and widths.

1. Peaks of the cross-dispersion profile are found in every 4th column of the x-smoothed dome.
2. Peaks are linked along x into traces (a trace is ~280 px of dome light); traces that ran
   into the next one in the same row are split at their flux minimum; short fragments (at the
   detector edge) are kept but flagged.
3. Every column of every trace gets a pixel-integrated Gaussian + constant fit (vectorised
   Gauss-Newton over all traces and columns at once); ``y(x)`` is a robust quadratic fit of the
   centres, ``sigma(x)`` a robust quadratic of the widths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.special import ndtr

from engine.errors import AlgorithmError
from engine.instrument import sedm

COLUMN_STEP = 4
MIN_TRACE_LENGTH_PX = 60
FULL_TRACE_LENGTH_PX = 330
"""Linked traces longer than this are two traces end to end and are split."""
HALF_WINDOW = 3
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


def split_joined(traces: list[np.ndarray]) -> list[np.ndarray]:
    """Split links that ran from one trace into the next of the same row.

    The length of a single trace is measured as the median link length (most links are single
    traces); a link longer than 1.45 times that holds two or more traces end to end. It is cut
    where its smoothed height is lowest within 15 % of a trace length of where the first
    trace should end (its red start plus one length): the faint blue end of a trace is never
    taken for the gap before its neighbour's bright red start.
    """
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


def profile_windows(image: np.ndarray, variance: np.ndarray, cols: np.ndarray, y0: np.ndarray):
    """Rows, data and variance of the ``2*HALF_WINDOW+1``-row window around each ``(col, y0)``."""
    ny = image.shape[0]
    base = np.clip(np.round(y0).astype(int) - HALF_WINDOW, 0, ny - 2 * HALF_WINDOW - 1)
    rows = base[:, None] + np.arange(2 * HALF_WINDOW + 1)[None, :]
    return rows, image[rows, cols[:, None]].astype(np.float64), variance[rows, cols[:, None]].astype(np.float64)


def fit_profiles(
    image: np.ndarray, variance: np.ndarray, cols: np.ndarray, y0: np.ndarray, sigma0: float = 1.2, n_iter: int = 6,
    *, windows=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``b + A * G(y; mu, sigma)`` (pixel-integrated) to many column profiles at once.

    Parameters
    ----------
    image, variance : numpy.ndarray
        Detector image and variance [e-, e-^2].
    cols, y0 : numpy.ndarray
        Shape ``(m,)``: column and first-guess centre of each profile.
    windows : tuple, optional
        ``(rows, data, var)`` from :func:`profile_windows` (e.g. with neighbours removed);
        default: read from ``image``.

    Returns
    -------
    mu, sigma, amplitude, mu_err : numpy.ndarray
        Shape ``(m,)`` each; failed fits are NaN.
    """
    rows, d, v = windows if windows is not None else profile_windows(image, variance, cols, y0)
    w = 1.0 / np.maximum(v, 1.0)
    mu = y0.astype(np.float64).copy()
    sig = np.full(mu.shape, sigma0)
    yy = rows.astype(np.float64)
    for _ in range(n_iter):
        hi = (yy + 0.5 - mu[:, None]) / sig[:, None]
        lo = (yy - 0.5 - mu[:, None]) / sig[:, None]
        g = ndtr(hi) - ndtr(lo)
        phi_hi = np.exp(-0.5 * hi * hi) / np.sqrt(2 * np.pi)
        phi_lo = np.exp(-0.5 * lo * lo) / np.sqrt(2 * np.pi)
        dg_dmu = -(phi_hi - phi_lo) / sig[:, None]
        dg_dsig = -(phi_hi * hi - phi_lo * lo) / sig[:, None]
        amp, bkg = _linear_amp_bkg(d, w, g)
        # Gauss-Newton on (mu, sigma) with A, b at their current optimum (variable projection).
        r = d - amp[:, None] * g - bkg[:, None]
        j1, j2 = amp[:, None] * dg_dmu, amp[:, None] * dg_dsig
        a11, a12, a22 = (w * j1 * j1).sum(1), (w * j1 * j2).sum(1), (w * j2 * j2).sum(1)
        b1, b2 = (w * j1 * r).sum(1), (w * j2 * r).sum(1)
        det = a11 * a22 - a12 * a12
        ok = det > 0
        dmu = np.where(ok, (a22 * b1 - a12 * b2) / np.where(ok, det, 1), 0.0)
        dsig = np.where(ok, (a11 * b2 - a12 * b1) / np.where(ok, det, 1), 0.0)
        mu = mu + np.clip(dmu, -1.0, 1.0)
        sig = np.clip(sig + np.clip(dsig, -0.3, 0.3), 0.6, 3.0)
    mu_err = np.sqrt(np.where(ok, a22 / np.where(ok, det, 1), np.nan))
    bad = ~ok | (np.abs(mu - y0) > 2.5) | (amp <= 0)
    mu = mu.copy()
    mu[bad] = np.nan
    return mu, sig, amp, mu_err


def render_profiles(shape: tuple[int, int], cols: np.ndarray, mu: np.ndarray, sig: np.ndarray, amp: np.ndarray,
                    half: int = 6) -> np.ndarray:
    """Image of Gaussian column profiles (pixel-integrated), ``amp`` electrons each."""
    ny, nx = shape
    good = np.isfinite(mu) & np.isfinite(amp) & (amp > 0)
    c, m, s, a = cols[good], mu[good], sig[good], amp[good]
    rows = np.round(m).astype(int)[:, None] + np.arange(-half, half + 1)[None, :]
    g = ndtr((rows + 0.5 - m[:, None]) / s[:, None]) - ndtr((rows - 0.5 - m[:, None]) / s[:, None])
    ok = (rows >= 0) & (rows < ny)
    out = np.zeros(ny * nx)
    np.add.at(out, (rows * nx + c[:, None])[ok], (a[:, None] * g)[ok])
    return out.reshape(shape)


def deblended_fit(
    image: np.ndarray, variance: np.ndarray, cols: np.ndarray, y0: np.ndarray, n_pass: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Profile fits with the neighbouring traces' light modelled and removed.

    Traces 6.7 px apart are staggered along x, so a faint blue end often sits next to a bright
    red stretch of its neighbour, whose wing then biases a lone Gaussian fit (by >10 % in
    sigma). Each pass renders every fitted profile, subtracts all but the trace's own from its
    window and refits.
    """
    mu, sig, amp, err = fit_profiles(image, variance, cols, y0)
    for _ in range(n_pass - 1):
        mu_f = np.where(np.isfinite(mu), mu, y0)
        model = render_profiles(image.shape, cols, mu_f, sig, amp)
        rows, d, v = profile_windows(image - model, variance, cols, mu_f)
        own = amp[:, None] * (ndtr((rows + 0.5 - mu_f[:, None]) / sig[:, None])
                              - ndtr((rows - 0.5 - mu_f[:, None]) / sig[:, None]))
        d = d + np.where(np.isfinite(own), own, 0.0)
        mu, sig, amp, err = fit_profiles(image, variance, cols, mu_f, windows=(rows, d, v))
    return mu, sig, amp, err


def _linear_amp_bkg(d: np.ndarray, w: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares amplitude and constant for ``d = A g + b`` per row."""
    sw, sg, sgg = w.sum(1), (w * g).sum(1), (w * g * g).sum(1)
    sd, sgd = (w * d).sum(1), (w * g * d).sum(1)
    det = sw * sgg - sg * sg
    det = np.where(np.abs(det) > 0, det, 1.0)
    amp = (sw * sgd - sg * sd) / det
    bkg = (sgg * sd - sg * sgd) / det
    return amp, bkg


def _robust_poly(x: np.ndarray, y: np.ndarray, w: np.ndarray, deg: int, n_iter: int = 3) -> tuple[np.ndarray, float]:
    keep = np.isfinite(y) & np.isfinite(w) & (w > 0)
    coef = np.zeros(deg + 1)
    rms = np.nan
    for _ in range(n_iter):
        if keep.sum() <= deg + 2:
            return coef, np.nan
        coef = np.polynomial.polynomial.polyfit(x[keep], y[keep], deg, w=np.sqrt(w[keep]))
        res = y - np.polynomial.polynomial.polyval(x, coef)
        mad = 1.4826 * np.median(np.abs(res[keep]))
        rms = float(np.sqrt(np.mean(res[keep] ** 2)))
        keep &= np.abs(res) < max(4 * mad, 1e-3)
    return coef, rms


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
    mu, sig, amp, err = deblended_fit(dome, variance, cols, guesses)
    if saturated is not None:
        sat_col = saturated[np.clip(np.round(guesses).astype(int), 0, dome.shape[0] - 1), cols]
        mu[sat_col] = np.nan
    n = len(links)
    x_lo, x_hi, x_mid = np.zeros(n, int), np.zeros(n, int), np.zeros(n)
    ycoef, scoef = np.zeros((n, 3)), np.zeros((n, 3))
    amplitude, rms = np.zeros(n), np.zeros(n)
    complete = np.ones(n, bool)
    order = np.argsort(ids, kind="stable")
    bounds = np.searchsorted(ids[order], np.arange(n + 1))
    for k in range(n):
        sel = order[bounds[k] : bounds[k + 1]]
        c, m, s, a, e = cols[sel], mu[sel], sig[sel], amp[sel], err[sel]
        peak = np.nanmax(a) if np.any(np.isfinite(a)) else 0.0
        lit = np.flatnonzero(a > LIT_FRACTION * peak)
        if lit.size < 10:
            complete[k] = False
            continue
        x_lo[k], x_hi[k] = c[lit[0]], c[lit[-1]]
        x_mid[k] = 0.5 * (x_lo[k] + x_hi[k])
        u = (c - x_mid[k]) / 100.0
        good = (a > LIT_FRACTION * peak) & np.isfinite(m)
        wts = np.where(good, 1.0 / np.maximum(e, 1e-3) ** 2, 0.0)
        ycoef[k], rms[k] = _robust_poly(u, m, wts, 2)
        scoef[k], _ = _robust_poly(u, s, np.where(good, a, 0.0), 2)
        amplitude[k] = float(np.median(a[lit]))
        if x_lo[k] <= 6 or x_hi[k] >= nx - 7 or not np.isfinite(rms[k]):
            complete[k] = False
        if saturated is not None and np.isnan(m[lit]).mean() > 0.2:
            complete[k] = False
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
