"""Wavelength solution from the Hg, Cd and Xe arc masters, for every trace at once.

The column of wavelength ``lambda`` on a trace is modelled as a cubic in ``t = lambda**-0.5 -
7000**-0.5`` (the prism's Cauchy/Hartmann-like law; pysedm uses a quartic in lambda)::

    x(lambda) = c0 + c1 t + c2 t^2 + c3 t^3        (c0 = column of 7000 A)

Identification (:mod:`engine.calib.arcid`) needs no per-trace guess and no nominal law to better than the priors: the
arcs of all traces, aligned on their red dome cut-on (a stable anchor), are stacked; a grid over
offset, scale (+-12 % of the nominal dispersion) and curvature of the law finds the line
pattern on the stack and a cubic in ``t`` is fitted to the stacked lines (the night's mean
law, :class:`DispersionLaw`, whose form is measured, not assumed); each trace is then
cross-correlated with that law's line comb (+-20 px), the stacked spectra give a smooth
correction, and ~20 line groups (3611-9802 A) are fitted in every trace (vectorised). The
per-trace cubic is regularised by a smooth model of ``c3`` across the detector; traces whose
solution departs from the smooth model of ``c1, c2`` are flagged and take the smooth model
(only their offset is fitted).

That line-by-line solution only identifies the lines: most SEDM arc features are blends at
R ~ 100, and their fitted positions depend on the components' amplitude ratios, which the
catalogue gives for another lamp (0.1-0.2 px of bias in the red, 2-4 A). The final laws come
from a forward model of every trace's whole arc spectra whose line amplitudes are measured on
the night's arcs themselves (:mod:`engine.calib.arcmodel`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from engine import refdata
from engine.calib.arcid import (
    T_REF,
    DispersionLaw,
    _gather,
    coarse_reference,
    law_dx_dt,
    law_x,
    t_of,
)
from engine.calib.arclines import LineGroup, line_groups
from engine.calib.arcmodel import fit_arc_model
from engine.calib.linefit import fit_blends
from engine.errors import AlgorithmError
from engine.instrument import sedm

BLUE_EDGE_AA = 4048.0
"""Lines bluer than this are the 'blue end' (pysedm has none there)."""
ERROR_FLOOR_PX = 0.005


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
    model_chi2: np.ndarray | None = None
    """Shape ``(n,)`` reduced chi-square of the arc forward model (NaN where not refined);
    not stored in the product."""
    lsf_sigma: np.ndarray | None = None
    """Shape ``(n,)`` line-spread sigma at 7000 A measured on the arcs [pixel] (NaN where not
    measured; ``None`` in products written before it was)."""

    @property
    def x_ref(self) -> np.ndarray:
        """Column of 7000 A on each trace."""
        return self.coef[:, 0]

    def x_of_wave(self, wave_aa: np.ndarray, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Columns of ``wave_aa`` on traces ``idx``; shape ``(n_idx, m)``."""
        return law_x(self.coef[idx], t_of(wave_aa))

    def wave_of_x(self, x: np.ndarray, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Wavelengths at columns ``x`` (shape ``(n_idx, m)``) [Angstrom]."""
        c = self.coef[idx]
        x = np.asarray(x, dtype=float)
        t = (x - c[:, 0:1]) / c[:, 1:2]
        for _ in range(6):
            t = t - (law_x(c, t) - x) / law_dx_dt(c, t)
        return np.clip(t + T_REF, 1e-3, None) ** -2.0

    def dispersion_aa_per_px(self, wave_aa: np.ndarray, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """``|d lambda / d x|`` at ``wave_aa`` [Angstrom/pixel]."""
        dx_dt = law_dx_dt(self.coef[idx], t_of(wave_aa))
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
        comp, _ref = merge_close_lines(np.union1d(comp, g.waves), g.lamp, g.ref_wave, shape=shape)
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
    with warnings.catch_warnings():  # a group no trace measured has no median: NaN, dropped below
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.array([np.nanmedian(np.where(first.ok[:, j], resid[:, j], np.nan)) for j in range(t.size)])
    good = np.isfinite(med)
    if good.sum() < 6:
        raise AlgorithmError(f"only {good.sum()} arc-line groups identified", {"n_groups": int(good.sum())})
    corr = np.polynomial.polynomial.polyfit(t[good], med[good], 3)

    def corrected(waves):
        return nominal(waves) + np.polynomial.polynomial.polyval(t_of(waves), corr)[None, :]

    predict = corrected
    for half, shift in ((4.5, 2.5), (4.0, 1.5), (4.0, 1.0)):
        meas = measure_groups(spectra, x0, predict, groups, half_window=half, max_shift=shift, law=law)
        solution, used = regularise(meas, x_mid, y_mid)
        predict = _predictor(solution)
    isolated = np.array([g.waves.size == 1 for g in groups])
    return refine(solution, spectra, x0, x_mid, y_mid, meas, used, isolated), meas, used


def refine(
    solution: WaveSolution, spectra: dict, x0: np.ndarray, x_mid: np.ndarray, y_mid: np.ndarray,
    meas: LineMeasurements, used: np.ndarray, isolated: np.ndarray | None = None,
) -> WaveSolution:
    """The final laws: every identified trace refined by the forward model of its arcs
    (:func:`engine.calib.arcmodel.fit_arc_model`, which measures the lamps' line amplitudes on
    the whole night, so blends are not biased by the catalogue's ratios).

    A trace whose refined ``c1`` or ``c2`` departs from the smooth model over the detector
    (8 robust sigmas) keeps its line-by-line solution.

    Parameters
    ----------
    solution : WaveSolution
        The line-by-line solution (the starting laws).
    spectra : dict
        ``{lamp: (flux, var)}`` arc spectra of shape ``(n, L)`` over ``x0[k] + arange(L)``.
    x0 : numpy.ndarray
        Shape ``(n,)`` first column of each window [pixel].
    x_mid, y_mid : numpy.ndarray
        Shape ``(n,)`` dome-lit centre of each trace (for the smooth models) [pixel].
    meas : LineMeasurements
        The line-group measurements (for the residual statistics).
    used : numpy.ndarray
        Shape ``(n, n_groups)`` lines used by the line-by-line fit.
    isolated : numpy.ndarray, optional
        Shape ``(n_groups,)`` groups of one line: their residuals make the statistics.

    Returns
    -------
    WaveSolution
        With ``model_chi2`` and ``lsf_sigma``.
    """
    fit = fit_arc_model(spectra, x0, solution.coef, solution.ok)
    good = fit.ok.copy()
    for k in (1, 2):
        _model, outlier = smooth_model(fit.coef[:, k], x_mid, y_mid, good)
        good &= ~outlier
    coef = np.where(good[:, None], fit.coef, solution.coef)
    # Residuals of blends against the true law reflect the catalogue's ratios, not the law:
    # the statistics use the isolated lines (no other line of the lamp within BLEND_PX).
    refined = _with_stats(coef, solution.ok, solution.flagged & ~good, meas, used, isolated)
    return replace(refined, model_chi2=np.where(good, fit.chi2, np.nan), lsf_sigma=np.where(good, fit.lsf[:, 0], np.nan))


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


def _with_stats(coef, ok, flagged, meas: LineMeasurements, used, stat_lines: np.ndarray | None = None) -> WaveSolution:
    """The solution with its line statistics; ``stat_lines`` (shape ``(n_groups,)`` bool,
    default all) selects the lines whose residuals make ``rms_aa`` and ``nmad_aa`` (the blue
    statistic uses every blue line)."""
    model = law_x(coef, t_of(meas.waves))
    sol = WaveSolution(coef=coef, ok=ok, flagged=flagged, n_lines=used.sum(1),
                       rms_aa=np.zeros(len(ok)), nmad_aa=np.zeros(len(ok)), blue_rms_aa=np.zeros(len(ok)))
    disp = sol.dispersion_aa_per_px(meas.waves)
    res_aa = np.where(used, (meas.x - model) * disp, np.nan)
    blue = meas.waves < BLUE_EDGE_AA
    res_stat = res_aa if stat_lines is None else np.where(stat_lines[None, :], res_aa, np.nan)

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rms = np.sqrt(np.nanmean(res_stat**2, axis=1))
        nmad = 1.4826 * np.nanmedian(np.abs(res_stat - np.nanmedian(res_stat, axis=1, keepdims=True)), axis=1)
        blue_rms = np.sqrt(np.nanmean(res_aa[:, blue] ** 2, axis=1)) if blue.any() else np.full(len(ok), np.nan)
    return WaveSolution(coef=coef, ok=ok, flagged=flagged, n_lines=used.sum(1), rms_aa=rms, nmad_aa=nmad,
                        blue_rms_aa=blue_rms)
