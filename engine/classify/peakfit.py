"""Correlation-peak centre, height and width, vectorised over rows (SNID ``peakfit``).

For each correlation function: the highest positive value among the allowed lags; if it is a
local maximum, a quartic (a parabola when fewer than 8 points) is least-squares fitted between
the inflection points widened by 20 %, never narrower than the half-maximum points nor wider
than the zero crossings; the range shrinks while the fit rms exceeds 1 % of the peak and
widens when the polynomial never reaches half maximum. The centre is the polynomial's maximum
(Newton), the height its value there, the width the distance between its half-maximum points
(Newton from a 0.1-step bracket search). This follows Tonry's ``peakfit``/``quarticpeak``/
``parabolapeak`` in SNID 5.0 (Blondin & Tonry 2007).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.classify.correlate import masked_argmax

EXTRA = np.float32(0.2)
"""Fractional widening of the inflection-point range."""
ERRMAX = 0.01
"""Largest accepted fit rms relative to the peak."""
NEWTON_ACC = 1e-3
"""Newton convergence tolerance [bins]."""
MAXFIT = 512
"""Largest fit range [bins]."""


@dataclass(frozen=True)
class PeakFit:
    """Fitted peaks, each attribute shape ``(n,)``.

    Attributes
    ----------
    center : numpy.ndarray
        Peak lag [bins], in ``[0, nw)`` up to a fraction (before wrapping).
    height : numpy.ndarray
        Fitted peak value (the raw maximum when no fit was possible).
    width : numpy.ndarray
        Full width at half maximum [bins]; 0 when no fit was possible or widths were not
        requested.
    valid : numpy.ndarray
        Bool: a positive maximum exists among the allowed lags.
    """

    center: np.ndarray
    height: np.ndarray
    width: np.ndarray
    valid: np.ndarray


def _first(cond: np.ndarray, fill: int) -> np.ndarray:
    """Index of the first true element along axis 1, ``fill`` where none."""
    idx = cond.argmax(axis=1)
    return np.where(cond[np.arange(cond.shape[0]), idx], idx, fill)


def _poly(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Evaluate rows of coefficients ``a`` (n, k), lowest order first, at ``x`` (n,)."""
    out = np.zeros_like(x)
    for j in range(a.shape[1] - 1, -1, -1):
        out = a[:, j] + x * out
    return out


def _deriv(a: np.ndarray) -> np.ndarray:
    return a[:, 1:] * np.arange(1, a.shape[1])


def _newton_scalar(f: np.ndarray, df: np.ndarray, x: float, steps: int) -> float:
    """:func:`_newton` for one row, continuing for at most ``steps`` steps."""
    cf, cd = [float(v) for v in f[::-1]], [float(v) for v in df[::-1]]
    for _ in range(steps):
        pf = pd = 0.0
        for c in cf:
            pf = pf * x + c
        for c in cd:
            pd = pd * x + c
        if pd == 0.0 or not math.isfinite(pf) or not math.isfinite(pd):
            return math.nan
        xn = x - pf / pd
        if abs(xn - x) < NEWTON_ACC:
            return 0.5 * (xn + x)
        x = xn
    return x


def _newton(f: np.ndarray, df: np.ndarray, x: np.ndarray) -> np.ndarray:
    """SNID's Newton iteration for roots of the polynomials ``f`` (rows), derivative ``df``:
    at most 50 steps, stop when a step is below 1e-3 and return the mean of the last two
    iterates (the last iterate when it never converges)."""
    x = np.asarray(x, dtype=float).copy()
    out = x.copy()
    idx = np.arange(x.size)
    fa, dfa, xa = f, df, x
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for step in range(50):
            if idx.size <= 8:
                for j in range(idx.size):
                    out[idx[j]] = _newton_scalar(fa[j], dfa[j], float(xa[j]), 50 - step)
                break
            xn = xa - _poly(fa, xa) / _poly(dfa, xa)
            conv = np.abs(xn - xa) < NEWTON_ACC
            out[idx[conv]] = 0.5 * (xn[conv] + xa[conv])
            keep = ~conv
            out[idx[keep]] = xn[keep]
            if not keep.any():
                break
            idx, fa, dfa, xa = idx[keep], fa[keep], dfa[keep], xn[keep]
    return out


