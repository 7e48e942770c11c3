"""The exposure recipe: one standard or science frame, from raw to delivered products.

========================  ==============================================  =====================
step                      algorithm                                       writes
========================  ==============================================  =====================
preprocess                ``ccd.debias``, ``ccd.cosmics``                 ``b_``, ``crr_b_``
make_cube                 ``science.cube`` (flexure, light, flat, ext.)   ``e3d_``
locate_target (science)   ``astrometry.locate_target``                    ``guider_``
position                  ``science.position.choose_position``            -
sensitivity (science)     the nearest standard's ``fluxcal_``             -
extract                   ``science.extract`` (PSF, photometry, quality,  -
                          flux calibration; a standard fits its own)
classify (science)        ``science.classification`` (SNID)               -
write_extraction          names, provenance, cards                        ``spec_``, ``psf_``,
                                                                          ``verify_``, ``fluxcal_``
========================  ==============================================  =====================

:func:`reextract` starts from the cube (an observer's centroid, region or lstep) and
:func:`recalibrate` extracts an uncalibrated spectrum again once a standard exists. Each
returns an :class:`~engine.pipeline.tasks.ExtractionResult` that the stage records; none
touches SQLite.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from engine.calib.products import load_calibration
from engine.instrument import sedm
from engine.io import names
from engine.pipeline.jobs import report
from engine.pipeline.recipes import steps
from engine.pipeline.recipes.products import Source, write_extraction
from engine.pipeline.tasks import ExposureTask, ExtractionRequest, ExtractionResult, RecalibrationTask, ReextractionTask
from engine.science.cards import extraction_figures
from engine.science.classification import classify, s2n_cards
from engine.science.cube import read_cube
from engine.science.extract import ExtractionSettings, Observing, extract
from engine.science.position import choose_position

Progress = Callable[[str, float], None]
"""``progress(stage, fraction)``: where a job is (the engine's events and state)."""


def reduce_exposure(task: ExposureTask) -> ExtractionResult:
    """Raw frame -> cube -> position -> extraction -> products (see the module docstring)."""
    progress: Progress = partial(report, task.job_key)
    clock = steps.Clock()
    progress("debias and cosmic rays", 0.05)
    frame = steps.preprocess(task)
    clock.lap("preprocess_s")
    progress("cube", 0.3)
    cal = load_calibration(task.cal_dir, task.cal_night)
    cube, flexure, cube_name = steps.make_cube(task, frame, cal)
    clock.lap("cube_s")
    progress("target position", 0.55)
    astrom, reason, guider = steps.locate_target(task, frame.header)
    clock.lap("astrometry_s")
    src = Source(task=task, request=ExtractionRequest(), cube=cube, header=frame.header, cube_name=cube_name,
                 object_name=names.object_name(frame.header), guider=guider,
                 correlation=steps.sample_correlation(cal, cube, flexure.di))
    result = extract_and_write(src, astrom, reason, progress)
    observation = {"cube_file": cube_name, "jflex_px": flexure.dj, "iflex_px": flexure.di, "n_cr": frame.n_cr,
                   "astrom": list(astrom) if astrom else None, "astrometry_reason": reason,
                   "guider_file": guider["file"] if guider else None, "calibration_night": task.cal_night}
    timing = {**clock.laps, **result.timing, "total_s": clock.total()}
    return ExtractionResult(result.extraction, result.classification, observation,
                            {k: round(v, 3) for k, v in timing.items()})


def extract_and_write(src: Source, astrom, astrometry_reason: str, progress: Progress) -> ExtractionResult:
    """Position, sensitivity, extraction, classification and products of one extraction.

    Parameters
    ----------
    src : Source
        The exposure, its cube and the extraction's request.
    astrom : tuple of float or None
        The astrometric target position [spaxel unit].
    astrometry_reason : str
        Why there is none.
    progress : callable
        ``progress(stage, fraction)``.
    """
    clock = steps.Clock()
    task, request, header = src.task, src.request, src.header
    position = choose_position(task.kind, src.cube, astrom=astrom, astrometry_reason=astrometry_reason,
                               manual=tuple(request.centroid) if request.centroid is not None else None)
    observing = Observing.from_header(header)
    sensitivity, fluxcal_note = steps.science_sensitivity(task, observing.mjd)
    science = task.config.science
    settings = ExtractionSettings(
        kind=task.kind, fit_radius=science.fit_radius, region=request.region, lstep=request.lstep,
        manual_radius=request.centroid_radius if request.centroid is not None else None,
        n_metaslices=science.n_metaslices_standard if task.kind == "standard" else science.n_metaslices_science,
        rotation_deg=sedm.ifu_centre_for(task.night).rotation_deg)
    if position.inside:
        progress("PSF fit", 0.6)
    ext = extract(src.cube, position, observing, settings, object_name=src.object_name, sensitivity=sensitivity,
                  fluxcal_note=fluxcal_note, shape_prior=steps.shape_prior_for(task, observing.mjd))
    clock.lap("psf_s")
    s2n, s2n_value = s2n_cards(ext.wave, ext.flux, ext.var) if ext.extracted else ({}, float("nan"))
    cls = None
    if ext.extracted and ext.sensitivity is not None and task.kind == "science":
        progress("classification", 0.85)
        cls = classify(ext.wave, ext.flux, ext.var, object_name=src.object_name, header=header, quality=ext.quality,
                       options=task.config.classify)
    progress("products", 0.92)
    products, ext = write_extraction(src, ext, cls, s2n)
    figures = extraction_figures(ext, mjd=observing.mjd, s2n=s2n_value,
                                 classification_note=cls.skipped if cls else "not classified")
    return ExtractionResult({**figures, **products.__dict__}, cls.row if cls and cls.row else None,
                            timing={"psf_s": clock.laps["psf_s"], "extract_total_s": clock.total()})


def reextract(task: ReextractionTask) -> ExtractionResult:
    """A new extraction from the exposure's cube (``task.request`` holds its inputs)."""
    clock = steps.Clock()
    exposure = task.exposure
    out_dir = Path(exposure.out_dir)
    cube, header = read_cube(out_dir / task.cube_file)
    guider = None
    if task.guider_file and (out_dir / task.guider_file).exists():
        from engine.astrometry.product import read_guider_view

        guider = read_guider_view(out_dir / task.guider_file)
    cal = load_calibration(exposure.cal_dir, exposure.cal_night)
    di = float(header.get("CCDIFLX", 0.0) or 0.0)
    src = Source(task=exposure, request=task.request, cube=cube, header=header, cube_name=task.cube_file,
                 object_name=names.object_name(header), guider=guider,
                 correlation=steps.sample_correlation(cal, cube, di))
    result = extract_and_write(src, task.astrom, task.astrometry_reason, partial(report, exposure.job_key))
    return ExtractionResult(result.extraction, result.classification,
                            timing={**result.timing, "total_s": round(clock.total(), 3)})


def recalibrate(task: RecalibrationTask) -> ExtractionResult:
    """Extract ``task.replaces``'s exposure again with a sensitivity; remove the uncalibrated files."""
    result = reextract(task.reextraction)
    out_dir = Path(task.reextraction.exposure.out_dir)
    new = result.extraction
    for old in (task.replaces, task.replaces[:-5] + ".txt"):
        if old not in (new["spec_fits"], new["spec_txt"]) and (out_dir / old).exists():
            os.unlink(out_dir / old)
    return result
