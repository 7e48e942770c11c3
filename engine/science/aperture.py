"""Aperture check of a PSF extraction: the PSF flux against the aperture flux the same PSF implies.

Used on standard stars before their sensitivity is trusted (``engine.science.extract``).
Pure functions of arrays.
"""

from __future__ import annotations

import numpy as np

from engine.science.photometry import ForcedPhotometry
from engine.science.psf import PsfShape, spaxel_fractions

APERTURE_BANDS_AA = ((4000.0, 5000.0), (5000.0, 6000.0), (6000.0, 7000.0), (7000.0, 8000.0), (8000.0, 9000.0))
"""Bands of :func:`aperture_ratio` [Angstrom]."""


def aperture_ratio(wave: np.ndarray, flux: np.ndarray, xy: np.ndarray, fit_mask: np.ndarray, shape: PsfShape,
                   fp: ForcedPhotometry) -> np.ndarray:
    """PSF flux over the aperture flux the same PSF implies, per band of :data:`APERTURE_BANDS_AA`.

    The aperture is the fitted region: its data minus the fitted background plane, summed, and
    divided by the fraction of the PSF model inside it (a curve-of-growth correction, 1-2 % for a
    10-unit region). For a model that describes the data the ratio is 1 whatever the model's
    wings; a fit that has bent the profile to a damaged or mis-modelled core gives a ratio far
    from 1 (seed 114 before the cosmic-ray fix: 0.02 in the blue; seed 107 before the outlier
    floor: 0.4-0.5). Clipped samples count as they are (a fit bent to the data clips the very
    samples that show it; a stray cosmic ray moves one slice, not the band's median); undefined
    ones take the model.

    Parameters
    ----------
    wave : numpy.ndarray
        Shape ``(n_wave,)``: the cube's wavelengths [Angstrom].
    flux : numpy.ndarray
        Shape ``(n_spax, n_wave)``: the cube's flux [e-/s/A].
    xy : numpy.ndarray
        Shape ``(n_spax, 2)``: spaxel positions [spaxel unit].
    fit_mask : numpy.ndarray
        Shape ``(n_spax,)`` bool: the fitted region (the aperture).
    shape : PsfShape
        The fitted PSF.
    fp : ForcedPhotometry
        The forced photometry with that PSF (its model, background and flux).

    Returns
    -------
    numpy.ndarray
        Shape ``(len(APERTURE_BANDS_AA),)``: median ratio over each band (NaN where empty).
    """
    sel = np.flatnonzero(fit_mask)
    data = flux[sel].astype(float)
    model = fp.model[sel].astype(float)
    data = np.where(np.isfinite(data), data, model)
    b = fp.background
    plane = b[:, 0][None, :] + xy[sel, 0:1] * b[:, 1][None, :] + xy[sel, 1:2] * b[:, 2][None, :]
    frac = spaxel_fractions(xy[sel], fp.centres, shape, wave).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = fp.flux * frac / np.nansum(data - plane, axis=0)
    out = []
    for lo, hi in APERTURE_BANDS_AA:
        r = ratio[(wave >= lo) & (wave < hi) & np.isfinite(ratio)]
        out.append(float(np.median(r)) if r.size else float("nan"))
    return np.array(out)
