"""Header cards and tables that describe an extraction (SEDM names; no I/O).

The pipeline puts them in the products (:mod:`engine.pipeline.recipes.products`); the
``psf_`` product and a standard's ``fluxcal_`` file carry the PSF cards too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.instrument import sedm
from engine.science.extract import EDGE, Extraction
from engine.science.psffit import PsfFit
from engine.timeutil import utc_now_iso

PRIOR_CARDS = ("PSFBETA", "PSFETA", "PSFCORE", "PSFRHO")
"""The PSF profile-family cards a standard's ``fluxcal_`` file carries for the science frames."""


def spectrum_cards(ext: Extraction, *, cube_name: str, tag: str, reducer: str, manual_region: bool, lstep: int,
                   mjd: float, calsrc: str | None) -> dict:
    """The extraction's cards of the ``spec_`` product (before S/N, correlation and SNID cards).

    Parameters
    ----------
    ext : Extraction
        The extraction.
    cube_name : str
        The cube it was extracted from (``SOURCE``).
    tag, reducer : str
        ``robot``/``redoHHMMSS`` and who asked.
    manual_region : bool
        The fit region was drawn by hand.
    lstep : int
        Slices per forced fit.
    mjd : float
        MJD of the exposure [day] (hours to the standard, ``CALDTH``).
    calsrc : str or None
        File name of the sensitivity applied.

    Returns
    -------
    dict
        ``{KEY: (value, comment)}`` in card order.
    """
    pos, fit, fitted, sens = ext.position, ext.fit, ext.fitted, ext.sensitivity
    cards = {
        "QUALITY": (ext.quality, "0 ok 1 recovered 2 minor 3 off-IFU 4 negative 5 no WCS"),
        "QUALREAS": (ext.quality_reason, "why"),
        "SRCPOS": (pos.srcpos, "position origin: astrom / auto (brightest) / manual"),
        "POSOK": (bool(pos.inside), "target inside the IFU"),
        "XPOS": (round(fitted[0], 4) if fitted else pos.x, "fitted x at LBDAPOS [spaxel]"),
        "YPOS": (round(fitted[1], 4) if fitted else pos.y, "fitted y at LBDAPOS [spaxel]"),
        "LBDAPOS": (sedm.REFERENCE_WAVELENGTH_AA, "wavelength of XPOS/YPOS [A]"),
        "XGUESS": (round(pos.x, 4), "starting x [spaxel]"), "YGUESS": (round(pos.y, 4), "starting y [spaxel]"),
        "EXTRACT": ("manual" if pos.srcpos == "manual" or manual_region else "auto", "extraction mode"),
        "EXTRTYPE": (f"auto_{tag}", "extraction type"), "EXTDATE": (utc_now_iso(), "extraction date"),
        "REDUCER": (reducer, "who made this extraction"),
        "NFITSPX": (int(ext.fit_mask.sum()), "spaxels fitted"),
        "NEXCLSPX": (int(ext.excluded.sum()), "spaxels excluded by hand"),
        "NCLIPPED": (int(ext.photometry.clipped.sum()) if ext.photometry is not None else 0,
                     "spaxel samples clipped (cosmics...)"),
        "LSTEP": (lstep, "slices per forced fit"), "FLXPSEC": (True, "flux per second"),
        "FLUXCAL": (sens is not None, "flux calibrated"), "BUNIT": (ext.unit, "flux unit"),
        "EDGECUT": (True, "edge samples removed"), "EDGECUTL": (EDGE, "samples removed at each end"),
        "SOURCE": (cube_name, "cube"),
    }
    if pos.astrom is not None:
        cards["XASTROM"] = (round(pos.astrom[0], 4), "astrometric x")
        cards["YASTROM"] = (round(pos.astrom[1], 4), "astrometric y")
    if pos.brightest is not None:
        cards["XBRIGHT"] = (round(pos.brightest[0], 4), "brightest-spaxel x")
        cards["YBRIGHT"] = (round(pos.brightest[1], 4), "brightest-spaxel y")
    if fit is not None:
        cards["PSFFWHM"] = (round(fit.shape.fwhm_units() * sedm.SPAXEL_UNIT_ARCSEC, 3), "PSF FWHM at 7000 A [arcsec]")
        cards.update(psf_cards(fit))
    cards.update(fluxcal_cards(ext, mjd=mjd, calsrc=calsrc))
    return cards


