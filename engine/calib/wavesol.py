"""Wavelength solution from the Hg, Cd and Xe arc masters, for every trace at once.

The column of wavelength ``lambda`` on a trace is modelled as a cubic in ``t = lambda**-0.5 -
7000**-0.5`` (the prism's Cauchy/Hartmann-like law; pysedm uses a quartic in lambda)::

    x(lambda) = c0 + c1 t + c2 t^2 + c3 t^3        (c0 = column of 7000 A)

Identification needs no per-trace guess and no nominal law to better than the priors: the
arcs of all traces, aligned on their red dome cut-on (a stable anchor), are stacked; a grid over
offset, scale (+-12 % of the nominal dispersion) and curvature of the law finds the line
pattern on the stack and a cubic in ``t`` is fitted to the stacked lines (the night's mean
law, :class:`DispersionLaw`, whose form is measured, not assumed); each trace is then
cross-correlated with that law's line comb (+-20 px), the stacked spectra give a smooth
correction, and ~20 line groups (3611-9802 A) are fitted in every trace (vectorised). The
per-trace cubic is regularised by a smooth model of ``c3`` across the detector; traces whose
solution departs from the smooth model of ``c1, c2`` are flagged and take the smooth model
(only their offset is fitted).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d, median_filter

from engine import refdata

from engine.calib.arclines import LineGroup, line_groups
from engine.calib.linefit import fit_blends
from engine.errors import AlgorithmError
from engine.instrument import sedm

T_REF = sedm.REFERENCE_WAVELENGTH_AA**-0.5
LAMP_ORDER = ("Hg", "Cd", "Xe")
BLUE_EDGE_AA = 4048.0
"""Lines bluer than this are the 'blue end' (pysedm has none there)."""
ERROR_FLOOR_PX = 0.005


def t_of(wave_aa) -> np.ndarray:
    """``t = lambda**-0.5 - 7000**-0.5``."""
    return np.asarray(wave_aa, dtype=float) ** -0.5 - T_REF


@dataclass(frozen=True)
class WaveSolution:
    """Per-trace wavelength solutions (shape ``(n,)`` arrays unless noted).

    Attributes
    ----------
    coef : numpy.ndarray
        Shape ``(n, 4)``: ``x = c0 + c1 t + c2 t^2 + c3 t^3`` [pixel].
    ok : numpy.ndarray
        bool: a solution exists (measured or regularised).
    flagged : numpy.ndarray
        bool: the trace's own fit was an outlier; the smooth model was used.
    n_lines : numpy.ndarray
        Line groups used.
    rms_aa, nmad_aa, blue_rms_aa : numpy.ndarray
        Residual statistics of the lines [Angstrom] (blue: lines < 4048 A).
    """

    coef: np.ndarray
    ok: np.ndarray
    flagged: np.ndarray
    n_lines: np.ndarray
    rms_aa: np.ndarray
    nmad_aa: np.ndarray
    blue_rms_aa: np.ndarray

    @property
    def x_ref(self) -> np.ndarray:
        """Column of 7000 A on each trace."""
        return self.coef[:, 0]

    def x_of_wave(self, wave_aa: np.ndarray, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Columns of ``wave_aa`` on traces ``idx``; shape ``(n_idx, m)``."""
        t = t_of(wave_aa)
        c = self.coef[idx]
        return c[:, 0:1] + t * (c[:, 1:2] + t * (c[:, 2:3] + t * c[:, 3:4]))

    def wave_of_x(self, x: np.ndarray, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Wavelengths at columns ``x`` (shape ``(n_idx, m)``) [Angstrom]."""
        c = self.coef[idx]
        x = np.asarray(x, dtype=float)
        t = (x - c[:, 0:1]) / c[:, 1:2]
        for _ in range(6):
            f = c[:, 0:1] + t * (c[:, 1:2] + t * (c[:, 2:3] + t * c[:, 3:4])) - x
            df = c[:, 1:2] + t * (2 * c[:, 2:3] + 3 * t * c[:, 3:4])
            t = t - f / df
        return np.clip(t + T_REF, 1e-3, None) ** -2.0

    def dispersion_aa_per_px(self, wave_aa: np.ndarray, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """``|d lambda / d x|`` at ``wave_aa`` [Angstrom/pixel]."""
        t = t_of(wave_aa)
        c = self.coef[idx]
        dx_dt = c[:, 1:2] + t * (2 * c[:, 2:3] + 3 * t * c[:, 3:4])
        dt_dl = 0.5 * np.asarray(wave_aa, dtype=float) ** -1.5
        return 1.0 / np.abs(dx_dt * dt_dl)


@dataclass(frozen=True)
class LineMeasurements:
    """Measured line-group positions: shape ``(n_traces, n_groups)`` arrays."""

    waves: np.ndarray
    """Shape ``(n_groups,)`` representative wavelength of each group [Angstrom]."""
    lamps: list[str]
    x: np.ndarray
    x_err: np.ndarray
    ok: np.ndarray
    sigma: np.ndarray


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
    for lamp in smooth:
        smooth[lamp] /= np.maximum(smooth[lamp].max(axis=1, keepdims=True), 1.0)
    return smooth


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


def measure_groups(
    spectra: dict, x0: np.ndarray, predict, groups: list[LineGroup], *, half_window: float = 4.5,
    max_shift: float = 3.0, law: DispersionLaw | None = None,
) -> LineMeasurements:
    """Fit every line group in every trace around the predicted columns ``predict(waves) -> (n, m)``.

    Every catalogued line of the lamp predicted inside a window is part of that window's model
    (free amplitude, common shift), so neighbouring groups never bias each other. ``law``
    (default: the nominal one) decides which catalogued lines fall inside a window.
    """
    shape = law.shape if law is not None else (lambda w: sedm.nominal_trace_x(w, 0.0))
    xs, errs, oks, sigs = [], [], [], []
    for g in groups:
        flux, var = spectra[g.lamp]
        all_waves = np.array([ln.wave_aa for ln in refdata.arc_lines(g.lamp)])
        pred_g = predict(g.waves) - x0[:, None]
        lo = np.floor(pred_g.min(1) - half_window).astype(int)
        length = int(np.ceil((pred_g.max(1) - pred_g.min(1)).max() + 2 * half_window)) + 1
        x_g = shape(g.waves)
        x_all = shape(all_waves)
        # every catalogued line whose wing (3 sigma of a 1.5-px LSF) can reach the window is modelled:
        # an unmodelled wing biases the fit by up to 0.1 px, depending on where the window's edge falls
        span = (x_g.min() - half_window - 7.0, x_g.max() + half_window + 7.0)
        comp = all_waves[(x_all >= span[0]) & (x_all <= span[1])]
        comp, ref = merge_close_lines(np.union1d(comp, g.waves), g.lamp, g.ref_wave, shape=shape)
        pred = predict(comp) - x0[:, None]
        pred_ref = predict(np.array([g.ref_wave]))[:, 0] - x0
        d, cols = _gather(flux, lo, length)
        v, _ = _gather(var, lo, length)
        fit = fit_blends(d, v, cols.astype(float), pred, sigma0=1.1, max_shift=max_shift)
        chi_limit = 20.0 * max(np.nanmedian(fit.chi2[fit.ok]) if fit.ok.any() else 1.0, 1.0)
        xs.append(pred_ref + fit.mu + x0)
        errs.append(np.hypot(fit.mu_err, ERROR_FLOOR_PX))
        oks.append(fit.ok & (fit.chi2 < chi_limit))
        sigs.append(fit.sigma)
    return LineMeasurements(
        waves=np.array([g.ref_wave for g in groups]), lamps=[g.lamp for g in groups],
        x=np.array(xs).T, x_err=np.array(errs).T, ok=np.array(oks).T, sigma=np.array(sigs).T,
    )


def merge_close_lines(
    waves: np.ndarray, lamp: str, keep: float, min_sep_px: float = 0.75, shape=None
) -> tuple[np.ndarray, int]:
    """Replace lines closer than ``min_sep_px`` by their catalogue-amplitude-weighted mean.

    Free amplitudes of components 0.4 px apart are degenerate with the common shift; with
    catalogue weights (unknown lines count 3 % of the lamp's brightest) the merged line is
    accurate to a few hundredths of a pixel.

    Returns
    -------
    waves : numpy.ndarray
        Effective wavelengths of the (merged) components, by increasing column.
    ref : int
        Index of the component that contains the line ``keep``.
    """
    lines = {round(ln.wave_aa, 4): ln.amplitude for ln in refdata.arc_lines(lamp)}
    top = max(a for a in lines.values() if np.isfinite(a))
    amp = np.array([lines.get(round(w, 4), np.nan) for w in waves]) / top
    amp = np.where(np.isfinite(amp), amp, 0.03)
    x = shape(waves) if shape is not None else sedm.nominal_trace_x(waves, 0.0)
    order = np.argsort(x)
    waves, amp, x = waves[order], amp[order], x[order]
    out, ref, i = [], 0, 0
    while i < waves.size:
        j = i + 1
        while j < waves.size and abs(x[j] - x[j - 1]) < min_sep_px:
            j += 1
        if np.any(np.isclose(waves[i:j], keep)):
            ref = len(out)
        out.append(float(np.sum(waves[i:j] * amp[i:j]) / np.sum(amp[i:j])))
        i = j
    return np.array(out), ref


# ------------------------------------------------------------------------------- fitting
def fit_cubic(meas: LineMeasurements, fixed_c3: np.ndarray | None = None, n_clip: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Weighted cubic (or quadratic with a fixed ``c3``) per trace with 4-sigma clipping.

    Returns
    -------
    coef : numpy.ndarray
        Shape ``(n, 4)``.
    used : numpy.ndarray
        Shape ``(n, n_groups)`` bool: lines kept.
    """
    t = t_of(meas.waves)
    n = meas.x.shape[0]
    used = meas.ok & np.isfinite(meas.x)
    deg = 3 if fixed_c3 is None else 2
    basis = np.stack([t**k for k in range(deg + 1)], 1)  # (g, p)
    coef = np.zeros((n, 4))
    for _ in range(n_clip + 1):
        w = np.where(used, 1.0 / np.where(used, meas.x_err, 1.0) ** 2, 0.0)
        target = np.where(used, meas.x, 0.0)
        if fixed_c3 is not None:
            target = target - fixed_c3[:, None] * t[None, :] ** 3
        ata = np.einsum("ng,gp,gq->npq", w, basis, basis) + np.eye(deg + 1)[None] * 1e-12
        atb = np.einsum("ng,gp,ng->np", w, basis, target)
        sol = np.linalg.solve(ata, atb[:, :, None])[:, :, 0]
        coef[:, : deg + 1] = sol
        if fixed_c3 is not None:
            coef[:, 3] = fixed_c3
        model = coef[:, 0:1] + t * (coef[:, 1:2] + t * (coef[:, 2:3] + t * coef[:, 3:4]))
        norm_res = (meas.x - model) / meas.x_err
        scale = np.array([1.4826 * np.median(np.abs(r[u])) if u.sum() > 4 else 1.0 for r, u in zip(norm_res, used)])
        new_used = meas.ok & np.isfinite(meas.x) & (np.abs(norm_res) < 4.0 * np.maximum(scale, 1.0)[:, None])
        if np.array_equal(new_used, used):
            break
        used = new_used
    return coef, used


def _design2d(x: np.ndarray, y: np.ndarray, deg: int = 3) -> np.ndarray:
    xn, yn = (x - 1024.0) / 1024.0, (y - 1024.0) / 1024.0
    return np.stack([xn**i * yn**j for i in range(deg + 1) for j in range(deg + 1 - i)], 1)


def smooth_model(values: np.ndarray, x: np.ndarray, y: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust cubic surface fit of ``values`` over the detector; returns (model, outlier)."""
    a = _design2d(x, y)
    keep = good & np.isfinite(values)
    model = np.full(values.shape, np.nanmedian(values[keep]) if keep.any() else 0.0)
    for _ in range(4):
        if keep.sum() < a.shape[1] * 3:
            break
        coef, *_ = np.linalg.lstsq(a[keep], values[keep], rcond=None)
        model = a @ coef
        res = values - model
        mad = 1.4826 * np.median(np.abs(res[keep]))
        keep = good & np.isfinite(values) & (np.abs(res) < 5 * mad)
    res = values - model
    mad = 1.4826 * np.median(np.abs(res[good & np.isfinite(values)])) if (good & np.isfinite(values)).any() else 1.0
    return model, ~(np.abs(res) < 8 * mad)


def solve(
    spectra: dict, x0: np.ndarray, x_mid: np.ndarray, y_mid: np.ndarray, anchor_x: np.ndarray
) -> tuple[WaveSolution, LineMeasurements, np.ndarray]:
    """Wavelength solution of every trace from extracted arc spectra.

    Parameters
    ----------
    spectra : dict
        ``{"Hg": (flux, var), "Cd": ..., "Xe": ...}``, arrays of shape ``(n, L)``: arc spectra
        extracted over columns ``x0[k] + arange(L)``.
    x0 : numpy.ndarray
        Shape ``(n,)`` first column of each window.
    x_mid, y_mid : numpy.ndarray
        Dome-lit centre of each trace (for the smooth models across the detector).
    anchor_x : numpy.ndarray
        Shape ``(n,)`` red dome cut-on column of each trace (``TraceFit.x_lo``): the first
        guess of the 7000-A column is measured from it.

    Returns
    -------
    solution : WaveSolution
    measurements : LineMeasurements
    used : numpy.ndarray
        Shape ``(n, n_groups)`` lines used in the final fit.
    """
    missing = {"Hg", "Cd", "Xe"} - set(spectra)
    if missing:
        raise AlgorithmError(f"no {', '.join(sorted(missing))} arc: the wavelength solution needs all three lamps",
                             {"missing": sorted(missing)})
    groups = line_groups()
    x7000, law = coarse_reference(spectra, x0, anchor_x, groups)

    def nominal(waves):
        return x7000[:, None] + law.shape(waves)[None, :]

    groups = line_groups(shape=law.shape)
    first = measure_groups(spectra, x0, nominal, groups, half_window=6.0, max_shift=5.0, law=law)
    # Global smooth correction of the nominal law (the same for all traces to ~1 px).
    t = t_of(first.waves)
    resid = first.x - nominal(first.waves)
    med = np.array([np.nanmedian(np.where(first.ok[:, j], resid[:, j], np.nan)) for j in range(t.size)])
    good = np.isfinite(med)
    if good.sum() < 6:
        raise AlgorithmError(f"only {good.sum()} arc-line groups identified", {"n_groups": int(good.sum())})
    corr = np.polynomial.polynomial.polyfit(t[good], med[good], 3)

    def corrected(waves):
        return nominal(waves) + np.polynomial.polynomial.polyval(t_of(waves), corr)[None, :]

    predict = corrected
    for half, shift in ((4.5, 2.5), (4.0, 1.5), (4.0, 1.0), (4.0, 0.8)):
        meas = measure_groups(spectra, x0, predict, groups, half_window=half, max_shift=shift, law=law)
        solution, used = regularise(meas, x_mid, y_mid)
        predict = _predictor(solution)
    return solution, meas, used


def _predictor(solution: WaveSolution):
    def predict(waves):
        return solution.x_of_wave(waves)

    return predict


def regularise(meas: LineMeasurements, x_mid: np.ndarray, y_mid: np.ndarray) -> tuple[WaveSolution, np.ndarray]:
    """Final fits: ``c3`` from a smooth model; outliers take the smooth ``c1..c3``."""
    coef, used = fit_cubic(meas)
    n_used = used.sum(1)
    enough = n_used >= 8
    c3_model, _ = smooth_model(coef[:, 3], x_mid, y_mid, enough)
    coef, used = fit_cubic(meas, fixed_c3=c3_model)
    n_used = used.sum(1)
    flagged = n_used < 6
    for k in (1, 2):
        model, outlier = smooth_model(coef[:, k], x_mid, y_mid, ~flagged)
        flagged |= outlier
        coef[flagged, k] = model[flagged]
    coef[flagged, 3] = c3_model[flagged]
    if flagged.any():
        # Offset only for flagged traces.
        t = t_of(meas.waves)
        shape = coef[flagged, 1:2] * t + coef[flagged, 2:3] * t**2 + coef[flagged, 3:4] * t**3
        u = used[flagged] if used.shape[0] else used
        w = np.where(u, 1.0 / meas.x_err[flagged] ** 2, 0.0)
        off = (w * (meas.x[flagged] - shape)).sum(1) / np.maximum(w.sum(1), 1e-12)
        coef[flagged, 0] = off
    ok = n_used >= 3
    return _with_stats(coef, ok, flagged, meas, used), used


def _with_stats(coef, ok, flagged, meas: LineMeasurements, used) -> WaveSolution:
    t = t_of(meas.waves)
    model = coef[:, 0:1] + t * (coef[:, 1:2] + t * (coef[:, 2:3] + t * coef[:, 3:4]))
    sol = WaveSolution(coef=coef, ok=ok, flagged=flagged, n_lines=used.sum(1),
                       rms_aa=np.zeros(len(ok)), nmad_aa=np.zeros(len(ok)), blue_rms_aa=np.zeros(len(ok)))
    disp = sol.dispersion_aa_per_px(meas.waves)
    res_aa = np.where(used, (meas.x - model) * disp, np.nan)
    blue = meas.waves < BLUE_EDGE_AA

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rms = np.sqrt(np.nanmean(res_aa**2, axis=1))
        nmad = 1.4826 * np.nanmedian(np.abs(res_aa - np.nanmedian(res_aa, axis=1, keepdims=True)), axis=1)
        blue_rms = np.sqrt(np.nanmean(res_aa[:, blue] ** 2, axis=1)) if blue.any() else np.full(len(ok), np.nan)
    return WaveSolution(coef=coef, ok=ok, flagged=flagged, n_lines=used.sum(1), rms_aa=rms, nmad_aa=nmad,
                        blue_rms_aa=blue_rms)
