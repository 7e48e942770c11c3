"""Spectrum products: ``spec_...fits`` (flux, VARIANCE, TEMPLATE) and ``spec_...txt``, and the
PSF product ``psf_...fits`` (model cube, fitted spaxels, metaslices) for the console.

The text file carries every FITS header card as ``# KEY: value`` lines, then a ``# COLUMNS:``
line naming ``wavelength flux flux_err`` (the error, not the variance that SEDM's text files
hold in their third column and that Fritz reads as the error).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from engine.io.fitsio import write_atomic
from engine.provenance import Provenance

SPEC_SCHEMA = "sedmtui.spectrum"
SPEC_VERSION = 1
PSF_SCHEMA = "sedmtui.psf"


def spectrum_header(base: fits.Header, cards: dict, wave: np.ndarray) -> fits.Header:
    """The spectrum's header: raw/cube cards, then ``cards``, then the wavelength WCS.

    Parameters
    ----------
    base : astropy.io.fits.Header
        The cube's header.
    cards : dict
        ``{KEY: (value, comment)}`` of the extraction.
    wave : numpy.ndarray
        Shape ``(n,)``: the spectrum's wavelengths [Angstrom].
    """
    hdr = fits.Header()
    for card in base.cards:
        if card.keyword in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "BZERO", "BSCALE", "") \
                or card.keyword.startswith(("CTYPE", "CRVAL", "CDELT", "CRPIX", "CUNIT")):
            continue
        hdr[card.keyword] = (card.value, card.comment)
    for key, value in cards.items():
        hdr[key] = value
    hdr["CRVAL1"] = (float(wave[0]), "wavelength of the first sample [A, vacuum]")
    hdr["CDELT1"] = (float(wave[1] - wave[0]), "sampling [A]")
    hdr["CRPIX1"] = 1.0
    hdr["CTYPE1"] = "WAVE"
    hdr["CUNIT1"] = "Angstrom"
    hdr["AIRORVAC"] = ("vacuum", "wavelengths in vacuum")
    return hdr


def write_spectrum(fits_path: str | os.PathLike, txt_path: str | os.PathLike, wave: np.ndarray, flux: np.ndarray,
                   var: np.ndarray, header: fits.Header, provenance: Provenance, template: dict | None = None,
                   correlation: np.ndarray | None = None) -> None:
    """Write both spectrum files atomically.

    Parameters
    ----------
    template : dict, optional
        ``{"wave", "flux", "flux_flat"}`` of the best classification template on the
        spectrum's grid (saved as the ``TEMPLATE`` extension for the console and figures).
    correlation : numpy.ndarray, optional
        Shape ``(k, n)``: row ``l - 1`` holds the correlation of the errors of samples ``i``
        and ``i + l`` (NaN past the end); saved as the ``CORREL`` extension.
    """
    hdr = header.copy()
    provenance.stamp(hdr)
    hdr["SCHEMA"], hdr["SCHVER"] = SPEC_SCHEMA, SPEC_VERSION
    hdus = [fits.PrimaryHDU(np.asarray(flux, dtype=np.float64), header=hdr),
            fits.ImageHDU(np.asarray(var, dtype=np.float64), name="VARIANCE")]
    if template is not None:
        t = fits.table_to_hdu(Table({k: np.asarray(v, dtype=float) for k, v in template.items()}))
        t.name = "TEMPLATE"
        hdus.append(t)
    if correlation is not None:
        ch = fits.ImageHDU(np.asarray(correlation, dtype=np.float32), name="CORREL")
        ch.header["COMMENT"] = "row l-1: correlation of the errors of samples i and i+l (resampling)"
        hdus.append(ch)
    hdus.append(provenance.hdu())
    write_atomic(fits.HDUList(hdus), fits_path)
    lines = []
    for card in hdr.cards:
        if card.keyword in ("", "COMMENT", "HISTORY"):
            continue
        lines.append(f"# {card.keyword}: {card.value}")
    lines.append("# COLUMNS: wavelength flux flux_err  [A vacuum, erg/s/cm2/A (or BUNIT), 1-sigma error]")
    err = np.sqrt(np.where(np.asarray(var) >= 0, var, np.nan))
    body = "\n".join(f"{w:.3f} {f:.6e} {e:.6e}" for w, f, e in zip(wave, flux, err))
    txt_path = Path(txt_path)
    tmp = txt_path.with_name(f".{txt_path.name}.part")
    tmp.write_text("\n".join(lines) + "\n" + body + "\n")
    os.replace(tmp, txt_path)


def read_spectrum_fits(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, fits.Header, dict | None]:
    """Wavelength, flux, variance, header and the template (if any) of a ``spec_...fits``."""
    with fits.open(path) as hdul:
        h = hdul[0].header.copy()
        flux = np.asarray(hdul[0].data, dtype=float)
        var = np.asarray(hdul["VARIANCE"].data, dtype=float)
        tmpl = None
        if "TEMPLATE" in hdul:
            t = Table(hdul["TEMPLATE"].data)
            tmpl = {c: np.asarray(t[c]) for c in t.colnames}
    wave = h["CRVAL1"] + h["CDELT1"] * np.arange(flux.size)
    return wave, flux, var, h, tmpl


def write_psf_product(path: str | os.PathLike, *, spaxel_id: np.ndarray, xy: np.ndarray, model: np.ndarray,
                      fit_mask: np.ndarray, excluded: np.ndarray, metaslices: dict, cards: dict,
                      provenance: Provenance) -> None:
    """``psf_...fits``: MODEL (n_wave x n_spax, NaN outside the fit), SPAXELS (id, x, y, fitted,
    excluded), METASLICES (wavelength, centroid, amplitude) and the PSF/ADR cards."""
    hdr = fits.Header()
    for key, value in cards.items():
        hdr[key] = value
    provenance.stamp(hdr)
    hdr["SCHEMA"], hdr["SCHVER"] = PSF_SCHEMA, 1
    prim = fits.PrimaryHDU(np.asarray(model, dtype=np.float32).T, header=hdr)
    sp = fits.table_to_hdu(Table({"id": spaxel_id, "x": xy[:, 0], "y": xy[:, 1], "fitted": fit_mask,
                                  "excluded": excluded}))
    sp.name = "SPAXELS"
    ms = fits.table_to_hdu(Table({k: np.asarray(v) for k, v in metaslices.items()}))
    ms.name = "METASLICES"
    write_atomic(fits.HDUList([prim, sp, ms, provenance.hdu()]), path)