def fluxcal_cards(ext: Extraction, *, mjd: float, calsrc: str | None) -> dict:
    """The flux calibration applied (``CALSRC``, ``CALDTH``, telluric strengths), or why none.

    Parameters
    ----------
    ext : Extraction
        The extraction.
    mjd : float
        MJD of the exposure [day].
    calsrc : str or None
        File name of the sensitivity applied.
    """
    sens, cards = ext.sensitivity, {}
    if sens is not None:
        cards["CALSRC"] = (calsrc, "sensitivity file")
        cards["CALDTH"] = (round(abs(mjd - sens.mjd) * 24.0, 3), "hours between standard and this exposure")
        cards["CALAIRM"] = (round(sens.airmass, 4), "airmass of the standard")
        cards["TELLAO2"] = (round(sens.a_o2, 4), "telluric O2 strength applied")
        cards["TELLAH2O"] = (round(sens.a_h2o, 4), "telluric H2O strength applied")
    elif ext.fluxcal_note:
        cards["FLUXNOTE"] = (ext.fluxcal_note, "why not flux calibrated")
    if ext.standard is not None and sens is not None:
        cards["SELFCHK"] = (round(sens.selfcheck_rms_pct, 4), "standard vs reference rms [%]")
    return cards


def psf_cards(fit: PsfFit) -> dict:
    """The fitted PSF, ADR, neighbours and host (``PSF*``, ``NNEIGHB``, ``HOST*``)."""
    s = fit.shape
    return {"PSFMODEL": ("MoffatGaussPlane", "elliptical Moffat + Gaussian core + tilted plane"),
            "PSFALPHA": (round(s.alpha, 4), "Moffat alpha at 7000 A [spaxel]"),
            "PSFBETA": (round(s.beta, 4), "Moffat beta"),
            "PSFETA": (round(s.eta, 4), "Gaussian-core peak / Moffat peak"),
            "PSFCORE": (round(s.core, 4), "core sigma / alpha"),
            "PSFAB": (round(s.ab, 4), "axis ratio"), "PSFTHETA": (round(s.theta, 4), "major axis angle [rad]"),
            "PSFRHO": (round(s.rho, 4), "chromatic width exponent"),
            "PSFADRPA": (round(fit.adr.parallactic_deg, 3), "fitted parallactic angle [deg]"),
            "PSFADRZ": (round(fit.adr.airmass, 4), "fitted ADR airmass"),
            "PSFADRC2": (round(fit.adr.chi2_dof, 3), "ADR fit chi2/dof"),
            "PSFCHI2": (round(fit.chi2_dof, 3), "PSF fit chi2/dof"),
            "NNEIGHB": (int(fit.companions.n), "neighbouring point sources modelled"),
            "PSFPRIOR": (fit.prior_source or "none", "PSF profile-family prior (standard, UT)"),
            **host_cards(fit)}


def host_cards(fit: PsfFit) -> dict:
    """``HOSTMOD`` (and the disk's geometry when a host galaxy is modelled)."""
    cards = {"HOSTMOD": (fit.host is not None, "host galaxy modelled (exponential disk)")}
    if fit.host_test is not None:
        cards["HOSTDBIC"] = (round(fit.host_test.delta_bic, 1), "BIC gain of the host component (> 0 kept)")
    if fit.host is not None:
        h = fit.host
        cards.update({"HOSTX": (round(h.x, 3), "host centre x at LBDAPOS [spaxel]"),
                      "HOSTY": (round(h.y, 3), "host centre y at LBDAPOS [spaxel]"),
                      "HOSTSCL": (round(h.scale, 3), "host exponential scale length [spaxel]"),
                      "HOSTAB": (round(h.ab, 3), "host axis ratio"),
                      "HOSTPA": (round(h.theta, 3), "host major axis angle [rad]"),
                      "HOSTFRAC": (round(fit.host_test.host_fraction, 3), "host / point-source flux, 4000-8000 A")})
    return cards


def host_facts(fit: PsfFit | None) -> dict | None:
    """The host model for the state row: geometry (if kept) and the selection test (if tried)."""
    if fit is None or fit.host_test is None:
        return None
    out = {"modelled": fit.host is not None, "test": fit.host_test.as_dict()}
    if fit.host is not None:
        out.update({k: round(float(v), 4) for k, v in fit.host.__dict__.items()})
    return out


