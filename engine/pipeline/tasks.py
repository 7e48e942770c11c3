"""Typed tasks: what one job receives, whether it runs in this process, a pool or a Dask worker.

A task is a frozen dataclass of paths, names and the typed :class:`~engine.config.Config`; it
pickles in a few kilobytes (no arrays, no open files, no database handle). What a job returns
is typed too (:class:`ExtractionResult`); the stage that planned the job turns it into state
rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.config import Config


@dataclass(frozen=True)
class CalibrationFrames:
    """The raw calibration frames of a night.

    Attributes
    ----------
    biases : dict
        ``{read speed [MHz]: (paths, ...)}``.
    domes : tuple of str
        Dome-flat frames.
    arcs : dict
        ``{"Hg": (paths, ...), "Cd": (...), "Xe": (...)}``.
    """

    biases: dict[float, tuple[str, ...]]
    domes: tuple[str, ...]
    arcs: dict[str, tuple[str, ...]]

    def paths(self) -> list[str]:
        """Every frame: biases, domes, then arcs."""
        return ([p for ps in self.biases.values() for p in ps] + list(self.domes)
                + [p for ps in self.arcs.values() for p in ps])

    @classmethod
    def from_lists(cls, frames: dict) -> CalibrationFrames:
        """From ``{"biases": {speed: [paths]}, "domes": [paths], "arcs": {lamp: [paths]}}``."""
        return cls(biases={float(k): tuple(v) for k, v in frames["biases"].items()},
                   domes=tuple(frames["domes"]),
                   arcs={lamp: tuple(v) for lamp, v in frames["arcs"].items()})


@dataclass(frozen=True)
class CalibrationTask:
    """Make every calibration product of one night.

    Attributes
    ----------
    night : str
        UT night ``YYYYMMDD``.
    frames : CalibrationFrames
        Its raw calibration frames.
    out_dir : str
        The night's reduction directory.
    config : Config
        Resolved configuration (recorded as provenance).
    job_key : str
        Key of the job (progress reports name it).
    """

    night: str
    frames: CalibrationFrames
    out_dir: str
    config: Config = field(default_factory=Config)
    job_key: str = ""


@dataclass(frozen=True)
class FluxcalCandidate:
    """A sensitivity (``fluxcal_`` product of a standard) usable for a night.

    Attributes
    ----------
    path : str
        The product.
    mjd : float
        MJD of the standard's exposure [day].
    night : str
        The standard's night.
    """

    path: str
    mjd: float
    night: str


@dataclass(frozen=True)
class ExtractionRequest:
    """How to extract: the robot's defaults, or an observer's choices.

    Attributes
    ----------
    tag : str
        ``robot`` or ``redoHHMMSS`` (in product names and the ``extractions`` row).
    centroid : tuple of float or None
        Manual starting position ``(x, y)`` [spaxel unit]; ``None``: automatic.
    centroid_radius : float or None
        How far the PSF fit may move from a manual centroid [spaxel unit] (``None``: the
        default, ``GUESS_ERR["manual"]``).
    region : dict or None
        Manual fit region (see :func:`engine.science.position.fit_region`).
    lstep : int
        Wavelength slices per forced-photometry fit.
    reducer : str
        Who asked (``auto`` for the robot).
    """

    tag: str = "robot"
    centroid: tuple[float, float] | None = None
    centroid_radius: float | None = None
    region: dict | None = None
    lstep: int = 1
    reducer: str = "auto"


@dataclass(frozen=True)
class ExposureTask:
    """Reduce one standard or science exposure from its raw frame.

    Attributes
    ----------
    raw : str
        The raw IFU frame.
    night, obs_id, kind : str
        Its UT night, exposure id ``HH_MM_SS`` and kind (``standard`` or ``science``).
    out_dir : str
        The night's reduction directory.
    cal_dir, cal_night : str
        Directory and night of the calibration products used (another night's: a fallback).
    catalog_dir : str
        Reference star catalogue of the guider astrometry.
    config : Config
        Resolved configuration.
    fluxcal : tuple of FluxcalCandidate
        Sensitivities usable for the night (science frames use the nearest in time).
    no_fluxcal_reason : str
        Why ``fluxcal`` is empty (a refused standard and its reason, none observed yet...).
    job_key : str
        Key of the job (progress reports name it).
    """

    raw: str
    night: str
    obs_id: str
    kind: str
    out_dir: str
    cal_dir: str
    cal_night: str
    catalog_dir: str
    config: Config
    fluxcal: tuple[FluxcalCandidate, ...] = ()
    no_fluxcal_reason: str = ""
    job_key: str = ""

    @property
    def cal_fallback(self) -> bool:
        """The calibration products are another night's."""
        return self.cal_night != self.night

    @property
    def raw_dir(self) -> str:
        """The raw night directory (where the guider frames are)."""
        return str(Path(self.raw).parent)


@dataclass(frozen=True)
class ReextractionTask:
    """Extract an exposure again from its cube (an observer's request, or after the fact).

    Attributes
    ----------
    exposure : ExposureTask
        The exposure (its calibration, sensitivities and configuration as of now).
    cube_file : str
        The cube, in ``exposure.out_dir``.
    request : ExtractionRequest
        Position, region, lstep, tag and reducer of the new extraction.
    guider_file : str or None
        The guider view product written by the reduction, if any.
    astrom : tuple of float or None
        The astrometric target position ``(x, y)`` of the reduction [spaxel unit].
    astrometry_reason : str
        Why the astrometry failed ('' if it did not).
    """

    exposure: ExposureTask
    cube_file: str
    request: ExtractionRequest
    guider_file: str | None = None
    astrom: tuple[float, float] | None = None
    astrometry_reason: str = ""


@dataclass(frozen=True)
class RecalibrationTask:
    """Extract an uncalibrated science spectrum again now that a sensitivity exists.

    Attributes
    ----------
    reextraction : ReextractionTask
        The extraction's own inputs (position source, centroid, region, lstep, tag).
    replaces : str
        The uncalibrated spectrum (``..._notfluxcal.fits``) whose files are removed.
    """

    reextraction: ReextractionTask
    replaces: str


@dataclass(frozen=True)
class ExtractionResult:
    """What an exposure, re-extraction or re-calibration job returns to its stage.

    Attributes
    ----------
    extraction : dict
        The extraction's measured figures and product names (columns of ``extractions``
        without the ids, status and clocks the stage adds).
    classification : dict or None
        The classification's figures (a ``classifications`` row without ids), if classified.
    observation : dict or None
        Facts of the exposure's reduction (cube file, flexures, cosmic rays, astrometry),
        for exposure jobs only.
    timing : dict
        Wall time of the steps [s].
    """

    extraction: dict
    classification: dict | None = None
    observation: dict | None = None
    timing: dict = field(default_factory=dict)


__all__ = ["CalibrationFrames", "CalibrationTask", "ExposureTask", "ExtractionRequest", "ExtractionResult",
           "FluxcalCandidate", "RecalibrationTask", "ReextractionTask"]
