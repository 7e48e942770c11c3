"""Thin steps of the exposure recipe: each reads what its algorithm needs, calls it, writes.

The algorithms (:mod:`engine.ccd`, :mod:`engine.science`, :mod:`engine.astrometry`) do no
I/O of their own here; a step turns the task into their arguments and their result into a
product. The order is the recipe's (:mod:`engine.pipeline.recipes.exposure`).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from engine.calib.products import NightCalibration
from engine.ccd.cosmics import clean_cosmics
from engine.ccd.debias import debias
from engine.errors import CalibrationNotFoundError, EngineError
from engine.io import names
from engine.io.fitsio import header_value, read_image, write_atomic
from engine.pipeline.tasks import ExposureTask, FluxcalCandidate
from engine.provenance import COMPLETE, FALLBACK, SKIPPED, Provenance
from engine.science.cube import Cube, build_cube, resampling_correlation, write_cube
from engine.science.extract import mean_airmass
from engine.science.flexure import Flexure
from engine.science.fluxcal import Sensitivity, read_sensitivity
from engine.science.psf import PsfShape
from engine.science.psffit import ShapePrior

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cleaned:
    """A debiased, cosmic-cleaned frame.

    Attributes
    ----------
    image, variance : numpy.ndarray
        Shape ``CCD_SHAPE`` [e-, e-^2].
    header : astropy.io.fits.Header
        The raw header with the debias and cosmic-ray cards.
    n_cr : int
        Pixels replaced as cosmic rays.
    cosmics_skipped : bool
        L.A.Cosmic did not run (see :func:`engine.ccd.cosmics.clean_cosmics`).
    """

    image: np.ndarray
    variance: np.ndarray
    header: fits.Header
    n_cr: int
    cosmics_skipped: bool


def preprocess(task: ExposureTask) -> Cleaned:
    """Bias, overscan, gain (the calibration night's master bias), L.A.Cosmic; writes ``b_`` and ``crr_b_``.

    Parameters
    ----------
    task : ExposureTask
        The exposure (raw frame, calibration directory, output directory).
    """
    raw_path, cal_dir, out_dir = Path(task.raw), Path(task.cal_dir), Path(task.out_dir)
    raw, header = read_image(raw_path)
    speed = header_value(header, "ADCSPEED", 0.0, cast=float)
    bias_path = cal_dir / f"bias{speed:.1f}.fits"
    master = fits.getdata(bias_path).astype(np.float32) if bias_path.exists() else None
    d = debias(raw, header, master, master_name=bias_path.name if master is not None else "")
    exptime = header_value(header, "EXPTIME", required=True, cast=float, what=raw_path.name)
    cr = clean_cosmics(d.image, exptime, read_noise=float(d.cards["RDNOISE"][0]) or 5.0)
    hdr = header.copy()
    for key, value in d.cards.items():
        hdr[key] = value
    if task.config.science.write_debiased:
        write_atomic(fits.PrimaryHDU(d.image, header=hdr), out_dir / names.debiased(raw_path.name))
    hdr["CRRSUB"] = (not cr.skipped, "L.A.Cosmic (astroscrappy, SEDM parameters)")
    hdr["NCRPIX"] = (int(cr.mask.sum()), "cosmic-ray pixels replaced")
    write_atomic(fits.HDUList([fits.PrimaryHDU(cr.image, header=hdr),
                               fits.ImageHDU(cr.mask.astype(np.uint8), name="CRMASK")]),
                 out_dir / names.cleaned(raw_path.name))
    return Cleaned(cr.image, d.variance, hdr, int(cr.mask.sum()), bool(cr.skipped))


def make_cube(task: ExposureTask, frame: Cleaned, cal: NightCalibration) -> tuple[Cube, Flexure, str]:
    """Flexure, scattered light, extraction, resampling, flat, extinction; writes ``e3d_``.

    Returns the cube, the measured flexure and the cube's file name; the frame's header
    receives the cube's cards.

    Parameters
    ----------
    task : ExposureTask
        The exposure.
    frame : Cleaned
        Its debiased, cosmic-cleaned frame.
    cal : NightCalibration
        The calibration used.
    """
    header = frame.header
    flat = task.config.science.flat
    cube, flexure, _bkg = build_cube(frame.image, frame.variance, cal, exptime=float(header["EXPTIME"]),
                                     airmass=mean_airmass(header), flat=flat)
    prov = Provenance(schema="sedmtui.cube", version=1, config=task.config.to_dict())
    prov.record("debias")
    prov.record("cosmics", *((SKIPPED, "L.A.Cosmic did not run") if frame.cosmics_skipped else (COMPLETE,)))
    prov.record("flexure", *((COMPLETE,) if flexure.n_lines > 0 else (SKIPPED, "i flexure: no sky line measured")))
    prov.record("bkgd")
    prov.record("extract", *((FALLBACK, f"calibration of {task.cal_night} used") if task.cal_fallback else (COMPLETE,)))
    prov.record("flat", *((SKIPPED, "science.flat = none") if flat == "none" else (COMPLETE,)))
    prov.record("extinct")
    prov.add_input(task.raw)
    for kind in ("traces", "wavesolution", "flat"):
        prov.add_input(Path(task.cal_dir) / f"{task.cal_night}_{kind}.fits")
    if task.cal_fallback:
        prov.extra["CALFALLB"] = (True, f"calibration of {task.cal_night} used (fallback)")
    name = names.object_name(header)
    cube_name = names.cube(Path(task.raw).name, name)
    write_cube(Path(task.out_dir) / cube_name, cube, header, prov)
    for card, value in cube.cards.items():
        header[card] = value
    return cube, flexure, cube_name


def locate_target(task: ExposureTask, header: fits.Header) -> tuple[tuple[float, float] | None, str, dict | None]:
    """Guider astrometry (science only); writes the ``guider_`` view.

    Parameters
    ----------
    task : ExposureTask
        The exposure (its raw directory holds the guider frames).
    header : astropy.io.fits.Header
        Its header (pointing, target coordinates).

    Returns
    -------
    astrom : tuple of float or None
        The target's position on the IFU [spaxel unit].
    reason : str
        Why there is none.
    guider : dict or None
        The guider view (``image``, ``target``, ``ifu``, ``file``) for the verification figure.
    """
    if task.kind != "science":
        return None, "standard: brightest spaxel", None
    from engine.astrometry import (
        guider_candidates,
        guider_product_name,
        locate_target,
        select_guider_frames,
        write_guider_product,
    )

    settings = task.config.astrometry
    raw_name = Path(task.raw).name
    try:
        frames = select_guider_frames(header, guider_candidates(task.raw_dir))
        loc = locate_target(header, frames, task.catalog_dir, task.night, config=settings)
    except EngineError as exc:
        return None, str(exc), None
    guider = None
    if loc.stack is not None:
        write_guider_product(Path(task.out_dir) / guider_product_name(raw_name), loc)
        guider = {"image": loc.stack, "target": loc.target_px, "ifu": loc.ifu_px, "file": guider_product_name(raw_name)}
    if not loc.ok:
        return None, loc.reason, guider
    return (float(loc.x), float(loc.y)), "", guider


def sample_correlation(cal: NightCalibration, cube: Cube, di: float) -> np.ndarray | None:
    """Noise correlation of neighbouring cube samples (lags 1 and 2) from the exposure's resampler.

    Parameters
    ----------
    cal : NightCalibration
        The calibration used.
    cube : Cube
        The cube.
    di : float
        The exposure's i flexure [pixel].
    """
    try:
        rb = cal.rebinner(di)
        return resampling_correlation(rb.first_bin[cube.spaxel_id], rb.frac[cube.spaxel_id], rb.n_wave)
    except (AttributeError, IndexError, ValueError) as exc:
        log.warning("no sample correlation: %s", exc)
        return None


def nearest_fluxcal(candidates: tuple[FluxcalCandidate, ...], mjd: float) -> FluxcalCandidate | None:
    """The sensitivity nearest in time to ``mjd`` [day] (``None`` if there is none).

    Parameters
    ----------
    candidates : tuple of FluxcalCandidate
        The usable sensitivities.
    mjd : float
        MJD of the exposure [day].
    """
    return min(candidates, key=lambda c: abs(c.mjd - mjd)) if candidates else None


def science_sensitivity(task: ExposureTask, mjd: float) -> tuple[Sensitivity | None, str]:
    """A science frame's sensitivity (the nearest standard's), loaded; or ``None`` and why.

    Parameters
    ----------
    task : ExposureTask
        The exposure (standards get none).
    mjd : float
        MJD of the exposure [day].

    Raises
    ------
    CalibrationNotFoundError
        The chosen ``fluxcal_`` file cannot be read.
    """
    best = nearest_fluxcal(task.fluxcal, mjd) if task.kind == "science" else None
    if best is None:
        return None, (task.no_fluxcal_reason or "no standard star reduced yet") if task.kind == "science" else ""
    try:
        return read_sensitivity(best.path), ""
    except (OSError, KeyError) as exc:
        raise CalibrationNotFoundError(f"sensitivity {best.path} unreadable: {exc}") from exc


def shape_prior_for(task: ExposureTask, mjd: float) -> ShapePrior | None:
    """The profile-family prior of a science frame: the nearest standard's fitted PSF.

    ``None`` for standards, when no sensitivity exists yet, or when its file lacks the PSF
    cards (written before they existed) or cannot be read: the PSF is then fitted freely.

    Parameters
    ----------
    task : ExposureTask
        The exposure and its usable sensitivities.
    mjd : float
        MJD of the exposure [day].
    """
    from engine.science.cards import PRIOR_CARDS

    best = nearest_fluxcal(task.fluxcal, mjd)
    if task.kind != "science" or best is None:
        return None
    try:
        h = fits.getheader(best.path)
    except OSError:
        return None
    if not all(k in h for k in PRIOR_CARDS):
        return None
    shape = PsfShape(beta=float(h["PSFBETA"]), eta=float(h["PSFETA"]), core=float(h["PSFCORE"]), rho=float(h["PSFRHO"]))
    when = re.search(r"ifu\d{8}_(\d\d_\d\d_\d\d)", Path(best.path).name)
    return ShapePrior(shape=shape, source=f"{h.get('STDNAME', 'standard')} {when.group(1) if when else ''}".strip())


class Clock:
    """Wall time of a recipe's steps [s]."""

    def __init__(self) -> None:
        self.t0 = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        """Record the time since the previous lap as ``name``."""
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now

    def total(self) -> float:
        """Time since the clock started [s]."""
        return time.perf_counter() - self.t0
