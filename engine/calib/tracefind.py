"""Find lenslet traces on the dome flat and measure their centres and widths.

1. Peaks of the cross-dispersion profile are found in every 4th column of the x-smoothed dome.
2. Peaks are linked along x into traces (a trace is ~280 px of dome light); traces that ran
   into the next one in the same row are split at their flux minimum; short fragments (at the
   detector edge) are kept but flagged.
3. Every column of every trace gets a pixel-integrated Gaussian + constant fit (vectorised
   Gauss-Newton over all traces and columns at once, the neighbouring traces' modelled light
   removed: :func:`deblended_fit`); ``y(x)`` is a robust quadratic fit of the centres,
   ``sigma(x)`` a robust polynomial of the widths measured where the neighbours' light is small
   (:func:`width_law`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.special import ndtr

from engine.calib.batched import cholesky_batched, cholesky_solve, grouped_robust_poly
from engine.errors import AlgorithmError
from engine.instrument import sedm

COLUMN_STEP = 4
MIN_TRACE_LENGTH_PX = 60
FULL_TRACE_LENGTH_PX = 330
"""Linked traces longer than this are two traces end to end and are split."""
HALF_WINDOW = 3
SIGMA_BOUNDS_PX = (0.6, 3.0)
"""Range of a column profile's fitted width [pixel]; a fit that ends at a bound is rejected."""
CONTAMINATION_LIMIT = 0.3
"""A column's width is measured only where the neighbours' light in its window is below this
fraction of the trace's own (elsewhere a brighter neighbour's model error is taken for wing)."""
ISOLATED_GAP_PX = 6.5
"""A column profile is isolated when no other trace's centre is this close in its column
[pixel] (the night's typical width is measured on those)."""
ITER_PER_PASS = 2
"""Gauss-Newton iterations of each deblending pass's fits (warm-started from the last pass;
5 passes of 2 put the densest lattice's widths within 0.65 % rms, 3 of 2 within 1.4 %)."""
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


def profile_windows(image: np.ndarray, variance: np.ndarray, cols: np.ndarray, y0: np.ndarray):
    """Rows, data and variance of the ``2*HALF_WINDOW+1``-row window around each ``(col, y0)``."""
    ny = image.shape[0]
    base = np.clip(np.round(y0).astype(int) - HALF_WINDOW, 0, ny - 2 * HALF_WINDOW - 1)
    rows = base[:, None] + np.arange(2 * HALF_WINDOW + 1)[None, :]
    return rows, image[rows, cols[:, None]].astype(np.float64), variance[rows, cols[:, None]].astype(np.float64)