def quartic_peak(a: np.ndarray, xl: np.ndarray, xr: np.ndarray, *,
                 width: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre, height, width and no-root flag of quartics ``a`` (n, 5) (SNID ``quarticpeak``).

    The search starts at ``x = 0``; ``xl``/``xr`` are first guesses of the half-maximum points.
    With ``width=False`` the half-maximum points are only bracketed (which sets the no-root
    flag) and the width is returned as 0.
    """
    d1 = _deriv(a)
    x0 = _newton(d1, _deriv(d1), np.zeros(a.shape[0]))
    h = _poly(a, x0)
    w, noroot = half_max_width(a, x0, h, xl, xr, refine=width)
    return x0, h, w, noroot


def half_max_width(a: np.ndarray, x0: np.ndarray, h: np.ndarray, xl: np.ndarray,
                   xr: np.ndarray, *, refine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Width between the half-maximum points of quartics ``a`` (n, 5) peaking at ``x0`` with
    height ``h``: each point is bracketed in 0.1 steps from ``x0`` towards the guess
    ``xl``/``xr`` and refined by Newton (the guess itself where no crossing is found, which
    sets the no-root flag). Without ``refine`` only the flag is computed (width 0)."""
    q = a.copy()
    q[:, 0] -= 0.5 * h
    dq = _deriv(a)
    noroot = np.zeros(a.shape[0], dtype=bool)
    roots = []
    s = np.arange(1, 31) * float(np.float32(0.1))
    for x1 in (xl.astype(float), xr.astype(float)):
        pts = x0[:, None] + s[None, :] * (x1 - x0)[:, None]
        vals = np.zeros_like(pts)
        for j in range(q.shape[1] - 1, -1, -1):
            vals = q[:, j:j + 1] + pts * vals
        below = vals < 0
        first = below.argmax(axis=1)
        found = below[np.arange(a.shape[0]), first]
        noroot |= ~found
        if refine:
            start = (s[first] - 0.05) * (x1 - x0) + x0
            roots.append(np.where(found, _newton(q, dq, start), x1))
    width = roots[1] - roots[0] if refine else np.zeros(a.shape[0])
    return width, noroot


def parabola_peak(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre, height, width and no-root flag of parabolas ``a`` (n, 3) (SNID ``parabolapeak``)."""
    a0, a1, a2 = a[:, 0], a[:, 1], a[:, 2]
    flat = a2 == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        x0 = np.where(flat, 0.0, -a1 / (2 * a2))
        h = np.where(flat, 1.0, a0 - a1 * a1 / (4 * a2))
        w2 = -2 * h / a2
    w = np.where(flat, 1.0, np.sign(w2) * np.sqrt(np.abs(w2)))
    return x0, h, w, flat


def _fit_window(cfn: np.ndarray, rows: np.ndarray, imax: np.ndarray, f1: np.ndarray,
                f2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares quartic/parabola over ``[f1, f2]`` (absolute lags) of the given rows.

    Returns the coefficients in ``u = lag - imax`` (shape ``(n, 5)``, zeros above the fitted
    order) and the fit rms. Rows are grouped by window size to keep the arrays small.
    """
    need = np.maximum(np.abs(f1 - imax), np.abs(f2 - imax))
    coef = np.zeros((rows.size, 5))
    rms = np.zeros(rows.size)
    lower = -1
    for upper in (16, 32, 64, 128, 1 << 30):
        sel = (need > lower) & (need <= upper)
        lower = upper
        if sel.any():
            coef[sel], rms[sel] = _fit_bucket(cfn, rows[sel], imax[sel], f1[sel], f2[sel])
    return coef, rms


def _fit_bucket(cfn: np.ndarray, rows: np.ndarray, imax: np.ndarray, f1: np.ndarray,
                f2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_fit_window` for one group of rows."""
    nw = cfn.shape[1]
    lo, hi = f1 - imax, f2 - imax
    half = int(max(np.abs(lo).max(initial=0), np.abs(hi).max(initial=0), 1))
    u = np.arange(-half, half + 1)
    y = cfn[rows[:, None], (imax[:, None] + u[None, :]) % nw]
    m = ((u[None, :] >= lo[:, None]) & (u[None, :] <= hi[:, None])).astype(float)
    nfit = f2 - f1 + 1
    ncoef = np.where(nfit >= 8, 5, 3)
    t = u / half
    vand = t[:, None] ** np.arange(5)[None, :]
    gram = (m @ (vand[:, :, None] * vand[:, None, :]).reshape(u.size, 25)).reshape(-1, 5, 5)
    rhs = (m * y) @ vand
    coef_t = np.zeros((rows.size, 5))
    for nc in (5, 3):
        sel = ncoef == nc
        if sel.any():
            g = gram[sel][:, :nc, :nc]
            coef_t[sel, :nc] = np.linalg.solve(g, rhs[sel, :nc, None])[..., 0]
    res = (y - coef_t @ vand.T) * m
    n = m.sum(axis=1)
    ave = res.sum(axis=1) / n
    rms = np.sqrt(np.maximum((res * res).sum(axis=1) / n - ave * ave, 0.0))
    coef_u = coef_t / float(half) ** np.arange(5)
    return coef_u, rms


def _search_points(cfn: np.ndarray, rows: np.ndarray, imax: np.ndarray, cmax: np.ndarray,
                   nsearch: int) -> dict[str, np.ndarray]:
    """Inflection, half-maximum and zero-crossing points on each side of ``imax`` (rows
    ``rows`` of ``cfn``)."""
    nw = cfn.shape[1]
    nodat = 5 * nw
    off = np.arange(nsearch + 1)
    rows = rows[:, None]
    out: dict[str, np.ndarray] = {}
    for side, sgn in (("r", 1), ("l", -1)):
        v = cfn[rows, (imax[:, None] + sgn * off[None, :]) % nw]
        dc = v[:, :-1] - v[:, 1:]
        falls = np.empty(dc.shape, dtype=bool)
        falls[:, 0] = dc[:, 0] < 0
        np.less(dc[:, 1:], dc[:, :-1], out=falls[:, 1:])
        i_inf = _first(falls, -1)
        i_half = _first(v[:, 1:] < (cmax / 2)[:, None], -1)
        i_zero = _first(v[:, 1:] < 0, -1)
        out[side] = np.where(i_inf >= 0, imax + sgn * i_inf, nodat)
        out[side + "h"] = np.where(i_half >= 0, imax + sgn * (i_half + 1), nodat)
        out[side + "z"] = np.where(i_zero >= 0, imax + sgn * (i_zero + 1), nodat)
    return out


def fit_peaks(cfn: np.ndarray, allowed: np.ndarray, max_iter: int = 60, *,
              width: bool = True) -> PeakFit:
    """Fit the highest allowed peak of each correlation function (SNID ``peakfit``).

    Parameters
    ----------
    cfn : numpy.ndarray
        Shape ``(n, nw)`` correlation functions.
    allowed : numpy.ndarray
        Shape ``(nw,)`` bool: lags inside the redshift search range.
    max_iter : int
        Safety cap on fit-range adjustments.
    width : bool
        Compute the widths (``False``: all 0, for callers that need only centre and height).

    Returns
    -------
    PeakFit
    """
    n, nw = cfn.shape
    imax, cmax = masked_argmax(cfn, allowed)
    valid = cmax > 0
    local = (cfn[np.arange(n), imax] >= cfn[np.arange(n), (imax - 1) % nw]) & \
            (cfn[np.arange(n), imax] >= cfn[np.arange(n), (imax + 1) % nw])
    center = imax.astype(float)
    height = np.where(valid, cmax, 0.0)
    widths = np.zeros(n)
    rows = np.flatnonzero(valid & local)
    if rows.size:
        c, h, w = _fit_rows(cfn, rows, imax[rows], cmax[rows], max_iter, width)
        center[rows], height[rows], widths[rows] = c, h, w
    return PeakFit(center=center, height=height, width=widths, valid=valid)


def _initial_range(pts: dict[str, np.ndarray], imax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SNID's first fit range from the inflection, half-maximum and zero-crossing points."""
    il, ir = pts["l"].copy(), pts["r"].copy()
    narrow = ir - il < 6
    il[narrow], ir[narrow] = imax[narrow] - 3, imax[narrow] + 3
    span = (ir - il).astype(np.float32)
    f1 = np.trunc(il.astype(np.float32) - EXTRA * span).astype(np.int64)
    f2 = np.trunc(ir.astype(np.float32) + EXTRA * span).astype(np.int64)
    f1 = np.maximum(np.minimum(f1, pts["lh"]), pts["lz"])
    f2 = np.minimum(np.maximum(f2, pts["rh"]), pts["rz"])
    return f1, f2


def _fit_rows(cfn: np.ndarray, rows: np.ndarray, imax: np.ndarray, cmax: np.ndarray,
              max_iter: int, want_width: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The iterative fit of :func:`fit_peaks` for rows with a local maximum.

    A quartic's half-maximum points are only bracketed inside the loop (the no-root flag steers
    the fit range); the width is refined once, from each row's last fitted quartic."""
    nw = cfn.shape[1]
    pts = _search_points(cfn, rows, imax, cmax, 64)
    redo = np.flatnonzero((pts["lz"] > nw) | (pts["rz"] > nw) | (pts["l"] > nw) | (pts["r"] > nw))
    if redo.size:
        full = _search_points(cfn, rows[redo], imax[redo], cmax[redo], nw // 4)
        for key in pts:
            pts[key][redo] = full[key]
    ilh, irh, ilz, irz = pts["lh"], pts["rh"], pts["lz"], pts["rz"]
    f1, f2 = _initial_range(pts, imax)
    m = rows.size
    center, height, width = imax.astype(float), cmax.copy(), np.zeros(m)
    last1, last2 = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    noroot = np.zeros(m, dtype=bool)
    last_quartic = np.zeros(m, dtype=bool)
    last_coef, last_x0 = np.zeros((m, 5)), np.zeros(m)
    active = (f2 - f1 < MAXFIT) & (f1 <= ilh) & (f2 >= irh)
    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        coef, rms = _fit_window(cfn, rows[idx], imax[idx], f1[idx], f2[idx])
        nfit = f2[idx] - f1[idx] + 1
        at_half = (f1[idx] == ilh[idx]) & (f2[idx] == irh[idx])
        shrink = (rms / cmax[idx] > ERRMAX) & ~(noroot[idx] | at_half)
        step = np.where(nfit > 16, 2, 1)
        s_idx = idx[shrink]
        f1[s_idx] = np.minimum(f1[s_idx] + step[shrink], ilh[s_idx])
        f2[s_idx] = np.maximum(f2[s_idx] - step[shrink], irh[s_idx])
        p_idx, coef = idx[~shrink], coef[~shrink]
        if p_idx.size == 0:
            continue
        x0, h, w, nr = _peak_of(coef, nfit[~shrink], ilh[p_idx] - imax[p_idx],
                                irh[p_idx] - imax[p_idx])
        center[p_idx], height[p_idx], width[p_idx] = imax[p_idx] + x0, h, w
        noroot[p_idx] = nr
        last_quartic[p_idx] = nfit[~shrink] >= 8
        last_coef[p_idx], last_x0[p_idx] = coef, x0
        stale = (last1[p_idx] == f1[p_idx]) & (last2[p_idx] == f2[p_idx])
        last1[p_idx], last2[p_idx] = f1[p_idx], f2[p_idx]
        widen = nr & ~stale
        w_idx = p_idx[widen]
        f1[w_idx] = np.maximum(f1[w_idx] - 1, ilz[w_idx])
        f2[w_idx] = np.minimum(f2[w_idx] + 1, irz[w_idx])
        active[p_idx[~widen]] = False
    q = np.flatnonzero(last_quartic)
    if want_width and q.size:
        width[q], _ = half_max_width(last_coef[q], last_x0[q], height[q],
                                     (ilh - imax)[q], (irh - imax)[q])
    return center, height, width


def _peak_of(coef: np.ndarray, nfit: np.ndarray, xl: np.ndarray, xr: np.ndarray) -> tuple[
        np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dispatch rows to :func:`quartic_peak` (``nfit >= 8``) or :func:`parabola_peak`."""
    x0, h, w, nr = (np.zeros(coef.shape[0]) for _ in range(4))
    nr = nr.astype(bool)
    quart = nfit >= 8
    if quart.any():
        x0[quart], h[quart], w[quart], nr[quart] = quartic_peak(coef[quart], xl[quart], xr[quart],
                                                                width=False)
    if (~quart).any():
        x0[~quart], h[~quart], w[~quart], nr[~quart] = parabola_peak(coef[~quart, :3])
    return x0, h, w, nr
