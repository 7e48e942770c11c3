"""Flexure of an exposure relative to the night's calibration.

* j (cross-dispersion): a coarse cross-correlation of the frame with the trace pattern over
  +-4 px, then Gauss-Newton on a common shift of every trace centre, using the model image of
  the extracted fluxes and its analytic derivative (the extraction operator moves; nothing is
  re-rasterised), from the correlation peak most probable under a 2-px flexure prior (on a
  dense lattice the pattern one trace step away correlates as well). Deterministic: every
  trace and column is used, no random subsets.
* i (dispersion): the night-sky line [OI] 5577 fitted in the extracted columns of the fainter
  half of the traces (where sky dominates), each trace predicting the line's column from the
  wavelength solution; the shift is the weighted median.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from engine import refdata
from engine.calib.products import NightCalibration

SKY_LINE_AIR_AA: tuple[float, ...] = (5577.338,)
"""The night-sky line of the i-flexure (air). Na D and [OI] 6300 sit in the OH forest and on
street-lamp lines whose unknown strengths bias their centroids by 0.2-0.7 px at R~100."""


@dataclass(frozen=True)
class Flexure:
    """Measured shifts [pixel] and their uncertainties."""

    dj: float
    dj_err: float
    di: float
    di_err: float
    n_lines: int


def jshift_scores(image: np.ndarray, cal: NightCalibration, max_shift: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Cross-correlation of the frame with the unit-flux trace pattern at whole-pixel shifts.

    Parameters
    ----------
    image : numpy.ndarray
        Shape ``CCD_SHAPE``: the debiased, cosmic-cleaned frame [e-].
    cal : NightCalibration
        The night's calibration (traces and their windows).
    max_shift : int
        Largest whole-pixel shift tried [pixel].

    Returns
    -------
    shifts, score : numpy.ndarray
        Shape ``(2 max_shift + 1,)`` each.
    """
    op = cal.operator(0.0)
    template = op.model_image(np.where(cal.col_ok, 1.0, 0.0))
    cols = slice(40, 2008, 4)
    data = image[:, cols] - np.median(image[:, cols], axis=0)
    tmpl = template[:, cols]
    shifts = np.arange(-max_shift, max_shift + 1)
    score = np.array([np.sum(data[60:-60] * np.roll(tmpl, s, axis=0)[60:-60]) for s in shifts])
    return shifts, score


FLEXURE_PRIOR_PX = 2.0
"""Width of the prior on the cross-dispersion flexure [pixel] (SEDM's j-shifts stay within a
few pixels; a step to the next overlapping trace is 5.5 px or more)."""


def coarse_jshift(image: np.ndarray, cal: NightCalibration, max_shift: int = 4) -> float:
    """The correlation peak of :func:`jshift_scores` most probable under the flexure prior.

    Traces that overlap in ``x`` sit a few pixels apart in ``y``; on a dense lattice the pattern
    shifted by one such step matches the frame nearly as well as the true shift (and can score
    higher where the sky is bright). Every interior local maximum is a candidate (a maximum at
    the edge of the search is only the slope towards such an alias), weighted by the Gaussian
    prior ``FLEXURE_PRIOR_PX``; whole pixels, refined by a parabola.

    Parameters
    ----------
    image : numpy.ndarray
        Shape ``CCD_SHAPE``: the debiased, cosmic-cleaned frame [e-].
    cal : NightCalibration
        The night's calibration (traces and their windows).
    max_shift : int
        Largest whole-pixel shift tried [pixel].
    """
    return choose_jshift(*jshift_scores(image, cal, max_shift))


def choose_jshift(shifts: np.ndarray, score: np.ndarray, prior_px: float = FLEXURE_PRIOR_PX) -> float:
    """The shift of :func:`coarse_jshift` from whole-pixel ``shifts`` and their ``score`` [pixel].

    Parameters
    ----------
    shifts : numpy.ndarray
        Shape ``(n,)``: whole-pixel shifts [pixel].
    score : numpy.ndarray
        Shape ``(n,)``: their correlation.
    prior_px : float
        Sigma of the Gaussian flexure prior [pixel].
    """
    best, best_w = float(shifts[int(np.argmax(score))]), -np.inf
    for j in range(1, shifts.size - 1):
        y0, y1, y2 = score[j - 1 : j + 2]
        if y1 >= y0 and y1 >= y2:
            denom = y0 - 2 * y1 + y2
            dj = float(shifts[j] + (0.5 * (y0 - y2) / denom if denom < 0 else 0.0))
            weight = float(y1) * np.exp(-0.5 * (dj / prior_px) ** 2)
            if weight > best_w:
                best, best_w = dj, weight
    return best


