"""Forced photometry: the point source's amplitude and a tilted background plane in every slice.

Shape and position are fixed (from :func:`engine.science.psffit.fit_psf`) at every cube
wavelength; the amplitude and background plane of all 220 slices are solved as one batched
weighted linear least-squares problem with the cube variance, with iterative 5-sigma clipping of
outlying samples (sigma includes a 3 % error of the point-source model, so that a bright star's
core is not clipped for the model's own small error). The per-slice linear solve
(:func:`plane_solve`) is shared with the PSF fit, which solves the same amplitudes at each step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.science.host import HostShape, host_fractions
from engine.science.psf import REF_WAVE_AA, PsfShape, spaxel_fractions
from engine.science.scene import Companions

MODEL_ERROR = 0.03
"""Fractional error of the point-source model added to the noise when outliers are judged (PSF
fit and forced photometry). At a standard's S/N (~10^3 per core spaxel) a PSF model a few percent
off leaves core residuals of tens of sigma; judged on the noise alone, the fits rejected the
central spaxels themselves (seed 107: every spaxel within 2.8 spaxel units, and the shape then
fitted to the wings gave half the flux)."""


def basis_of(frac: np.ndarray, xy: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
    """The linear model's columns: target PSF, companions (if any), 1, x, y.

    Parameters
    ----------
    frac : numpy.ndarray
        Shape ``(m, n)``: the target's flux fraction in each of ``n`` spaxels, per slice.
    xy : numpy.ndarray
        Shape ``(n, 2)``: spaxel positions [spaxel unit].
    extra : numpy.ndarray or None
        Shape ``(m, n, k)``: companion and host columns (:func:`companion_basis`).

    Returns
    -------
    numpy.ndarray
        Shape ``(m, n, 1 + k + 3)``.
    """
    cols = [frac[:, :, None]]
    if extra is not None and extra.shape[2]:
        cols.append(extra)
    cols += [np.ones_like(frac)[:, :, None], np.broadcast_to(xy[:, 0], frac.shape)[:, :, None],
             np.broadcast_to(xy[:, 1], frac.shape)[:, :, None]]
    return np.concatenate(cols, axis=2)


def plane_solve(frac: np.ndarray, d: np.ndarray, w: np.ndarray, xy: np.ndarray,
                 extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice weighted least squares of ``d = A frac + sum_j C_j extra_j + b0 + bx x + by y``.

    Each slice is regularised on its own scale (one nearly empty slice must not damp another).

    Parameters
    ----------
    frac : numpy.ndarray
        Shape ``(m, n)``: the target's flux fraction per slice and spaxel.
    d, w : numpy.ndarray
        Shape ``(m, n)``: data [cube units] and weights (0: not used).
    xy : numpy.ndarray
        Shape ``(n, 2)``: spaxel positions [spaxel unit].
    extra : numpy.ndarray, optional
        Shape ``(m, n, k)``: companion and host columns.

    Returns
    -------
    coef : numpy.ndarray
        Shape ``(m, 1 + k + 3)``: amplitudes, then ``b0, bx, by``.
    model : numpy.ndarray
        Shape ``(m, n)``.
    """
    basis = basis_of(frac, xy, extra)
    p = basis.shape[2]
    bw = basis * w[:, :, None]
    ata = np.einsum("mnp,mnq->mpq", bw, basis)
    scale = 1.0 + np.abs(np.einsum("mpp->mp", ata)).max(axis=1)  # each slice's own: one slice cannot damp another
    ata = ata + np.eye(p)[None] * 1e-12 * scale[:, None, None]
    atb = np.einsum("mnp,mn->mp", bw, np.nan_to_num(d))
    coef = np.linalg.solve(ata, atb[:, :, None])[:, :, 0]
    return coef, np.einsum("mnp,mp->mn", basis, coef)


def companion_basis(xy: np.ndarray, shape: PsfShape, wave: np.ndarray, centres: np.ndarray,
                    comp: Companions | None, host: HostShape | None = None) -> np.ndarray | None:
    """Extra basis columns (m, n, k): one PSF per neighbour, then the host galaxy (if any).

    Every component follows the target's ADR track ``centres`` (m, 2): the neighbours relative
    to the track's mean, the host relative to the track at 7000 A (``host`` is its centre there).
    """
    cols = []
    if comp is not None and comp.n:
        mean_c = centres.mean(axis=0)
        cols += [spaxel_fractions(xy, q + (centres - mean_c), shape, wave) for q in comp.points]
    if host is not None:
        at_ref = np.array([np.interp(REF_WAVE_AA, wave, centres[:, i]) for i in (0, 1)])
        cols.append(host_fractions(xy, host, shape, wave, shifts=centres - at_ref))
    return np.stack(cols, axis=2) if cols else None



@dataclass(frozen=True)
class ForcedPhotometry:
    """Spectrum of the point source and the model of the fitted spaxels.

    Attributes
    ----------
    flux, var : numpy.ndarray
        Shape ``(n_wave,)`` total flux of the source (cube units) and its variance.
    model : numpy.ndarray
        Shape ``(n_spax, n_wave)`` PSF + background model (NaN outside the fitted spaxels).
    background : numpy.ndarray
        Shape ``(n_wave, 3)`` plane coefficients ``b0, bx, by``.
    clipped : numpy.ndarray
        Shape ``(n_spax, n_wave)`` bool: samples rejected as outliers.
    centres : numpy.ndarray
        Shape ``(n_wave, 2)`` source position used at each wavelength.
    host_flux : numpy.ndarray or None
        Shape ``(n_wave,)`` total flux of the host galaxy (cube units), when one is modelled.
    """

    flux: np.ndarray
    var: np.ndarray
    model: np.ndarray
    background: np.ndarray
    clipped: np.ndarray
    centres: np.ndarray
    host_flux: np.ndarray | None = None


