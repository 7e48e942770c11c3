"""Column-profile fits of the dome's traces: pixel-integrated Gaussians, deblended from their neighbours.

Every column of every trace gets a pixel-integrated Gaussian + constant fit (vectorised
Gauss-Newton over all traces and columns at once, :func:`fit_profiles`), with the neighbouring
traces' modelled light removed (:func:`deblended_fit`); each trace's widths become a smooth
robust polynomial along x (:func:`width_laws`). :mod:`engine.calib.tracefind` finds the traces
and turns these fits into each trace's ``y(x)`` and ``sigma(x)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from engine.calib.batched import cholesky_batched, cholesky_solve, grouped_robust_poly

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


__all__ = ["CONTAMINATION_LIMIT", "HALF_WINDOW", "ISOLATED_GAP_PX", "ITER_PER_PASS", "SIGMA_BOUNDS_PX", "column_gaps",
           "deblended_fit", "fit_profiles", "pixel_gaussian", "profile_windows", "render_profiles", "typical_width",
           "width_laws"]