def measure_jshift(image: np.ndarray, variance: np.ndarray, cal: NightCalibration, n_iter: int = 3) -> tuple[float, float]:
    """Cross-dispersion shift of the trace pattern [pixel] and its formal error.

    Parameters
    ----------
    image, variance : numpy.ndarray
        Shape ``CCD_SHAPE``: the frame and its variance [e-, e-^2].
    cal : NightCalibration
        The night's calibration.
    n_iter : int
        Gauss-Newton refinements of the coarse shift.
    """
    dj = coarse_jshift(image, cal)
    err = np.inf
    w = 1.0 / np.maximum(variance, 1.0).ravel()
    d = image.ravel().astype(np.float64)
    for _ in range(n_iter):
        op = cal.operator(dj)
        flux = op.extract(image, deblend=1)
        model = op.model_image(flux).ravel()
        grad = op.model_image(flux, derivative=True).ravel()
        sel = np.abs(grad) > 0
        num = np.sum(w[sel] * grad[sel] * (d[sel] - model[sel]))
        den = np.sum(w[sel] * grad[sel] ** 2)
        step = num / den if den > 0 else 0.0
        dj = float(dj + np.clip(step, -1.0, 1.0))
        err = float(1.0 / np.sqrt(den)) if den > 0 else np.inf
        if abs(step) < 0.002:
            break
    return dj, err


def _oh_lines_near(wave_aa: float, half_width_aa: float) -> np.ndarray:
    """Vacuum wavelengths of the OH lines of the York (1991) list within a range [Angstrom]."""
    waves, labels = refdata.sky_lines()
    oh = np.array([bool(re.match(r"\d+-\d+ ", str(lab) + " ")) for lab in labels])
    return waves[oh & (np.abs(waves - wave_aa) < half_width_aa)]


def _pixel_gauss(cols: np.ndarray, centres: np.ndarray, sigma: float | np.ndarray) -> np.ndarray:
    """Pixel-integrated unit Gaussians summed over the last axis of ``centres``; -> cols.shape.

    ``sigma`` is one value or one per row of ``cols`` (shape ``(n, 1, 1)``)."""
    from scipy.special import ndtr

    c = cols[..., None]
    return (ndtr((c + 0.5 - centres[:, None, :]) / sigma) - ndtr((c - 0.5 - centres[:, None, :]) / sigma)).sum(-1)