MAX_CLIPPED_PSF_FRACTION = 0.35
"""Forced photometry rejects no sample of a slice once the rejected samples would hold more than
this fraction of the point source's model there (a cosmic ray or bad column takes one or two
spaxels; the brightest spaxel of a sharp PSF holds ~20 %)."""


def forced_photometry(
    wave: np.ndarray, flux: np.ndarray, var: np.ndarray, xy: np.ndarray, fit_mask: np.ndarray,
    shape: PsfShape, centres: np.ndarray, *, lstep: int = 1, clip: float = 5.0, n_iter: int = 3,
    model_error: float = MODEL_ERROR, companions: Companions | None = None, host: HostShape | None = None,
) -> ForcedPhotometry:
    """Amplitude and background plane of every slice, the PSF fixed; one batched solve.

    ``lstep > 1`` averages that many adjacent slices before the fit and interpolates the
    spectrum back to every slice (for faint sources). ``companions`` and ``host`` (absolute
    positions, from :func:`fit_psf`) add one free amplitude each per slice.

    Samples deviating by more than ``clip`` sigma are rejected (cosmic rays, bad columns) and
    the solve repeated. The sigma includes ``model_error`` times the point source's model: the
    fixed PSF is never exact, and on a bright standard (S/N ~10^3 per spaxel in the core) a
    model 3 % too wide leaves core residuals of tens of noise sigma; clipped on the noise alone,
    the core spaxels went and the flux with them (5 % in the blue of a synthetic standard).
    """
    sel = np.flatnonzero(fit_mask)
    n_wave = wave.size
    groups = [np.arange(i, min(i + lstep, n_wave)) for i in range(0, n_wave, lstep)]
    gw = np.array([wave[g].mean() for g in groups])
    d = np.array([np.nanmean(flux[sel][:, g], axis=1) for g in groups])
    v = np.array([np.nanmean(var[sel][:, g], axis=1) / len(g) for g in groups])
    gc = np.array([centres[g].mean(axis=0) for g in groups])
    frac = spaxel_fractions(xy[sel], gc, shape, gw)
    extra = companion_basis(xy[sel], shape, gw, gc, companions, host)
    good = np.isfinite(d) & np.isfinite(v) & (v > 0)
    w = np.where(good, 1.0 / np.where(good, v, 1.0), 0.0)
    clipped = np.zeros_like(good)
    for _ in range(n_iter):
        coef, model = plane_solve(frac, d, w * ~clipped, xy[sel], extra)
        psf_part = model_error * coef[:, :1] * frac
        z = np.where(good, (d - model) / np.sqrt(np.where(good, v, 1.0) + psf_part**2), 0.0)
        new = clipped | (np.abs(z) > clip)
        # rejecting much of the star's light means the model is off, not the data (seed 108's
        # standard: one-way clipping took the core, 261 -> 1 e-/s/A): keep that slice whole
        heavy = (frac * new).sum(1) > MAX_CLIPPED_PSF_FRACTION * frac.sum(1)
        new[heavy] = False
        if np.array_equal(new, clipped):
            break
        clipped = new
    coef, model = plane_solve(frac, d, w * ~clipped, xy[sel], extra)
    basis = basis_of(frac, xy[sel], extra)
    ww = w * ~clipped
    ata = np.einsum("mnp,mnq->mpq", basis * ww[:, :, None], basis) + np.eye(basis.shape[2])[None] * 1e-12
    cov = np.linalg.pinv(ata)
    amp, amp_var = coef[:, 0], cov[:, 0, 0]
    if lstep > 1:
        amp_full = np.interp(wave, gw, amp)
        var_full = np.interp(wave, gw, amp_var) * lstep
        full_coef = np.stack([np.interp(wave, gw, coef[:, k]) for k in range(coef.shape[1])], 1)
        full_frac = spaxel_fractions(xy[sel], centres, shape, wave)
        full_extra = companion_basis(xy[sel], shape, wave, centres, companions, host)
        full_model = np.einsum("mnp,mp->mn", basis_of(full_frac, xy[sel], full_extra), full_coef)
    else:
        amp_full, var_full, full_model = amp, amp_var, model
    bkg = coef[:, -3:] if lstep == 1 else np.stack([np.interp(wave, gw, coef[:, k]) for k in range(-3, 0)], 1)
    model_all = np.full(flux.shape, np.nan, dtype=np.float32)
    model_all[sel] = full_model.T
    clipped_all = np.zeros(flux.shape, bool)
    if lstep == 1:
        clipped_all[sel] = clipped.T
    host_flux = None
    if host is not None:
        k = 1 + (companions.n if companions is not None else 0)
        host_flux = coef[:, k] if lstep == 1 else np.interp(wave, gw, coef[:, k])
    return ForcedPhotometry(flux=amp_full, var=var_full, model=model_all, background=bkg, clipped=clipped_all,
                            centres=centres, host_flux=host_flux)


__all__ = ["MAX_CLIPPED_PSF_FRACTION", "MODEL_ERROR", "ForcedPhotometry", "basis_of", "companion_basis", "forced_photometry",
           "plane_solve"]