def fit_profiles(
    image: np.ndarray, variance: np.ndarray, cols: np.ndarray, y0: np.ndarray, sigma0: float | np.ndarray = 1.2,
    n_iter: int = 6, *, windows=None, fit_sigma: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``b + A * G(y; mu, sigma)`` (pixel-integrated) to many column profiles at once.

    A Gauss-Newton on all four parameters together (one 4x4 normal system per profile). Within
    the +-3-row window a wide profile's wings and the constant are nearly degenerate; solving
    ``(mu, sigma)`` with ``(A, b)`` held at their optimum (variable projection without the
    coupling term) crawled there: after 6 iterations from sigma 1.2 a sigma of 1.55 px came out
    7 % narrow on noise-free profiles (measured; every dome's widths, hence its flat, followed).
    The full step converges in 3-5 iterations (to < 0.01 % on noise-free profiles, 0.9-1.6 px).

    Parameters
    ----------
    image, variance : numpy.ndarray
        Detector image and variance [e-, e-^2].
    cols, y0 : numpy.ndarray
        Shape ``(m,)``: column and first-guess centre of each profile.
    sigma0 : float or numpy.ndarray
        Starting width (or shape ``(m,)``: one per profile) [pixel].
    n_iter : int
        Gauss-Newton iterations.
    windows : tuple, optional
        ``(rows, data, var)`` from :func:`profile_windows` (e.g. with neighbours removed);
        default: read from ``image``.
    fit_sigma : bool
        ``False``: the widths stay at ``sigma0`` (a 3-parameter fit).

    Returns
    -------
    mu, sigma, amplitude, mu_err : numpy.ndarray
        Shape ``(m,)`` each [pixel, pixel, e-, pixel]; failed fits have ``mu`` NaN.
    """
    rows, d, v = windows if windows is not None else profile_windows(image, variance, cols, y0)
    usable = np.isfinite(d) & np.isfinite(v)  # a NaN pixel (masked defect) weighs nothing
    w = np.where(usable, 1.0 / np.maximum(np.where(usable, v, 1.0), 1.0), 0.0)
    d = np.where(usable, d, 0.0)
    mu = y0.astype(np.float64).copy()
    sig = np.broadcast_to(np.asarray(sigma0, np.float64), mu.shape).copy()
    sig[~np.isfinite(sig)] = 1.2
    yy = rows.astype(np.float64)
    g, dg_dmu, dg_dsig = _profile_and_derivatives(yy, mu, sig)
    amp, bkg = _linear_amp_bkg(d, w, g)
    n_par = 4 if fit_sigma else 3
    ok = np.ones(mu.shape, bool)
    chol = None
    for _ in range(n_iter):
        r = d - amp[:, None] * g - bkg[:, None]
        normal, rhs = _normal_equations(w, r, g, amp[:, None] * dg_dmu, amp[:, None] * dg_dsig if fit_sigma else None)
        chol, ok = cholesky_batched(normal)
        step = [np.where(ok, x, 0.0) for x in cholesky_solve(chol, rhs)]
        amp = amp + step[0]
        bkg = bkg + step[1]
        mu = mu + np.clip(step[2], -1.0, 1.0)
        if fit_sigma:
            sig = np.clip(sig + np.clip(step[3], -0.3, 0.3), *SIGMA_BOUNDS_PX)
        g, dg_dmu, dg_dsig = _profile_and_derivatives(yy, mu, sig)
    amp, bkg = _linear_amp_bkg(d, w, g)
    if chol is None:
        mu_err = np.full(mu.shape, np.nan)
    else:
        unit_mu = [np.full(mu.shape, float(i == 2)) for i in range(n_par)]
        mu_err = np.sqrt(np.where(ok, np.abs(cholesky_solve(chol, unit_mu)[2]), np.nan))
    bad = ~ok | (np.abs(mu - y0) > 2.5) | (amp <= 0)
    if fit_sigma:  # a width at its bound is a fit to something else (a hot pixel, a bad column, no light)
        bad |= (sig <= SIGMA_BOUNDS_PX[0] + 0.01) | (sig >= SIGMA_BOUNDS_PX[1] - 0.01)
    mu = mu.copy()
    mu[bad] = np.nan
    return mu, sig, amp, mu_err


def _normal_equations(w: np.ndarray, r: np.ndarray, *jac: np.ndarray | None) -> tuple[list, list]:
    """Weighted normal equations of a profile fit.

    ``jac`` holds the Jacobian's columns except the constant's, each shape ``(m, k)``: the
    amplitude's first, then the others (``None`` entries are dropped); the constant's column
    (all ones) becomes the second parameter. Returns the symmetric matrix as nested lists
    ``normal[i][j]`` (``j <= i``) and the right-hand side ``rhs[i]``, each entry a ``(m,)``
    array: contiguous per-entry arrays keep the batched solve memory-bound.
    """
    cols = [jac[0], None, *[j for j in jac[1:] if j is not None]]
    weighted = [w if c is None else w * c for c in cols]
    normal = [[np.einsum("mk->m", weighted[i]) if cols[j] is None else np.einsum("mk,mk->m", weighted[i], cols[j])
               for j in range(i + 1)] for i in range(len(cols))]
    rhs = [np.einsum("mk,mk->m", wc, r) for wc in weighted]
    return normal, rhs


def pixel_gaussian(rows: np.ndarray, mu: np.ndarray, sig: np.ndarray) -> np.ndarray:
    """Unit Gaussians integrated over pixel rows.

    Parameters
    ----------
    rows : numpy.ndarray
        Shape ``(m, k)``: row indices [pixel].
    mu, sig : numpy.ndarray
        Shape ``(m,)``: centre and sigma of each profile [pixel].

    Returns
    -------
    numpy.ndarray
        Shape ``(m, k)``: the fraction of each profile in each row.
    """
    return ndtr((rows + 0.5 - mu[:, None]) / sig[:, None]) - ndtr((rows - 0.5 - mu[:, None]) / sig[:, None])


def _profile_and_derivatives(yy: np.ndarray, mu: np.ndarray, sig: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-integrated unit Gaussian over consecutive rows ``yy`` (shape ``(m, k)``, as
    :func:`profile_windows` gives them) and its ``mu``, ``sigma`` derivatives, each shape
    ``(m, k)``. The ``k + 1`` pixel edges are evaluated once (a row's upper edge is the next
    row's lower one)."""
    inv_sig = (1.0 / sig)[:, None]
    z = ((yy[:, :1] - 0.5 - mu[:, None]) + np.arange(yy.shape[1] + 1.0)[None, :]) * inv_sig
    cdf = ndtr(z)
    phi = np.square(z)
    phi *= -0.5
    np.exp(phi, out=phi)
    phi *= inv_sig * (1.0 / np.sqrt(2 * np.pi))  # the density over sigma
    phi_z = phi * z
    return cdf[:, 1:] - cdf[:, :-1], phi[:, :-1] - phi[:, 1:], phi_z[:, :-1] - phi_z[:, 1:]


def render_profiles(shape: tuple[int, int], cols: np.ndarray, mu: np.ndarray, sig: np.ndarray, amp: np.ndarray,
                    half: int = 6) -> np.ndarray:
    """Image of Gaussian column profiles (pixel-integrated), ``amp`` electrons each."""
    ny, nx = shape
    good = np.isfinite(mu) & np.isfinite(amp) & (amp > 0)
    c, m, s, a = cols[good], mu[good], sig[good], amp[good]
    rows = np.round(m).astype(int)[:, None] + np.arange(-half, half + 1)[None, :]
    g = pixel_gaussian(rows, m, s)
    ok = (rows >= 0) & (rows < ny)
    out = np.zeros(ny * nx)
    np.add.at(out, (rows * nx + c[:, None])[ok], (a[:, None] * g)[ok])
    return out.reshape(shape)


def deblended_fit(
    image: np.ndarray, variance: np.ndarray, cols: np.ndarray, y0: np.ndarray, n_pass: int = 5,
    ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Profile fits with the neighbouring traces' light modelled and removed.

    Traces 4-7 px apart are staggered along x, so a faint blue end often sits next to a bright
    red stretch of its neighbour, whose wing then biases a lone Gaussian fit (by >10 % in
    sigma), and on the densest lattices two profiles 5 px apart, one four times the other, fit
    as one wide one. So:

    1. the night's typical width is measured on isolated profiles (no other trace within
       :data:`ISOLATED_GAP_PX` in the same column);
    2. every profile is fitted with that width held (centres and amplitudes only);
    3. each pass renders every profile but the trace's own, subtracts it from the window, and
       fits the width where the neighbours' light is small (:data:`CONTAMINATION_LIMIT`); each
       trace's widths become a smooth robust quadratic along x (``ids`` given), and centres and
       amplitudes are refitted with that width held.

    Parameters
    ----------
    image, variance : numpy.ndarray
        Detector image and variance [e-, e-^2].
    cols, y0 : numpy.ndarray
        Shape ``(m,)``: column and first-guess centre of each profile.
    n_pass : int
        Passes with the neighbours removed.
    ids : numpy.ndarray, optional
        Shape ``(m,)`` int: the trace each profile belongs to.

    Returns
    -------
    mu, sigma, amplitude, mu_err : numpy.ndarray
        Shape ``(m,)`` each [pixel, pixel, e-, pixel] (see :func:`fit_profiles`); ``sigma`` is
        the column's own width measurement, NaN where the neighbours' light was too strong.
    """
    sigma0 = typical_width(image, variance, cols, y0)
    sig_smooth = np.full(cols.size, sigma0)
    mu, _, amp, err = fit_profiles(image, variance, cols, y0, sigma0=sigma0, fit_sigma=False)
    sig = np.full(cols.size, np.nan)
    for _ in range(n_pass):
        mu_f = np.where(np.isfinite(mu), mu, y0)
        amp = np.where(np.isfinite(mu), amp, 0.0)  # a failed fit's amplitude is no model of anything
        model = render_profiles(image.shape, cols, mu_f, sig_smooth, amp)
        rows, d, v = profile_windows(image - model, variance, cols, mu_f)
        own = amp[:, None] * pixel_gaussian(rows, mu_f, sig_smooth)
        own = np.where(np.isfinite(own), own, 0.0)
        others = image[rows, cols[:, None]] - d - own  # the neighbours' modelled light in the window
        d = d + own
        contamination = np.einsum("mk->m", others) / np.maximum(np.einsum("mk->m", own), 1e-9)
        m_free, sig, _, _ = fit_profiles(image, variance, cols, mu_f, sigma0=sig_smooth, n_iter=ITER_PER_PASS,
                                         windows=(rows, d, v))
        sig = np.where(np.isfinite(m_free) & (contamination < CONTAMINATION_LIMIT), sig, np.nan)
        sig_smooth = _smooth_widths(cols, sig, amp, ids, sigma0)
        mu, _, amp, err = fit_profiles(image, variance, cols, mu_f, sigma0=sig_smooth, n_iter=ITER_PER_PASS,
                                       windows=(rows, d, v), fit_sigma=False)
    return mu, sig, amp, err


def typical_width(image: np.ndarray, variance: np.ndarray, cols: np.ndarray, y0: np.ndarray) -> float:
    """Median width of the isolated, well-lit column profiles [pixel].

    Parameters
    ----------
    image, variance : numpy.ndarray
        Detector image and variance [e-, e-^2].
    cols, y0 : numpy.ndarray
        Shape ``(m,)``: column and first-guess centre of each profile.

    Returns
    -------
    float
        The median fitted sigma of profiles with no other profile within
        :data:`ISOLATED_GAP_PX` in their column (all profiles when fewer than 100 are isolated;
        1.2 when none fits).
    """
    isolated = column_gaps(cols, y0) >= ISOLATED_GAP_PX
    pick = np.flatnonzero(isolated) if isolated.sum() >= 100 else np.arange(cols.size)
    pick = pick[:: max(1, pick.size // 20000)]
    mu, sig, amp, _ = fit_profiles(image, variance, cols[pick], y0[pick])
    good = np.isfinite(mu) & (amp > 0.1 * np.nanmax(amp, initial=0.0))
    return float(np.median(sig[good])) if good.any() else 1.2


def column_gaps(cols: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Distance from each profile to the nearest other profile in its column.

    Parameters
    ----------
    cols, y : numpy.ndarray
        Shape ``(m,)``: column and centre of each profile [pixel].

    Returns
    -------
    numpy.ndarray
        Shape ``(m,)`` [pixel]; ``inf`` for a profile alone in its column.
    """
    order = np.lexsort((y, cols))
    c, yy = cols[order], y[order]
    same_prev = np.r_[False, c[1:] == c[:-1]]
    gap_prev = np.where(same_prev, np.r_[np.inf, np.diff(yy)], np.inf)
    gap_next = np.r_[gap_prev[1:], np.inf]
    out = np.empty(cols.size)
    out[order] = np.minimum(gap_prev, gap_next)
    return out


def width_laws(group: np.ndarray, u: np.ndarray, sig: np.ndarray, weight: np.ndarray, n_traces: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Each trace's ``sigma(u)``: a robust polynomial of its measured widths.

    Quadratic where the measured columns span at least 60 % of the trace, linear from 30 %,
    a constant below (a quadratic fitted on one end of a trace and read at the other was 14 %
    off on the densest lattice).

    Parameters
    ----------
    group : numpy.ndarray
        Shape ``(m,)`` int in ``[0, n_traces)``: the trace of each column profile.
    u : numpy.ndarray
        Shape ``(m,)``: the column coordinate (columns / 100, any per-trace origin).
    sig : numpy.ndarray
        Shape ``(m,)``: measured widths, NaN where not measured [pixel].
    weight : numpy.ndarray
        Shape ``(m,)``: weights (the amplitude; <= 0: not used).
    n_traces : int
        Number of traces.

    Returns
    -------
    coef : numpy.ndarray
        Shape ``(n_traces, 3)``: coefficients in ``u`` (unused orders 0).
    ok : numpy.ndarray
        Shape ``(n_traces,)`` bool: a law was fitted (at least 10 measured columns).
    """
    measured = np.isfinite(sig) & (weight > 0)
    n_measured = np.bincount(group[measured], minlength=n_traces)
    span = _group_span(group, u, np.ones(u.shape, bool), n_traces)
    coverage = _group_span(group, u, measured, n_traces) / np.maximum(span, 1e-9)
    deg = np.where(coverage >= 0.6, 2, np.where(coverage >= 0.3, 1, 0))
    coef, rms = grouped_robust_poly(group, u, np.where(measured, sig, np.nan), np.where(measured, weight, 0.0), deg,
                                    n_traces)
    return coef, (n_measured >= 10) & np.isfinite(rms)


def _group_span(group: np.ndarray, x: np.ndarray, use: np.ndarray, n_groups: int) -> np.ndarray:
    """``max - min`` of ``x[use]`` in each group (0 for a group with none)."""
    hi = np.full(n_groups, -np.inf)
    lo = np.full(n_groups, np.inf)
    np.maximum.at(hi, group[use], x[use])
    np.minimum.at(lo, group[use], x[use])
    return np.where(hi >= lo, hi - lo, 0.0)


def _smooth_widths(cols: np.ndarray, sig: np.ndarray, amp: np.ndarray, ids: np.ndarray | None,
                   sigma0: float) -> np.ndarray:
    """Each profile's width as its trace's robust polynomial along x of the measured ``sig``
    (:func:`width_laws`; ``ids`` given; the night's ``sigma0`` for a trace with fewer than 10
    measured) [pixel]."""
    if ids is None:
        return np.where(np.isfinite(sig), sig, sigma0)
    n = int(ids.max()) + 1
    mean_col = np.bincount(ids, weights=cols, minlength=n) / np.maximum(np.bincount(ids, minlength=n), 1)
    u = (cols - mean_col[ids]) / 100.0
    weight = np.where(np.isfinite(sig) & (amp > 0), amp, 0.0)
    coef, ok = width_laws(ids, u, sig, weight, n)
    c = coef[ids]
    law = np.clip(c[:, 0] + u * (c[:, 1] + u * c[:, 2]), *SIGMA_BOUNDS_PX)
    return np.where(ok[ids], law, sigma0)


def _linear_amp_bkg(d: np.ndarray, w: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares amplitude and constant for ``d = A g + b`` per row."""
    wg = w * g
    sw, sg, sgg = np.einsum("mk->m", w), np.einsum("mk->m", wg), np.einsum("mk,mk->m", wg, g)
    sd, sgd = np.einsum("mk,mk->m", w, d), np.einsum("mk,mk->m", wg, d)
    det = sw * sgg - sg * sg
    det = np.where(np.abs(det) > 0, det, 1.0)
    amp = (sw * sgd - sg * sd) / det
    bkg = (sgg * sd - sg * sgd) / det
    return amp, bkg


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