def _project_out_baseline(a: np.ndarray, u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Remove each row's weighted least-squares fit of ``b0 + b1 u`` (rows = traces)."""
    s0, s1, s2 = w.sum(1), (w * u).sum(1), (w * u * u).sum(1)
    t0, t1 = (w * a).sum(1), (w * u * a).sum(1)
    det = s0 * s2 - s1 * s1
    b0 = (s2 * t0 - s1 * t1) / det
    b1 = (s0 * t1 - s1 * t0) / det
    return a - b0[:, None] - b1[:, None] * u


LSF_FALLBACK_PX = 1.13
"""Line-spread sigma used when the calibration has no measured one (products written before the
arc model measured it) [pixel]."""


def trace_lsf(cal: NightCalibration, idx: np.ndarray) -> np.ndarray:
    """Line-spread sigma of traces measured on the night's arcs.

    Parameters
    ----------
    cal : NightCalibration
        The night's calibration (its wavelength solution's ``lsf_sigma``).
    idx : numpy.ndarray
        Shape ``(k,)`` int: trace indices.

    Returns
    -------
    numpy.ndarray
        Shape ``(k,)``: sigma [pixel]; where it was not measured, the night's median (or
        ``LSF_FALLBACK_PX`` when none was).
    """
    lsf = getattr(cal.wave, "lsf_sigma", None)
    if lsf is None or not np.isfinite(lsf).any():
        return np.full(len(idx), LSF_FALLBACK_PX)
    lsf = np.asarray(lsf, float)
    return np.where(np.isfinite(lsf[idx]), lsf[idx], float(np.nanmedian(lsf)))


def _sky_line_shift(columns, variance, cal, idx, waves, half_window: float = 5.0):
    """Common shift of a sky feature fitted jointly in all traces ``idx``.

    One model for every trace: the feature (amplitude ``a1``) plus the OH lines around it taken
    as equally bright (amplitude ``a2``), both shared by all traces after dividing by each
    trace's flat, on a per-trace linear continuum. The shift is found by scanning chi^2
    (coarse then fine) and a parabola; fitting each trace alone and taking a median is biased
    at low S/N because the OH hump makes the per-trace estimate skewed.

    Returns
    -------
    (shift, error) in pixels, or ``None``.
    """
    disp = float(np.median(cal.wave.dispersion_aa_per_px(waves[:1], idx)))
    oh = _oh_lines_near(float(waves[0]), (half_window + 4.0) * disp)
    line_pred = cal.wave.x_of_wave(waves, idx) - cal.x0[idx, None]
    oh_pred = cal.wave.x_of_wave(oh, idx) - cal.x0[idx, None]
    lo = np.floor(line_pred.min(1) - half_window).astype(int)
    length = int(np.ceil(2 * half_window)) + 1 + int(np.ceil((line_pred.max(1) - line_pred.min(1)).max()))
    cols = lo[:, None] + np.arange(length)[None, :]
    inside = (cols >= 0) & (cols < cal.n_cols)
    take = np.clip(cols, 0, cal.n_cols - 1)
    flat = cal.flat.achromatic[idx][:, None]
    d = np.take_along_axis(columns[idx], take, 1) / flat
    v = np.take_along_axis(variance[idx], take, 1) / flat**2
    good = inside & np.isfinite(d) & np.isfinite(v)
    rows = good.all(1)
    if rows.sum() < 20:
        return None
    d, cols, line_pred, oh_pred = d[rows], cols[rows].astype(float), line_pred[rows], oh_pred[rows]
    sigma_px = trace_lsf(cal, idx[rows])[:, None, None]
    w = np.broadcast_to(1.0 / np.median(v[rows], axis=1, keepdims=True), d.shape)
    u = (cols - cols.mean(1, keepdims=True)) / length
    dp = _project_out_baseline(d, u, w)

    def chi2(mu: float) -> tuple[float, float]:
        g1 = _project_out_baseline(_pixel_gauss(cols, line_pred + mu, sigma_px), u, w)
        g2 = _project_out_baseline(_pixel_gauss(cols, oh_pred + mu, sigma_px), u, w) if oh.size else np.zeros_like(g1)
        a = np.array([[np.sum(w * g1 * g1), np.sum(w * g1 * g2)], [np.sum(w * g1 * g2), np.sum(w * g2 * g2)]])
        b = np.array([np.sum(w * g1 * dp), np.sum(w * g2 * dp)])
        coef = np.linalg.lstsq(a, b, rcond=None)[0]
        r = dp - coef[0] * g1 - coef[1] * g2
        return float(np.sum(w * r * r)), float(coef[0])

    coarse = np.arange(-2.0, 2.001, 0.1)
    c2 = [chi2(m) for m in coarse]
    best = coarse[int(np.argmin([c[0] for c in c2]))]
    fine = best + np.arange(-0.12, 0.1201, 0.02)
    f2 = np.array([chi2(m)[0] for m in fine])
    j = int(np.clip(np.argmin(f2), 1, fine.size - 2))
    y0, y1, y2 = f2[j - 1 : j + 2]
    curv = (y0 - 2 * y1 + y2) / 0.02**2
    if curv <= 0 or chi2(fine[j])[1] <= 0:
        return None
    shift = fine[j] - 0.02 * 0.5 * (y2 - y0) / (y0 - 2 * y1 + y2)
    dof = max(d.size - 2 - 2 * d.shape[0] - 1, 1)
    err = np.sqrt(2.0 / curv * max(y1 / dof, 1.0))
    return float(shift), float(err)


def measure_ishift(columns: np.ndarray, variance: np.ndarray, cal: NightCalibration) -> tuple[float, float, int]:
    """Dispersion-direction shift [pixel] from the [OI] 5577 A night-sky line.

    Fitted jointly in the fainter half of the traces, where sky dominates (see
    :func:`_sky_line_shift`).

    Parameters
    ----------
    columns, variance : numpy.ndarray
        Shape ``(n, n_cols)`` extracted column fluxes of the frame (background removed).

    Returns
    -------
    shift, error : float
        [pixel]; ``(0, inf)`` when the line could not be measured.
    n_traces : int
    """
    total = np.nansum(np.where(cal.col_ok, columns, 0.0), axis=1)
    use = cal.usable & cal.wave.ok & (total < np.nanmedian(total[cal.usable]))
    idx = np.flatnonzero(use)
    waves = refdata.air_to_vacuum(np.array(SKY_LINE_AIR_AA))
    res = _sky_line_shift(columns, variance, cal, idx, waves)
    if res is None:
        return 0.0, float("inf"), 0
    return res[0], res[1], int(idx.size)
