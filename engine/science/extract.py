"""One extraction, from a cube and a starting position to a calibrated spectrum (no I/O).

:func:`extract` fits the PSF (with ADR, neighbours and host) on the fit region, measures the
target by forced photometry, sets the quality flag, and applies the flux calibration: the
sensitivity it is given (science), or the one it fits on the spectrum itself (a standard with
quality 0). It reads no file and writes none; naming, provenance and writing are the
pipeline's (:mod:`engine.pipeline.recipes.products`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine import refdata
from engine.errors import AlgorithmError
from engine.instrument import sedm
from engine.science.adr import Meteo
from engine.science.aperture import aperture_ratio
from engine.science.cube import Cube
from engine.science.fluxcal import Sensitivity, apply_sensitivity, fit_sensitivity
from engine.science.photometry import ForcedPhotometry, forced_photometry
from engine.science.position import GUESS_ERR, Position, fit_region
from engine.science.psffit import PsfFit, ShapePrior, fit_psf
from engine.science.quality import assess_quality

EDGE = sedm.EDGE_CUT_SAMPLES
"""Samples removed at each end of the delivered spectrum."""


@dataclass(frozen=True)
class Observing:
    """The conditions of an exposure that the extraction needs (from its header).

    Attributes
    ----------
    airmass : float
        Mean airmass of the exposure.
    parallactic_deg : float
        Mean telescope position angle [degree].
    mjd : float
        MJD of the exposure's start [day].
    meteo : Meteo
        Pressure, temperature and humidity (ADR).
    """

    airmass: float
    parallactic_deg: float
    mjd: float
    meteo: Meteo

    @classmethod
    def from_header(cls, header) -> Observing:
        """From ``AIRMASS``/``ENDAIR``, ``TEL_PA``/``END_PA``, ``MJD_OBS`` and the weather cards."""
        pa0 = float(header.get("TEL_PA", 0.0) or 0.0)
        return cls(airmass=mean_airmass(header), parallactic_deg=0.5 * (pa0 + float(header.get("END_PA", pa0) or pa0)),
                   mjd=float(header.get("MJD_OBS", 0.0) or 0.0), meteo=Meteo.from_header(header))


def mean_airmass(header) -> float:
    """Mean of ``AIRMASS`` and ``ENDAIR`` (``ENDAIR`` missing: ``AIRMASS``; both: 1.1)."""
    x0 = float(header.get("AIRMASS", 1.1) or 1.1)
    return 0.5 * (x0 + float(header.get("ENDAIR", x0) or 1.1))


@dataclass(frozen=True)
class ExtractionSettings:
    """How to extract.

    Attributes
    ----------
    kind : {"science", "standard"}
        Science targets are fitted with a possible host galaxy; standards make a sensitivity.
    fit_radius : float
        Default fit-region radius [spaxel unit].
    n_metaslices : int
        Wavelength metaslices of the PSF fit.
    rotation_deg : float
        Rotation of the IFU on the sky [degree].
    region : dict or None
        Manual fit region (:func:`engine.science.position.fit_region`).
    lstep : int
        Wavelength slices per forced-photometry fit.
    manual_radius : float or None
        How far the PSF fit may move from a hand-set centroid [spaxel unit] (a re-extraction
        request's ``centroid_radius``; ``None``: ``GUESS_ERR["manual"]``).
    """

    kind: str
    fit_radius: float
    n_metaslices: int
    rotation_deg: float
    region: dict | None = None
    lstep: int = 1
    manual_radius: float | None = None

    def guess_err(self, position: Position) -> float:
        """How far the fit may move from ``position`` [spaxel unit]."""
        if position.srcpos == "manual" and self.manual_radius is not None:
            return float(self.manual_radius)
        return GUESS_ERR[position.srcpos]


@dataclass(frozen=True)
class Extraction:
    """One extraction's result.

    Attributes
    ----------
    position : Position
        The starting position and its evidence.
    fit, photometry : PsfFit or None, ForcedPhotometry or None
        The PSF model and the forced photometry (``None``: target outside the IFU, or the fit
        failed).
    fit_mask, excluded : numpy.ndarray
        Shape ``(n_spax,)`` bool: spaxels fitted, spaxels excluded by hand.
    excluded_ids : tuple of int
        The excluded spaxels' ids (``Cube.spaxel_id``).
    fitted : tuple of float or None
        Fitted position at the reference wavelength [spaxel unit].
    quality, quality_reason : int, str
        The SEDM quality flag and why.
    notes : list of str
        What went wrong on the way (a failed PSF fit).
    sensitivity : Sensitivity or None
        The flux calibration applied (``None``: not flux calibrated).
    fluxcal_note : str
        Why there is no flux calibration ('' when there is one).
    standard : str or None
        The reference star a standard's sensitivity was fitted against (``None`` otherwise).
    aperture_deviation : float or None
        Standards: the largest ``|PSF flux / aperture flux - 1|`` over the 1000-A bands
        (:func:`engine.science.aperture.aperture_ratio`; ``None``: not checked).
    centroid_moved : float or None
        How far the fit moved from a hand-set centroid [spaxel unit] (``None``: not manual).
    centroid_radius : float or None
        How far it was allowed to move [spaxel unit] (``None``: not manual).
    wave : numpy.ndarray
        Shape ``(n,)``: the delivered wavelengths (edge-cut) [Angstrom].
    flux, var : numpy.ndarray
        Shape ``(n,)``: flux [erg/s/cm^2/A, or e-/s/A uncalibrated] and its variance.
    unit : str
        Unit of ``flux``.
    """

    position: Position
    fit: PsfFit | None
    photometry: ForcedPhotometry | None
    fit_mask: np.ndarray
    excluded: np.ndarray
    excluded_ids: tuple[int, ...]
    fitted: tuple[float, float] | None
    quality: int
    quality_reason: str
    notes: list[str] = field(default_factory=list)
    sensitivity: Sensitivity | None = None
    fluxcal_note: str = ""
    standard: str | None = None
    aperture_deviation: float | None = None
    centroid_moved: float | None = None
    centroid_radius: float | None = None
    wave: np.ndarray | None = None
    flux: np.ndarray | None = None
    var: np.ndarray | None = None
    unit: str = "electron/s/A"

    @property
    def extracted(self) -> bool:
        """A spectrum was measured."""
        return self.photometry is not None


def extract(cube: Cube, position: Position, observing: Observing, settings: ExtractionSettings, *,
            object_name: str, sensitivity: Sensitivity | None = None, fluxcal_note: str = "",
            shape_prior: ShapePrior | None = None) -> Extraction:
    """PSF fit, forced photometry, quality flag and flux calibration of one target.

    Parameters
    ----------
    cube : Cube
        The exposure's cube.
    position : Position
        Where to start.
    observing : Observing
        Airmass, parallactic angle, time and weather of the exposure.
    settings : ExtractionSettings
        Kind, fit region, metaslices, IFU rotation, lstep.
    object_name : str
        The target's name (a standard's reference spectrum is found by it).
    sensitivity : Sensitivity, optional
        Science frames: the sensitivity to apply (``None``: delivered uncalibrated).
    fluxcal_note : str
        Science frames without a sensitivity: why.
    shape_prior : ShapePrior, optional
        Profile-family prior from the night's nearest standard.

    Returns
    -------
    Extraction

    Raises
    ------
    RequestError
        A manual region holds no spaxel.
    """
    fit = fp = None
    notes: list[str] = []
    if position.inside:
        mask, excluded = fit_region(cube, position.xy, settings.region, settings.fit_radius)
        try:
            fit, fp = _fit(cube, position, observing, settings, mask, shape_prior)
        except AlgorithmError as exc:
            notes.append(f"PSF fit failed: {exc}")
    else:
        mask, excluded = np.zeros(cube.n_spax, bool), np.zeros(cube.n_spax, bool)
    counts = fp.flux if fp is not None else np.full(cube.wave.size, np.nan)
    var = fp.var if fp is not None else np.full(cube.wave.size, np.nan)
    fitted = (fit.adr.x_ref, fit.adr.y_ref) if fit is not None else None
    pos = position
    quality, reason = _quality(settings.kind, pos, fit, counts if fp is not None else None, notes)
    quality, reason, moved = manual_check(pos, fitted, quality, reason, settings.guess_err(pos))
    standard = aperture = None
    if fp is None:
        sensitivity, fluxcal_note = None, "not extracted"
    elif settings.kind == "standard":
        aperture = _aperture_deviation(cube, fit, fp) if fit is not None else None
        standard, sensitivity, fluxcal_note = _standard_sensitivity(cube, counts, var, object_name, quality,
                                                                    observing, aperture)
    if sensitivity is not None:
        flux, fvar = apply_sensitivity(counts, var, sensitivity, observing.airmass)
        unit = "erg/s/A/cm^2"
    else:
        flux, fvar, unit = counts, var, "electron/s/A"
    return Extraction(position=pos, fit=fit, photometry=fp, fit_mask=mask, excluded=excluded,
                      excluded_ids=tuple(int(i) for i in cube.spaxel_id[excluded]), fitted=fitted,
                      quality=quality, quality_reason=reason, notes=notes, sensitivity=sensitivity,
                      fluxcal_note=fluxcal_note, standard=standard, aperture_deviation=aperture,
                      centroid_moved=moved,
                      centroid_radius=settings.guess_err(pos) if moved is not None else None,
                      wave=cube.wave[EDGE:-EDGE],
                      flux=flux[EDGE:-EDGE], var=fvar[EDGE:-EDGE], unit=unit)


def manual_check(pos: Position, fitted: tuple[float, float] | None, quality: int, reason: str,
                 allowed: float) -> tuple[int, str, float | None]:
    """A hand-set centroid is obeyed or flagged: ``(quality, reason, moved)``.

    Parameters
    ----------
    pos : Position
        The starting position (only a ``manual`` one is checked).
    fitted : tuple of float or None
        The fitted position [spaxel unit].
    quality, reason : int, str
        The quality flag so far and why.
    allowed : float
        How far the fit may move from the hand-set centroid [spaxel unit].

    Returns
    -------
    tuple
        ``moved`` is how far the fitted position is from the hand-set centroid [spaxel unit]. A
        fit that moved farther than allowed ran to another source (or to nothing): it is
        quality 4 with the distance in the reason, never a good (delivered) extraction.
    """
    if pos.srcpos != "manual" or fitted is None:
        return quality, reason, None
    moved = float(np.hypot(fitted[0] - pos.x, fitted[1] - pos.y))
    if moved > allowed and quality != 3:
        return 4, (f"PSF fit moved {moved:.2f} spaxels from the hand-set centroid ({pos.x:+.2f}, {pos.y:+.2f}) "
                   f"to ({fitted[0]:+.2f}, {fitted[1]:+.2f}), more than the {allowed:.2f} allowed: another source "
                   "or no source there"), moved
    return quality, reason, moved


def _quality(kind: str, pos: Position, fit: PsfFit | None, counts: np.ndarray | None,
             notes: list[str]) -> tuple[int, str]:
    """The quality flag and why (a failed PSF fit makes a good one 4)."""
    fitted = (fit.adr.x_ref, fit.adr.y_ref) if fit is not None else None
    offset = float(np.hypot(fitted[0] - pos.astrom[0], fitted[1] - pos.astrom[1])) if fitted and pos.astrom else None
    quality, reason = assess_quality(
        kind=kind, srcpos=pos.srcpos, position=pos.xy if not pos.inside or fitted is None else fitted,
        flux=counts[EDGE:-EDGE] if counts is not None else None, astrometry_reason=pos.astrometry_reason,
        adr_chi2=fit.adr.chi2_dof if fit else None, centroid_offset=offset,
    )
    if notes and quality in (0, 2):
        quality, reason = 4, notes[0]
    return quality, reason


def _fit(cube: Cube, position: Position, observing: Observing, settings: ExtractionSettings, mask: np.ndarray,
         shape_prior: ShapePrior | None) -> tuple[PsfFit, ForcedPhotometry]:
    """The PSF fit on the metaslices, then the forced photometry at the ADR track."""
    c = cube
    fit = fit_psf(c.wave, c.flux, c.var, c.xy, position.xy, n_meta=settings.n_metaslices, fit_mask=mask,
                  meteo=observing.meteo, airmass=observing.airmass, parallactic_deg=observing.parallactic_deg,
                  rotation_deg=settings.rotation_deg, guess_err=settings.guess_err(position),
                  find_host=settings.kind == "science", shape_prior=shape_prior,
                  bright_sources=(position.brightest,) if position.brightest is not None else ())
    centres = fit.adr.position(c.wave, settings.rotation_deg, observing.meteo)
    fp = forced_photometry(c.wave, c.flux, c.var, c.xy, fit.fit_mask, fit.shape, centres, lstep=settings.lstep,
                           companions=fit.companions, host=fit.host)
    return fit, fp


APERTURE_TOLERANCE = 0.05
"""A standard whose PSF flux and aperture flux (:func:`engine.science.aperture.aperture_ratio`)
differ by more than this in any 1000-A band is not used for flux calibration. Healthy wide-prior
standards agree to 0.1-0.5 %; the failures this guards against were off by 50-98 %."""


def _aperture_deviation(cube: Cube, fit: PsfFit, fp: ForcedPhotometry) -> float:
    """Largest ``|PSF flux / aperture flux - 1|`` over the bands (0 when no band can be checked)."""
    ratio = aperture_ratio(cube.wave, cube.flux, cube.xy, fit.fit_mask, fit.shape, fp)
    ratio = ratio[np.isfinite(ratio)]
    return float(np.max(np.abs(ratio - 1.0))) if ratio.size else 0.0


def _standard_sensitivity(cube: Cube, counts: np.ndarray, var: np.ndarray, object_name: str, quality: int,
                          observing: Observing, aperture: float | None) -> tuple[str | None, Sensitivity | None, str]:
    """A standard's own sensitivity: ``(reference star, sensitivity, why not)``."""
    std = refdata.standard_name(object_name)
    if std is None:
        known = ", ".join(refdata.known_standards())
        return None, None, f"unknown standard {object_name}: no reference spectrum ({known})"
    if quality != 0:
        return None, None, f"standard not used for flux calibration (quality {quality})"
    if aperture is not None and aperture > APERTURE_TOLERANCE:
        return None, None, (f"standard not used for flux calibration: its PSF flux and aperture flux differ by "
                            f"{100 * aperture:.1f} % (limit {100 * APERTURE_TOLERANCE:.0f} %)")
    return std, fit_sensitivity(cube.wave, counts, var, std, observing.airmass, observing.mjd), ""


__all__ = ["APERTURE_TOLERANCE", "EDGE", "Extraction", "ExtractionSettings", "Observing", "extract", "mean_airmass"]
