"""The night's calibration recipe: masters -> traces -> wavelength solution -> spaxel grid -> flat.

``calibrate_night`` reads the raw calibration frames, writes every product into the night's
reduction directory and returns a plain dict of figures for the state database. It is run on
the engine's executor; it never touches SQLite.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.calib import qa
from engine.calib.background import subtract_scattered_light
from engine.calib.extraction import TraceGeometry, build_operator
from engine.calib.flat import Flat, flat_from_dome
from engine.calib.lattice import fit_lattice
from engine.calib.masters import combine_master, make_master_biases
from engine.calib.products import NightCalibration, extraction_windows
from engine.calib.tracefind import TraceFit, check_saturation, measure_traces
from engine.calib.wavesol import solve
from engine.errors import AlgorithmError
from engine.instrument import sedm
from engine.pipeline.jobs import report
from engine.provenance import Provenance

log = logging.getLogger(__name__)

ARC_PAD_RED, ARC_PAD_BLUE, ARC_WINDOW = 75, 110, 430


def clip_same_row(tf: TraceFit, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clip column windows so no two traces of the same row overlap (they sit end to end).

    A window stops half-way into the gap between its trace's dome-lit range and the next
    trace's in the same row (same centre row within 3 px).
    """
    lo, hi = lo.copy(), hi.copy()
    y_mid = tf.y_at(tf.x_mid[:, None])[:, 0]
    order = np.argsort(y_mid)
    ys = y_mid[order]
    for k in range(tf.n):
        a, b = np.searchsorted(ys, [y_mid[k] - 15, y_mid[k] + 15])
        for j in order[a:b]:
            if j == k or abs(tf.x_mid[j] - tf.x_mid[k]) > 500:
                continue
            yj = tf.y_at(np.array([[tf.x_mid[k]]]), np.array([j]))[0, 0]
            if abs(yj - y_mid[k]) > 3.0:
                continue
            if tf.x_mid[j] < tf.x_mid[k]:
                lo[k] = max(lo[k], int(0.5 * (tf.x_hi[j] + tf.x_lo[k])) + 1)
            else:
                hi[k] = min(hi[k], int(0.5 * (tf.x_lo[j] + tf.x_hi[k])) - 1)
    return lo, hi


def arc_windows(tf: TraceFit) -> tuple[np.ndarray, int, np.ndarray]:
    """Windows for arc extraction before the wavelength solution is known: the dome-lit
    range, padded, clipped against the traces of the same row."""
    lo, hi = clip_same_row(tf, tf.x_lo - ARC_PAD_RED, tf.x_hi + ARC_PAD_BLUE)
    x0 = lo
    cols = x0[:, None] + np.arange(ARC_WINDOW)[None, :]
    col_ok = (cols <= hi[:, None]) & (cols >= 0) & (cols < sedm.CCD_SHAPE[1])
    return x0, ARC_WINDOW, col_ok


def _geometry(tf: TraceFit, x0: np.ndarray, n_cols: int, col_ok: np.ndarray) -> TraceGeometry:
    cols = x0[:, None] + np.arange(n_cols)[None, :]
    return TraceGeometry(x0=x0, n_cols=n_cols, y_centre=tf.y_at(cols), sigma=tf.sigma_at(cols), col_ok=col_ok)


def usable_traces(tf: TraceFit, wave) -> np.ndarray:
    """True for traces whose measured 3700-9300 A span lies inside the usable detector region."""
    ends = wave.x_of_wave(np.array([sedm.CUBE_WAVE_AA[0], sedm.CUBE_WAVE_AA[-1]]))
    ok = np.ones(tf.n, bool)
    for k in range(2):
        ok &= sedm.inside_usable_region(ends[:, k], tf.y_at(ends[:, k : k + 1])[:, 0])
    return ok & wave.ok


