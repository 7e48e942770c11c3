"""The cube of an exposure: flexure, scattered light, extraction, resampling, flat, extinction.

``build_cube`` turns a debiased, cosmic-cleaned frame [e-] into per-spaxel spectra on the SEDM
wavelength grid (220 samples, 3700-9300 A) in electrons per second per Angstrom, divided by
the chromatic flat and corrected for Palomar extinction at the exposure's mean airmass. The
variance is propagated through every step (weights squared, resampling fractions squared).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from astropy.table import Table

from engine import refdata
from engine.calib.background import subtract_scattered_light
from engine.calib.products import NightCalibration
from engine.instrument import sedm
from engine.io.fitsio import write_atomic
from engine.provenance import Provenance
from engine.science.flexure import Flexure, measure_ishift, measure_jshift

CUBE_SCHEMA = "sedmtui.cube"
CUBE_VERSION = 1


@dataclass(frozen=True)
class Cube:
    """Spectra of every usable spaxel.

    Attributes
    ----------
    wave : numpy.ndarray
        Shape ``(n_wave,)`` [Angstrom, vacuum].
    flux, var : numpy.ndarray
        Shape ``(n_spax, n_wave)`` [e- s-1 A-1] and its variance (NaN where undefined).
    spaxel_id : numpy.ndarray
        Shape ``(n_spax,)`` trace index in the night's calibration.
    xy : numpy.ndarray
        Shape ``(n_spax, 2)`` spaxel-frame positions [spaxel unit].
    cards : dict
        Header cards ``{key: (value, comment)}``.
    """

    wave: np.ndarray
    flux: np.ndarray
    var: np.ndarray
    spaxel_id: np.ndarray
    xy: np.ndarray
    cards: dict = field(default_factory=dict)

    @property
    def n_spax(self) -> int:
        """Number of spaxels."""
        return int(self.spaxel_id.size)

    def slice_mean(self, lo: float, hi: float) -> np.ndarray:
        """Mean flux of every spaxel over ``[lo, hi]`` Angstrom; shape ``(n_spax,)``."""
        sel = (self.wave >= lo) & (self.wave <= hi)
        with np.errstate(invalid="ignore"):
            return np.nanmean(self.flux[:, sel], axis=1)


def extinction_factor(wave: np.ndarray, airmass: float) -> np.ndarray:
    """``10**(0.4 k(lambda) X)`` with the Palomar (Hayes & Latham 1975) curve.

    Parameters
    ----------
    wave : numpy.ndarray
        Wavelengths [Angstrom].
    airmass : float
        Mean airmass.
    """
    return 10 ** (0.4 * refdata.extinction_mag(wave) * airmass)


def build_cube(
    image: np.ndarray, variance: np.ndarray, cal: NightCalibration, *, exptime: float, airmass: float,
    flat: str = "chromatic",
) -> tuple[Cube, Flexure, np.ndarray]:
    """Cube of a frame.

    Parameters
    ----------
    image, variance : numpy.ndarray
        Debiased, cosmic-cleaned frame and its variance [e-, e-^2], shape ``CCD_SHAPE``.
    cal : NightCalibration
        The night's calibration.
    exptime : float
        [s].
    airmass : float
        Mean airmass of the exposure (extinction).
    flat : {"chromatic", "achromatic", "none"}

    Returns
    -------
    cube : Cube
    flexure : Flexure
    background : numpy.ndarray
        The scattered-light model [e-].
    """
    dj, dj_err = measure_jshift(image, variance, cal)
    op = cal.operator(dj)
    clean, background = subtract_scattered_light(image, op)
    columns = op.extract(clean)
    col_var = op.extract_variance(variance)
    di, di_err, n_lines = measure_ishift(columns, col_var, cal)
    flux, var = cal.rebinner(di).apply(columns, col_var)
    use = np.flatnonzero(cal.usable)
    flux, var = flux[use] / exptime, var[use] / exptime**2
    if flat == "chromatic":
        f = cal.flat.chromatic[use]
    elif flat == "achromatic":
        f = cal.flat.achromatic[use, None] * np.ones((1, sedm.CUBE_WAVE_AA.size))
    else:
        f = np.ones_like(flux)
    f = np.where(np.isfinite(f) & (f > 0.05), f, np.nan)
    ext = extinction_factor(sedm.CUBE_WAVE_AA, airmass)
    flux = flux / f * ext[None, :]
    var = var / f**2 * ext[None, :] ** 2
    flexure = Flexure(dj=dj, dj_err=dj_err, di=di, di_err=di_err, n_lines=n_lines)
    cards = {
        "JFLXCORR": (True, "j (cross-dispersion) flexure corrected"),
        "CCDJFLX": (round(dj, 4), "j flexure [pixel]"),
        "CCDJFLXE": (round(dj_err, 4), "j flexure error [pixel]"),
        "IFLXCORR": (n_lines > 0, "i (dispersion) flexure corrected"),
        "IFLXNTR": (n_lines, "traces measured for the i flexure"),
        "IFLXREF": ("[OI]5577", "sky line of the i flexure"),
        "CCDIFLX": (round(di, 4), "i flexure [pixel]"),
        "CCDIFLXE": (round(di_err, 4) if np.isfinite(di_err) else -1.0, "i flexure error [pixel]"),
        "CCDBKGD": (True, "scattered light subtracted"),
        "FLAT3D": (flat != "none", f"{flat} per-spaxel flat applied"),
        "ATMCORR": (True, "atmospheric extinction corrected"),
        "ATMSRC": ("Hayes & Latham 1975", "extinction curve"),
        "ATMSCALE": (round(float(np.mean(ext)), 5), "mean extinction correction factor"),
        "ATMAIRM": (round(airmass, 4), "airmass of the extinction correction (mean of exposure)"),
        "CALNIGHT": (cal.night, "night of the calibration products"),
        "BUNIT": ("electron/s/Angstrom", "cube unit"),
    }
    cube = Cube(wave=sedm.CUBE_WAVE_AA.copy(), flux=flux.astype(np.float32), var=var.astype(np.float32),
                spaxel_id=use, xy=cal.grid.xy[use], cards=cards)
    return cube, flexure, background


def resampling_correlation(first_bin: np.ndarray, frac: np.ndarray, n_wave: int, max_lag: int = 2) -> np.ndarray:
    """Correlation of the noise of neighbouring cube samples, created by the resampling.

    A detector column that straddles two or more 25.6-A bins puts the same electrons, hence the
    same noise, into each (at 7600 A a column spans ~34 A). With the columns' variances taken
    as equal over a few columns (they vary slowly along a trace), bins ``a`` and ``a + l``
    have covariance ``sum_c f_ca f_c,a+l`` and correlation
    ``sum_c f_ca f_c,a+l / sqrt(sum_c f_ca^2 sum_c f_c,a+l^2)``. The forced photometry combines
    spaxels at one wavelength with weights that change slowly with wavelength, so an extracted
    spectrum inherits the mean of its spaxels' correlations.

    Parameters
    ----------
    first_bin, frac : numpy.ndarray
        The resampler of the spaxels (:class:`engine.calib.resample.Rebinner` fields), shapes
        ``(n, n_cols)`` and ``(n, n_cols, k)``.
    n_wave : int
        Number of cube samples.
    max_lag : int

    Returns
    -------
    numpy.ndarray
        Shape ``(max_lag, n_wave)``: row ``l - 1`` is the correlation of sample ``i`` with
        sample ``i + l``, averaged over the spaxels (NaN where ``i + l`` is past the end).
    """
    n, _n_cols, k = frac.shape
    bins = first_bin[:, :, None] + np.arange(k)[None, None, :]
    rows = np.broadcast_to(np.arange(n)[:, None], first_bin.shape)

    def moment(lag: int) -> np.ndarray:
        out = np.zeros(n * n_wave)
        for j in range(k - lag):
            a = bins[:, :, j]
            ok = (a >= 0) & (a < n_wave) & (frac[:, :, j] > 0)
            out += np.bincount(rows[ok] * n_wave + a[ok], weights=(frac[:, :, j] * frac[:, :, j + lag])[ok],
                               minlength=n * n_wave)
        return out.reshape(n, n_wave)

    s0 = moment(0)
    corr = np.full((max_lag, n_wave), np.nan)
    for lag in range(1, max_lag + 1):
        sl = moment(lag)[:, :-lag]
        den = np.sqrt(s0[:, :-lag] * s0[:, lag:])
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.where(den > 0, sl / np.where(den > 0, den, 1.0), np.nan)
        corr[lag - 1, :-lag] = np.nanmean(rho, axis=0) if np.isfinite(rho).any() else np.nan
    return corr


def write_cube(path: str | os.PathLike, cube: Cube, header: fits.Header, provenance: Provenance) -> None:
    """``e3d_...fits``: FLUX (primary, n_wave x n_spax), VARIANCE, SPAXELS table, PROVENANCE.

    Parameters
    ----------
    path : path-like
        The ``e3d_`` file.
    cube : Cube
        The cube.
    header : astropy.io.fits.Header
        The frame's header (the cube's cards are added).
    provenance : Provenance
        What made it.
    """
    hdr = header.copy()
    for key, value in cube.cards.items():
        hdr[key] = value
    provenance.stamp(hdr)
    hdr["SCHEMA"], hdr["SCHVER"] = CUBE_SCHEMA, CUBE_VERSION
    hdr["CTYPE2"], hdr["CUNIT2"] = "WAVE", "Angstrom"
    hdr["CRVAL2"], hdr["CDELT2"], hdr["CRPIX2"] = float(cube.wave[0]), float(cube.wave[1] - cube.wave[0]), 1.0
    hdr["CTYPE1"] = "SPAXEL"
    prim = fits.PrimaryHDU(cube.flux.T.astype(np.float32), header=hdr)
    varh = fits.ImageHDU(cube.var.T.astype(np.float32), name="VARIANCE")
    sp = fits.table_to_hdu(Table({"id": cube.spaxel_id, "x": cube.xy[:, 0], "y": cube.xy[:, 1]}))
    sp.name = "SPAXELS"
    write_atomic(fits.HDUList([prim, varh, sp, provenance.hdu()]), path)


def read_cube(path: str | os.PathLike) -> tuple[Cube, fits.Header]:
    """Read an ``e3d_`` product."""
    with fits.open(path) as hdul:
        hdr = hdul[0].header.copy()
        flux = np.asarray(hdul[0].data, dtype=np.float32).T
        var = np.asarray(hdul["VARIANCE"].data, dtype=np.float32).T
        sp = Table(hdul["SPAXELS"].data)
    wave = hdr["CRVAL2"] + hdr["CDELT2"] * np.arange(flux.shape[1])
    xy = np.stack([np.asarray(sp["x"]), np.asarray(sp["y"])], 1)
    return Cube(wave=wave, flux=flux, var=var, spaxel_id=np.asarray(sp["id"]), xy=xy), hdr
