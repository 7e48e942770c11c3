"""Synthetic Rainbow-camera (guider) frames and the reference star catalogue of each field.

Each guider frame images the field around the IFU with a true TAN WCS: the IFU centre falls
on the guider pixel of the dated IFU-centre table (plus a small true error), the scale is
near 0.378 arcsec/pixel, North is nearly up and East left. Stars come from a catalogue drawn
per field (magnitudes with N(<m) ~ 10**(0.3 m)); the catalogue is written for the engine, the
WCS only into the truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from engine.astrometry.solve import nominal_cd
from engine.instrument import sedm
from engine.instrument.sky import standard_to_sky

GUIDER_ZEROPOINT = 25.0
"""AB magnitude giving 1 e-/s in the guider's r band."""

GUIDER_READ_NOISE = 8.0
GUIDER_BIAS = 500.0
GUIDER_GAIN = 1.0


@dataclass(frozen=True)
class StarField:
    """Reference stars around one pointing.

    Attributes
    ----------
    ra, dec : numpy.ndarray
        Shape ``(n,)`` [degree].
    mag : numpy.ndarray
        Shape ``(n,)`` r-band AB magnitudes.
    """

    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray


def draw_star_field(ra0: float, dec0: float, rng: np.random.Generator, radius_arcmin: float = 8.5) -> StarField:
    """Draw a field of stars within ``radius_arcmin`` of ``(ra0, dec0)`` [degree]."""
    n = rng.poisson(260)
    u = rng.uniform(0.0, 1.0, n)
    mag = 20.5 + np.log10(u) / 0.3  # N(<m) ~ 10**(0.3 m), faint end 20.5
    mag = mag[mag > 10.5]
    n = mag.size
    r = radius_arcmin * 60.0 * np.sqrt(rng.uniform(0, 1, n))
    phi = rng.uniform(0, 2 * math.pi, n)
    ra, dec = standard_to_sky(r * np.cos(phi), r * np.sin(phi), ra0, dec0)
    return StarField(ra=ra, dec=dec, mag=mag)


def guider_wcs(ifu_ra: float, ifu_dec: float, night: str, rng: np.random.Generator) -> tuple[WCS, dict]:
    """The true guider WCS: the IFU centre at its table pixel (+0.3 px), scale and rotation.

    Returns
    -------
    wcs : astropy.wcs.WCS
    truth : dict
        ``crpix`` (0-based), ``scale_arcsec``, ``rotation_deg``.
    """
    epoch = sedm.ifu_centre_for(night)
    cx = epoch.x_px + rng.normal(0.0, 0.3)
    cy = epoch.y_px + rng.normal(0.0, 0.3)
    scale = sedm.GUIDER_SCALE_ARCSEC * (1.0 + rng.normal(0.0, 0.002))
    rho_deg = 0.4 + rng.normal(0.0, 0.05)
    truth = {"crpix": [cx, cy], "scale_arcsec": scale, "rotation_deg": rho_deg, "parity": sedm.GUIDER_PARITY}
    return wcs_from_truth((ifu_ra, ifu_dec), truth), truth


def wcs_from_truth(crval: tuple[float, float], truth: dict) -> WCS:
    """The guider WCS described by a truth ``guider_wcs`` entry.

    Parameters
    ----------
    crval : tuple of float
        RA, Dec of the reference pixel (the IFU centre) [degree].
    truth : dict
        ``crpix`` (0-based) [pixel], ``scale_arcsec`` [arcsec/pixel], ``rotation_deg`` [degree],
        ``parity`` (``neg``/``pos``; ``pos`` when absent, as in truth files written before it).
    """
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [float(crval[0]), float(crval[1])]
    w.wcs.crpix = [truth["crpix"][0] + 1.0, truth["crpix"][1] + 1.0]
    w.wcs.cd = nominal_cd(truth["scale_arcsec"], truth["rotation_deg"], truth.get("parity", "pos")) / 3600.0
    return w


def render_guider_frame(
    wcs: WCS,
    field: StarField,
    extra_sources: list[tuple[float, float, float]],
    *,
    exptime: float,
    fwhm_arcsec: float,
    sky_mag_arcsec2: float,
    extinction_mag: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render one guider exposure as uint16 ADU.

    Parameters
    ----------
    extra_sources : list of (ra, dec, mag)
        Additional point sources (the target, a neighbour) [degree, degree, AB mag].
    extinction_mag : float
        Grey extinction (clouds) applied to every source [mag].
    """
    ny, nx = sedm.GUIDER_SHAPE
    ra = np.concatenate([field.ra, [s[0] for s in extra_sources]])
    dec = np.concatenate([field.dec, [s[1] for s in extra_sources]])
    mag = np.concatenate([field.mag, [s[2] for s in extra_sources]])
    x, y = wcs.all_world2pix(ra, dec, 0)
    jitter = rng.normal(0.0, 0.15, 2)
    x, y = x + jitter[0], y + jitter[1]
    scale = sedm.GUIDER_SCALE_ARCSEC
    sky = 10 ** (-0.4 * (sky_mag_arcsec2 - GUIDER_ZEROPOINT)) * scale**2 * exptime
    image = np.full((ny, nx), sky, dtype=np.float64)
    sigma = fwhm_arcsec / scale / 2.3548
    flux = 10 ** (-0.4 * (mag + extinction_mag - GUIDER_ZEROPOINT)) * exptime
    for xi, yi, fi in zip(x, y, flux):
        half = int(min(40, 6 * sigma + 2 * math.log10(max(fi, 10.0))))
        x0, x1 = int(xi) - half, int(xi) + half + 1
        y0, y1 = int(yi) - half, int(yi) + half + 1
        if x1 < 0 or y1 < 0 or x0 >= nx or y0 >= ny:
            continue
        xs = np.arange(max(x0, 0), min(x1, nx))
        ys = np.arange(max(y0, 0), min(y1, ny))
        if xs.size == 0 or ys.size == 0:
            continue
        gx = np.exp(-0.5 * ((xs - xi) / sigma) ** 2)
        gy = np.exp(-0.5 * ((ys - yi) / sigma) ** 2)
        stamp = np.outer(gy, gx)
        image[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1] += fi * stamp / (2 * math.pi * sigma**2)
    noisy = rng.poisson(image).astype(np.float64) + rng.normal(0.0, GUIDER_READ_NOISE, image.shape)
    return np.clip(np.rint(noisy / GUIDER_GAIN + GUIDER_BIAS), 0, 65535).astype(np.uint16)


def guider_header(start, exptime: float, obj: str, tel_ra: str, tel_dec: str, base: fits.Header) -> fits.Header:
    """Header of a guider frame: the IFU exposure's pointing keys, RC camera identity."""
    h = base.copy()
    h["CAM_NAME"] = "RC Cam"
    h["IMGTYPE"] = "GUIDER"
    h["OBJECT"] = obj
    h["FILTER"] = "r"
    h["TEL_RA"] = tel_ra
    h["TEL_DEC"] = tel_dec
    h["RA"] = tel_ra
    h["DEC"] = tel_dec
    h["GAIN"] = GUIDER_GAIN
    return h