def calibrate_night(
    night: str, frames: dict, out_dir: str, config: dict, job_key: str = ""
) -> dict:
    """Make every calibration product of a night.

    Parameters
    ----------
    night : str
        UT night ``YYYYMMDD``.
    frames : dict
        ``{"biases": {speed: [paths]}, "domes": [paths], "arcs": {"Hg": [...], "Cd": [...], "Xe": [...]}}``.
    out_dir : str
        The night's reduction directory.
    config : dict
        Resolved configuration (recorded as provenance).

    Returns
    -------
    dict
        ``{"status": "ok", "products": {...}, "stats": {...}, "wall_s": ..., "inputs": [...]}``.

    Raises
    ------
    AlgorithmError, CalibrationNotFoundError, FrameError
        With a message saying which frame or step failed.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    timing = {}
    report(job_key, "master biases", 0.05)
    biases = {float(k): v for k, v in frames["biases"].items()}
    bias_paths = make_master_biases(biases, out, config)
    timing["biases_s"] = time.perf_counter() - t0
    report(job_key, "dome and arc masters", 0.15)
    dome = combine_master("dome", frames["domes"], bias_paths, out, config)
    check_saturation(dome.saturated)
    arcs = {}
    for lamp in ("Hg", "Cd", "Xe"):
        paths = frames["arcs"].get(lamp, [])
        if not paths:
            raise AlgorithmError(f"no {lamp} arc frames: the wavelength solution needs Hg, Cd and Xe", {"lamp": lamp})
        arcs[lamp] = combine_master(lamp, paths, bias_paths, out, config)
    timing["masters_s"] = time.perf_counter() - t0 - timing["biases_s"]
    report(job_key, "traces", 0.35)
    t1 = time.perf_counter()
    tf = measure_traces(dome.image, dome.variance, dome.saturated)
    timing["traces_s"] = time.perf_counter() - t1
    report(job_key, "wavelength solution", 0.5)
    t1 = time.perf_counter()
    ax0, an, aok = arc_windows(tf)
    arc_op = build_operator(_geometry(tf, ax0, an, aok))
    spectra = {lamp: (arc_op.extract(m.image), arc_op.extract_variance(m.variance)) for lamp, m in arcs.items()}
    wave, meas, used = solve(spectra, ax0, tf.x_mid, tf.y_at(tf.x_mid[:, None])[:, 0], tf.x_lo.astype(float))
    timing["wavesol_s"] = time.perf_counter() - t1
    report(job_key, "spaxel grid and flat", 0.8)
    t1 = time.perf_counter()
    x_ref = wave.x_ref
    y_ref = tf.y_at(x_ref[:, None])[:, 0]
    in_region = usable_traces(tf, wave)
    grid = fit_lattice(x_ref, y_ref, ok=wave.ok & tf.complete & (wave.n_lines >= 6))
    usable = in_region & wave.ok & ~grid.duplicate & (wave.n_lines >= 6)
    x0, n_cols, col_ok = extraction_windows(tf, wave, clip=lambda lo, hi: clip_same_row(tf, lo, hi))
    placeholder = Flat(achromatic=np.ones(tf.n), chromatic=np.ones((tf.n, sedm.CUBE_WAVE_AA.size)),
                       coef=np.zeros((tf.n, 3)), ok=np.ones(tf.n, bool))
    cal = NightCalibration(night=night, traces=tf, wave=wave, grid=grid, flat=placeholder, x0=x0, n_cols=n_cols,
                           col_ok=col_ok, usable=usable)
    op = cal.operator(0.0)
    dome_clean, _bkg = subtract_scattered_light(dome.image, op)
    dome_cube, _ = cal.rebinner(0.0).apply(op.extract(dome_clean))
    flat = flat_from_dome(dome_cube, usable)
    cal = replace(cal, flat=flat, _operators={})
    timing["flat_s"] = time.perf_counter() - t1
    stats = night_stats(cal, tf, grid)
    stats.update({k: round(v, 3) for k, v in timing.items()})
    cal.stats = stats
    prov = Provenance(schema="sedmtui.calibration", version=1, config=config,
                      steps={"bias": "COMPLETE", "traces": "COMPLETE", "wavesol": "COMPLETE", "grid": "COMPLETE",
                             "flat": "COMPLETE"})
    inputs = [p for ps in biases.values() for p in ps] + list(frames["domes"]) + [p for ps in frames["arcs"].values() for p in ps]
    for p in inputs:
        prov.add_input(p)
    products = cal.save(out, prov)
    products.update({"bias" + str(k): str(v) for k, v in bias_paths.items()})
    products.update({name: str(out / f"{name}.fits") for name in ("dome", "Hg", "Cd", "Xe")})
    report(job_key, "QA figures", 0.95)
    products.update(qa.write_qa(cal, out, meas, used))
    stats["wall_s"] = round(time.perf_counter() - t0, 2)
    return {"status": "ok", "night": night, "products": products, "stats": stats, "inputs": inputs}


def _nanmedian(values, mask) -> float | None:
    """Median of the finite ``values[mask]``, or None (no values, or a solution without them)."""
    if values is None:
        return None
    v = np.asarray(values)[mask]
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None


def night_stats(cal: NightCalibration, tf: TraceFit, grid) -> dict:
    """The figures recorded for a night (SEDM names where they exist)."""
    u = cal.usable
    w = cal.wave
    sig = tf.sigma_at(tf.x_mid[:, None])[:, 0]
    s = {
        "nspax": int(u.sum()),
        "n_traces_found": int(tf.n),
        "trace_rms_px": float(np.nanmedian(tf.rms[u])),
        "width_min_px": float(np.nanmin(sig[u])), "width_avg_px": float(np.nanmean(sig[u])),
        "width_max_px": float(np.nanmax(sig[u])),
        "lattice_rms_px": float(grid.lattice_rms_px),
        "lattice_pitch_px": float(grid.pitch_px), "lattice_angle_deg": float(grid.angle_deg),
        "lattice_x0_px": float(grid.origin_px[0]), "lattice_y0_px": float(grid.origin_px[1]),
        "lattice_rejected": int(np.count_nonzero(grid.rejected)) if grid.rejected is not None else 0,
        "wave_law_scale": float(np.nanmedian(cal.wave.coef[u, 1]) / sedm.DISPERSION_D_PX),
        "wave_rms_min_aa": float(np.nanmin(w.rms_aa[u])), "wave_rms_avg_aa": float(np.nanmean(w.rms_aa[u])),
        "wave_rms_max_aa": float(np.nanmax(w.rms_aa[u])),
        "wave_rms_median_aa": float(np.nanmedian(w.rms_aa[u])),
        "wave_nmad_min_aa": float(np.nanmin(w.nmad_aa[u])), "wave_nmad_avg_aa": float(np.nanmean(w.nmad_aa[u])),
        "wave_nmad_max_aa": float(np.nanmax(w.nmad_aa[u])),
        "wave_blue_rms_median_aa": float(np.nanmedian(w.blue_rms_aa[u])),
        "wave_n_lines_median": float(np.median(w.n_lines[u])),
        "wave_model_chi2_median": _nanmedian(w.model_chi2, u),
        "lsf_sigma_median_px": _nanmedian(w.lsf_sigma, u),
        "wave_flagged": int((w.flagged & u).sum()),
    }
    s.update(cal.flat.stats(u))
    return s
