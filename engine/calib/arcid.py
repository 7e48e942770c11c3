"""Arc-line identification without the nominal law: the night's mean dispersion law measured on
stacked arcs, and each trace's first 7000-A column.

The arcs of all traces, aligned on their red dome cut-on (a stable anchor: the 7000-A column
sits a fixed distance blueward of it on every trace), are stacked; a grid over offset, scale
(``SCALE_RANGE`` of the nominal dispersion) and curvature finds the line pattern on the stack
and a cubic in ``t = lambda**-0.5 - 7000**-0.5`` is fitted to the stacked lines, so that the
law's form is measured, not assumed (:class:`DispersionLaw`). Each trace is then
cross-correlated with that law's line comb within ``TRACE_SEARCH_PX``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter

from engine.calib.arclines import LineGroup
from engine.errors import AlgorithmError
from engine.instrument import sedm

T_REF = sedm.REFERENCE_WAVELENGTH_AA**-0.5
LAMP_ORDER = ("Hg", "Cd", "Xe")


def t_of(wave_aa) -> np.ndarray:
    """``t = lambda**-0.5 - 7000**-0.5``."""
    return np.asarray(wave_aa, dtype=float) ** -0.5 - T_REF


def law_x(coef: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Columns ``x = sum_k c_k t^k`` of dispersion laws.

    Parameters
    ----------
    coef : numpy.ndarray
        Shape ``(n, p)``: the laws' coefficients [pixel].
    t : numpy.ndarray
        Shape ``(m,)`` or ``(n, m)``: the law's variable (scaled wavelength).

    Returns
    -------
    numpy.ndarray
        Shape ``(n, m)``: columns [pixel].
    """
    out = np.zeros(np.broadcast_shapes((coef.shape[0], 1), np.shape(t)))
    for k in range(coef.shape[1] - 1, -1, -1):
        out = out * t + coef[:, k:k + 1]
    return out


