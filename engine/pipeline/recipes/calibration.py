"""The calibration recipe: a night's raw bias, dome and arc frames to its calibration products.

==============  ==================================================  =============================
step            algorithm                                           writes
==============  ==================================================  =============================
biases          ``calib.masters.make_master_biases``                ``bias<speed>.fits``
masters         ``calib.masters.combine_master``                    ``dome``, ``Hg``, ``Cd``, ``Xe``
traces          ``calib.tracefind.measure_traces``                  -
wavesol         ``calib.wavesol.solve`` on the arcs' extraction     -
grid            ``calib.lattice.fit_lattice``, usable traces        -
flat            ``calib.flat.flat_from_dome``                       -
save            ``NightCalibration.save``                           ``YYYYMMDD_*.fits``
qa              ``calib.qa``                                        figures, stats text
==============  ==================================================  =============================

:func:`calibrate_night` runs on the engine's executor and never touches SQLite; it returns
the figures the calibration stage records.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from engine.calib import qa
from engine.calib.background import subtract_scattered_light
from engine.calib.extraction import build_operator
from engine.calib.flat import Flat, flat_from_dome
from engine.calib.lattice import fit_lattice
from engine.calib.masters import combine_master, make_master_biases
from engine.calib.products import NightCalibration, extraction_windows
from engine.calib.tracefind import check_saturation, measure_traces
from engine.calib.wavesol import solve
from engine.calib.windows import arc_windows, clip_same_row, trace_geometry, usable_traces
from engine.errors import AlgorithmError
from engine.instrument import sedm
from engine.pipeline.jobs import report
from engine.pipeline.tasks import CalibrationTask
from engine.provenance import Provenance

LAMPS = ("Hg", "Cd", "Xe")
"""Arc lamps the wavelength solution needs."""


def calibrate_night(task: CalibrationTask) -> dict:
    """Make every calibration product of a night (see the module docstring).

    Returns
    -------
    dict
        ``{"status": "ok", "night", "products": {name: path}, "stats": {...}, "inputs": [paths]}``.

    Raises
    ------
    AlgorithmError, CalibrationNotFoundError, FrameError
        With a message saying which frame or step failed.
    """
    progress = partial(report, task.job_key)
    t0 = time.perf_counter()
    out = Path(task.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = task.config.to_dict()
    timing = {}
    progress("master biases", 0.05)
    bias_paths = make_master_biases(task.frames.biases, out, config)
    timing["biases_s"] = time.perf_counter() - t0
    progress("dome and arc masters", 0.15)
    dome = combine_master("dome", list(task.frames.domes), bias_paths, out, config)
    check_saturation(dome.saturated)
    arcs = {lamp: combine_master(lamp, _arc_frames(task, lamp), bias_paths, out, config) for lamp in LAMPS}
    timing["masters_s"] = time.perf_counter() - t0 - timing["biases_s"]
    progress("traces", 0.35)
    t1 = time.perf_counter()
    tf = measure_traces(dome.image, dome.variance, dome.saturated)
    timing["traces_s"] = time.perf_counter() - t1
    progress("wavelength solution", 0.5)
    t1 = time.perf_counter()
    ax0, an, aok = arc_windows(tf)
    arc_op = build_operator(trace_geometry(tf, ax0, an, aok))
    spectra = {lamp: (arc_op.extract(m.image), arc_op.extract_variance(m.variance)) for lamp, m in arcs.items()}
    wave, meas, used = solve(spectra, ax0, tf.x_mid, tf.y_at(tf.x_mid[:, None])[:, 0], tf.x_lo.astype(float))
    timing["wavesol_s"] = time.perf_counter() - t1
    progress("spaxel grid and flat", 0.8)
    t1 = time.perf_counter()
    cal = _grid(task.night, tf, wave)
    cal = _flat(cal, dome.image)
    timing["flat_s"] = time.perf_counter() - t1
    stats = qa.night_stats(cal, tf, cal.grid)
    stats.update({k: round(v, 3) for k, v in timing.items()})
    cal.stats = stats
    prov = Provenance(schema="sedmtui.calibration", version=1, config=config)
    for step in ("bias", "traces", "wavesol", "grid", "flat"):
        prov.record(step)
    inputs = task.frames.paths()
    for p in inputs:
        prov.add_input(p)
    products = cal.save(out, prov)
    products.update({"bias" + str(k): str(v) for k, v in bias_paths.items()})
    products.update({name: str(out / f"{name}.fits") for name in ("dome", *LAMPS)})
    progress("QA figures", 0.95)
    products.update(qa.write_qa(cal, out, meas, used))
    stats["wall_s"] = round(time.perf_counter() - t0, 2)
    return {"status": "ok", "night": task.night, "products": products, "stats": stats, "inputs": inputs}


def _arc_frames(task: CalibrationTask, lamp: str) -> list[str]:
    paths = list(task.frames.arcs.get(lamp, ()))
    if not paths:
        raise AlgorithmError(f"no {lamp} arc frames: the wavelength solution needs Hg, Cd and Xe", {"lamp": lamp})
    return paths


def _grid(night: str, tf, wave) -> NightCalibration:
    """The spaxel lattice, the usable traces and their extraction windows (flat still unit)."""
    x_ref = wave.x_ref
    y_ref = tf.y_at(x_ref[:, None])[:, 0]
    in_region = usable_traces(tf, wave)
    grid = fit_lattice(x_ref, y_ref, ok=wave.ok & tf.complete & (wave.n_lines >= 6))
    usable = in_region & wave.ok & ~grid.duplicate & (wave.n_lines >= 6)
    x0, n_cols, col_ok = extraction_windows(tf, wave, clip=lambda lo, hi: clip_same_row(tf, lo, hi))
    unit = Flat(achromatic=np.ones(tf.n), chromatic=np.ones((tf.n, sedm.CUBE_WAVE_AA.size)),
                coef=np.zeros((tf.n, 3)), ok=np.ones(tf.n, bool))
    return NightCalibration(night=night, traces=tf, wave=wave, grid=grid, flat=unit, x0=x0, n_cols=n_cols,
                            col_ok=col_ok, usable=usable)


def _flat(cal: NightCalibration, dome_image: np.ndarray) -> NightCalibration:
    """The per-spaxel flat from the dome's cube (scattered light removed, unit flat)."""
    op = cal.operator(0.0)
    dome_clean, _bkg = subtract_scattered_light(dome_image, op)
    dome_cube, _ = cal.rebinner(0.0).apply(op.extract(dome_clean))
    return replace(cal, flat=flat_from_dome(dome_cube, cal.usable), _operators={})