def correlation_cards(wave: np.ndarray, correlation: np.ndarray | None) -> dict:
    """``CORRLAG1``/``CORRLAG2``: mean noise correlation of samples one and two apart, 4000-9000 A.

    Parameters
    ----------
    wave : numpy.ndarray
        Shape ``(n_wave,)``: the cube's wavelengths [Angstrom].
    correlation : numpy.ndarray or None
        Shape ``(k, n_wave)``: correlation of samples ``i`` and ``i + l``.
    """
    if correlation is None:
        return {}
    sel = (wave >= 4000.0) & (wave <= 9000.0)
    out = {}
    for lag, row in enumerate(np.asarray(correlation), start=1):
        vals = row[sel][np.isfinite(row[sel])]
        if vals.size:
            out[f"CORRLAG{lag}"] = (round(float(np.mean(vals)), 4),
                                    f"mean error correlation, samples {lag} apart (4000-9000 A; CORREL ext.)")
    return out


def metaslice_table(fit: PsfFit) -> dict:
    """Columns of the ``psf_`` product's metaslice table (positions and amplitudes)."""
    return {"wave": fit.meta_wave, "x": fit.meta_xy[:, 0], "y": fit.meta_xy[:, 1], "x_err": fit.meta_err[:, 0],
            "y_err": fit.meta_err[:, 1], "amplitude": fit.meta_amp}


def template_table(template: dict | None, wave: np.ndarray) -> dict | None:
    """The best SNID template on the spectrum's grid (``TEMPLATE`` extension), or ``None``.

    Parameters
    ----------
    template : dict or None
        The classifier's best template (``wave``, ``flux``, ``flux_flat``, ``data_flat``).
    wave : numpy.ndarray
        Shape ``(n,)``: the spectrum's wavelengths [Angstrom].
    """
    if template is None:
        return None
    t = template
    return {"wave": wave, "flux": np.interp(wave, t["wave"], t["flux"]),
            "flux_flat": np.interp(wave, t["wave"], t["flux_flat"]),
            "data_flat": np.interp(wave, t["wave"], t["data_flat"])}


def extraction_figures(ext: Extraction, *, mjd: float, s2n: float, classification_note: str) -> dict:
    """What an extraction measured, for its ``extractions`` row (positions, PSF, quality, S/N).

    Parameters
    ----------
    ext : Extraction
        The extraction (its sensitivity's ``source`` set).
    mjd : float
        MJD of the exposure [day].
    s2n : float
        Median S/N of the spectrum (NaN: none).
    classification_note : str
        Why it was not classified, or ``''``.

    Returns
    -------
    dict
        Column values, and ``facts`` (fit-region size, excluded spaxels, notes, host model).
    """
    pos, fit, sens, fitted = ext.position, ext.fit, ext.sensitivity, ext.fitted
    return {
        "srcpos": pos.srcpos, "centroid_x": fitted[0] if fitted else None, "centroid_y": fitted[1] if fitted else None,
        "guess_x": pos.x, "guess_y": pos.y,
        "astrom_x": pos.astrom[0] if pos.astrom else None, "astrom_y": pos.astrom[1] if pos.astrom else None,
        "bright_x": pos.brightest[0] if pos.brightest else None,
        "bright_y": pos.brightest[1] if pos.brightest else None,
        "psf_fwhm_arcsec": fit.shape.fwhm_units() * sedm.SPAXEL_UNIT_ARCSEC if fit else None,
        "psf_ell": 1.0 - fit.shape.ab if fit else None, "adr_pa": fit.adr.parallactic_deg if fit else None,
        "adr_airmass": fit.adr.airmass if fit else None, "adr_chi2": fit.adr.chi2_dof if fit else None,
        "quality": ext.quality, "quality_reason": ext.quality_reason, "s2n": s2n if np.isfinite(s2n) else None,
        "fluxcal": int(sens is not None), "calsrc": Path(sens.source).name if sens and sens.source else None,
        "calsrc_dt_h": abs(mjd - sens.mjd) * 24.0 if sens else None,
        "facts": {"fluxcal_note": ext.fluxcal_note, "notes": list(ext.notes), "n_fit_spaxels": int(ext.fit_mask.sum()),
                  "excluded": [int(i) for i in ext.excluded_ids], "classification": classification_note,
                  "host": host_facts(fit),
                  "centroid_moved": None if ext.centroid_moved is None else round(ext.centroid_moved, 3),
                  "centroid_radius": ext.centroid_radius},
    }