def law_dx_dt(coef: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``dx/dt`` of dispersion laws.

    Parameters
    ----------
    coef : numpy.ndarray
        Shape ``(n, p)``: the laws' coefficients [pixel].
    t : numpy.ndarray
        Shape ``(m,)`` or ``(n, m)``: the law's variable (scaled wavelength).

    Returns
    -------
    numpy.ndarray
        Shape ``(n, m)``: the derivative [pixel per unit t].
    """
    out = np.zeros(np.broadcast_shapes((coef.shape[0], 1), np.shape(t)))
    for k in range(coef.shape[1] - 1, 0, -1):
        out = out * t + k * coef[:, k:k + 1]
    return out


# ---------------------------------------------------------------------------------- helpers
def _highpass(spec: np.ndarray) -> np.ndarray:
    filled = np.nan_to_num(spec)
    return np.clip(filled - median_filter(filled, size=(1, 21), mode="nearest"), 0.0, None)


def _lamp_lines(groups: list[LineGroup], lamp: str) -> tuple[np.ndarray, np.ndarray]:
    sel = [g for g in groups if g.lamp == lamp]
    waves = np.concatenate([g.waves for g in sel])
    amps = np.sqrt(np.concatenate([g.amplitudes for g in sel]))
    return waves, amps


def _gather(spec: np.ndarray, start: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``spec[k, start_k : start_k + length]`` (NaN outside); and their column indices."""
    idx = start[:, None] + np.arange(length)[None, :]
    inside = (idx >= 0) & (idx < spec.shape[1])
    vals = np.take_along_axis(spec, np.clip(idx, 0, spec.shape[1] - 1), axis=1)
    return np.where(inside, vals, np.nan), idx


# -------------------------------------------------------------------------- identification
def _sample(spec: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row of ``spec`` (n, L) at columns ``pos`` (n, ...)."""
    n, L = spec.shape
    p = np.clip(pos, 0.0, L - 1.001)
    i = np.floor(p).astype(int)
    f = p - i
    flat = spec.ravel()
    base = (np.arange(n) * L).reshape((n,) + (1,) * (pos.ndim - 1))
    val = flat[base + i] * (1 - f) + flat[base + i + 1] * f
    return np.where((pos >= 0) & (pos <= L - 1), val, 0.0)


@dataclass(frozen=True)
class DispersionLaw:
    """The night's mean dispersion law, measured on the stacked arcs.

    ``x(lambda) - anchor = c0 + c1 t + c2 t^2 + c3 t^3`` with ``t = lambda**-0.5 - 7000**-0.5``,
    where ``anchor`` is a trace's red dome cut-on column (``x_lo``).

    Attributes
    ----------
    coef : numpy.ndarray
        Shape ``(4,)`` [pixel].
    rms_px : float
        Scatter of the identified stacked lines about the law [pixel].
    n_lines : int
        Stacked lines identified.
    """

    coef: np.ndarray
    rms_px: float
    n_lines: int

    def shape(self, wave_aa) -> np.ndarray:
        """Column of ``wave_aa`` relative to the column of 7000 A [pixel]."""
        t = t_of(wave_aa)
        return t * (self.coef[1] + t * (self.coef[2] + t * self.coef[3]))

    @property
    def scale(self) -> float:
        """Dispersion relative to the nominal law at 7000 A."""
        return float(self.coef[1] / sedm.DISPERSION_D_PX)


SCALE_RANGE = (0.88, 1.12)
"""Dispersion scales searched, relative to the nominal law (the prior: +-8 % and margin)."""
OFFSET_RANGE_PX = (15.0, 160.0)
"""Columns of 7000 A searched blueward of the red dome cut-on (nominal ~77) [pixel]."""
CURVATURE_RANGE = (-1.5e6, 1.5e6)
"""``t^2`` coefficients searched (nominal 2e5: a law of another form than ``D t``) [pixel]."""
STACK_SPAN = (-40, 420)
"""Columns stacked around each trace's red cut-on [pixel]."""
TRACE_SEARCH_PX = 20.0
"""Per-trace search of the 7000-A column around the stacked law's prediction [pixel]."""


def _smoothed(spectra: dict) -> dict:
    smooth = {lamp: gaussian_filter1d(_highpass(f), 1.5, axis=1) for lamp, (f, _v) in spectra.items()}
    return {lamp: s / np.maximum(s.max(axis=1, keepdims=True), 1.0) for lamp, s in smooth.items()}


def stack_arcs(smooth: dict, anchor: np.ndarray, span: tuple[int, int] = STACK_SPAN) -> dict:
    """Median arc spectrum of all traces aligned on their anchor columns.

    Parameters
    ----------
    smooth : dict
        ``{lamp: (n, L)}`` normalised high-passed spectra.
    anchor : numpy.ndarray
        Shape ``(n,)`` window column of each trace's red cut-on.

    Returns
    -------
    dict
        ``{lamp: (span[1] - span[0],)}`` stacked spectra; index ``j`` is column
        ``anchor + span[0] + j``.
    """
    n = len(anchor)
    sub = np.arange(0, n, max(1, n // 600))
    start = np.round(anchor[sub]).astype(int) + span[0]
    out = {}
    for lamp, s in smooth.items():
        win, _ = _gather(s[sub], start, span[1] - span[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[lamp] = np.nan_to_num(np.nanmedian(win, axis=0))
    return out


def _comb(groups: list[LineGroup]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    waves, amps, lamps = [], [], []
    for lamp in LAMP_ORDER:
        w, a = _lamp_lines(groups, lamp)
        waves.append(w)
        amps.append(a)
        lamps += [lamp] * len(w)
    return np.concatenate(waves), np.concatenate(amps), lamps


def fit_stacked_law(stacks: dict, groups: list[LineGroup], span: tuple[int, int] = STACK_SPAN) -> DispersionLaw:
    """Identify the arc lines on the stacked spectra and fit the mean dispersion law.

    A grid over offset, scale (``SCALE_RANGE``) and curvature (``CURVATURE_RANGE``) of
    ``x = c0 + c1 t + c2 t^2`` maximises the amplitude-weighted line comb; every line group
    is then centred on the stack near its prediction and a cubic in ``t`` is fitted with
    clipping, three times with narrowing windows.

    Raises
    ------
    AlgorithmError
        Fewer than 8 line groups identified on the stack.
    """
    stack = np.stack([stacks[lamp] for lamp in LAMP_ORDER])
    waves, amps, lamps = _comb(groups)
    row = np.array([LAMP_ORDER.index(lamp) for lamp in lamps])
    t = t_of(waves)
    length = stack.shape[1]

    def score(off, c1, c2):
        pos = off[..., None] + c1[..., None] * t + c2[..., None] * t * t - span[0]
        p = np.clip(pos, 0.0, length - 1.001)
        i = np.floor(p).astype(int)
        f = p - i
        val = stack[row, i] * (1 - f) + stack[row, i + 1] * f
        return (np.where((pos >= 0) & (pos <= length - 1), val, 0.0) * amps).sum(-1)

    d = sedm.DISPERSION_D_PX
    offs = np.arange(OFFSET_RANGE_PX[0], OFFSET_RANGE_PX[1] + 0.01, 1.0)
    c1s = d * np.arange(SCALE_RANGE[0], SCALE_RANGE[1] + 1e-9, 0.004)
    c2s = np.arange(CURVATURE_RANGE[0], CURVATURE_RANGE[1] + 1.0, 1.0e5)
    best = (-np.inf, 0.0, 0.0, 0.0)
    oo, cc = np.meshgrid(offs, c1s, indexing="ij")
    for c2 in c2s:
        sc = score(oo, cc, np.full(oo.shape, c2))
        k = np.unravel_index(int(np.argmax(sc)), sc.shape)
        if sc[k] > best[0]:
            best = (float(sc[k]), float(oo[k]), float(cc[k]), float(c2))
    coef = np.array([best[1], best[2], best[3], 0.0])
    return _refine_stacked_law(stack, row, waves, coef, span)


def _refine_stacked_law(stack, row, waves, coef, span) -> DispersionLaw:
    t = t_of(waves)
    length = stack.shape[1]
    used = np.zeros(waves.size, bool)
    pos = np.zeros(waves.size)
    rms = np.nan
    for half in (5, 3, 2):
        pred = coef[0] + t * (coef[1] + t * (coef[2] + t * coef[3])) - span[0]
        pos = np.full(waves.size, np.nan)
        for k, (r, p) in enumerate(zip(row, pred)):
            lo, hi = int(np.floor(p - half)), int(np.ceil(p + half)) + 1
            if lo < 1 or hi > length - 1:
                continue
            seg = stack[r, lo:hi]
            j = int(np.argmax(seg))
            if j == 0 or j == seg.size - 1 or seg[j] <= 0.02:
                continue
            a, b, c = seg[j - 1], seg[j], seg[j + 1]
            den = a - 2 * b + c
            pos[k] = lo + j + (0.5 * (a - c) / den if den < 0 else 0.0)
        used = np.isfinite(pos)
        if used.sum() < 8:
            break
        for _ in range(3):
            fit = np.polynomial.polynomial.polyfit(t[used], pos[used] + span[0], 3)
            res = pos + span[0] - np.polynomial.polynomial.polyval(t, fit)
            mad = 1.4826 * np.median(np.abs(res[used]))
            new = np.isfinite(pos) & (np.abs(res) < max(4 * mad, 0.5))
            if np.array_equal(new, used) or new.sum() < 8:
                break
            used = new
        coef = fit
        rms = float(np.sqrt(np.mean(res[used] ** 2)))
    if used.sum() < 8:
        raise AlgorithmError(
            f"only {int(used.sum())} arc lines identified on the stacked arcs (scale searched "
            f"{SCALE_RANGE[0]:.2f}-{SCALE_RANGE[1]:.2f} of the nominal dispersion)", {"n_lines": int(used.sum())})
    return DispersionLaw(coef=np.asarray(coef, float), rms_px=rms, n_lines=int(used.sum()))


def coarse_reference(
    spectra: dict, x0: np.ndarray, anchor_x: np.ndarray, groups: list[LineGroup]
) -> tuple[np.ndarray, DispersionLaw]:
    """First estimate of each trace's 7000-A column, and the night's mean dispersion law.

    The arcs of all traces, aligned on their red dome cut-on ``anchor_x``, are stacked and the
    mean law is identified on the stack (:func:`fit_stacked_law`); each trace's high-passed
    spectrum is then cross-correlated with the law's line comb within ``TRACE_SEARCH_PX``.

    Parameters
    ----------
    spectra : dict
        ``{lamp: (flux, var)}`` of shape ``(n, L)`` over columns ``x0[k] + arange(L)``.
    x0, anchor_x : numpy.ndarray
        Shape ``(n,)``: window start and red cut-on column of each trace [pixel].

    Returns
    -------
    x7000 : numpy.ndarray
        Shape ``(n,)`` [pixel].
    law : DispersionLaw
    """
    n = len(x0)
    smooth = _smoothed(spectra)
    rel = anchor_x - x0
    law = fit_stacked_law(stack_arcs(smooth, rel), groups)
    trial = np.arange(-TRACE_SEARCH_PX, TRACE_SEARCH_PX + 0.01, 0.5)
    per_trace = np.zeros((n, trial.size))
    for lamp, s in smooth.items():
        waves, amps = _lamp_lines(groups, lamp)
        dx = law.coef[0] + law.shape(waves)
        pos = rel[:, None, None] + trial[None, :, None] + dx[None, None, :]
        per_trace += (_sample(s, pos) * amps).sum(axis=2)
    j = np.clip(np.argmax(per_trace, axis=1), 1, trial.size - 2)
    rows = np.arange(n)
    y0, y1, y2 = per_trace[rows, j - 1], per_trace[rows, j], per_trace[rows, j + 1]
    denom = y0 - 2 * y1 + y2
    frac = np.where(denom < 0, 0.5 * (y0 - y2) / np.where(denom < 0, denom, -1.0), 0.0)
    x7000 = anchor_x + law.coef[0] + trial[j] + np.clip(frac, -0.5, 0.5) * 0.5
    return x7000, law
