"""Reduce one standard or science exposure (the engine's per-frame job).

``reduce_exposure(task)`` goes from the raw frame to every product and returns a plain dict
the engine records in the state database; ``reextract(task)`` starts from the exposure's cube
for a manual re-extraction (centroid, region, lstep) and writes ``..._redoHHMMSS_...``
products. Neither touches SQLite. The recipe, step by step:

1. bias, overscan, gain (the calibration night's master bias), L.A.Cosmic -> ``b_``, ``crr_b_``
2. cube: flexure, scattered light, extraction, resampling, flat, extinction -> ``e3d_``
3. position: guider astrometry (science), else the brightest spaxel; manual for requests
4. PSF fit on metaslices + ADR, forced photometry -> ``psf_``
5. flux calibration: standards make a ``fluxcal_``; science spectra use the nearest one
6. quality flag, S/N, classification -> ``spec_`` (.fits, .txt), ``verify_`` (.png)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from engine.calib.products import load_calibration
from engine.ccd.cosmics import clean_cosmics
from engine.ccd.debias import debias
from engine.errors import AlgorithmError, EngineError
from engine.instrument import sedm
from engine.io import names
from engine.io.fitsio import header_value, read_image, write_atomic
from engine.pipeline.jobs import report
from engine.provenance import Provenance
from engine.science.cube import Cube, build_cube, read_cube, resampling_correlation, write_cube
from engine.science.extract import ExtractionInputs, extract_and_deliver
from engine.science.position import choose_position

log = logging.getLogger(__name__)


def _astrometry(header, task: dict, kind: str, out_dir: Path, raw_name: str) -> tuple[tuple | None, str, dict | None]:
    """Astrometric target position (science only), the failure reason, guider view data."""
    if kind != "science":
        return None, "standard: brightest spaxel", None
    from engine.astrometry import (
        guider_candidates,
        guider_product_name,
        locate_target,
        select_guider_frames,
        write_guider_product,
    )
    from engine.astrometry.options import AstrometryConfig as SolverOptions

    settings = task["config"]["astrometry"]
    try:
        options = SolverOptions(parity=settings["parity"], solve_field_cpulimit_s=settings["solve_field_cpulimit_s"],
                                solve_field_config=settings["solve_field_config"])
        frames = select_guider_frames(header, guider_candidates(task["raw_dir"]))
        loc = locate_target(header, frames, task["catalog_dir"], task["night"], backend=settings["backend"],
                            config=options)
    except EngineError as exc:
        return None, str(exc), None
    guider = None
    if loc.stack is not None:
        write_guider_product(out_dir / guider_product_name(raw_name), loc)
        guider = {"image": loc.stack, "target": loc.target_px, "ifu": loc.ifu_px,
                  "file": guider_product_name(raw_name)}
    if not loc.ok:
        return None, loc.reason, guider
    return (float(loc.x), float(loc.y)), "", guider


def preprocess(raw_path: Path, cal_dir: Path, out_dir: Path, *, write_debiased: bool) -> tuple:
    """Debias and clean one frame; write ``b_`` (optional) and ``crr_b_``. Returns image, var, header, n_cr."""
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
    if write_debiased:
        write_atomic(fits.PrimaryHDU(d.image, header=hdr), out_dir / names.debiased(raw_path.name))
    hdr["CRRSUB"] = (not cr.skipped, "L.A.Cosmic (astroscrappy, SEDM parameters)")
    hdr["NCRPIX"] = (int(cr.mask.sum()), "cosmic-ray pixels replaced")
    write_atomic(fits.HDUList([fits.PrimaryHDU(cr.image, header=hdr), fits.ImageHDU(cr.mask.astype(np.uint8), name="CRMASK")]),
                 out_dir / names.cleaned(raw_path.name))
    return cr.image, d.variance, hdr, int(cr.mask.sum())


def reduce_exposure(task: dict) -> dict:
    """The per-exposure job (see the module docstring). Raises on an unrecoverable frame."""
    t0 = time.perf_counter()
    timing: dict[str, float] = {}
    key = task["job_key"]
    raw_path = Path(task["raw"])
    out_dir = Path(task["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    cal_dir = Path(task["cal_dir"])
    cfg = task["config"]
    report(key, "debias and cosmic rays", 0.05)
    image, var, header, n_cr = preprocess(raw_path, cal_dir, out_dir, write_debiased=cfg["science"]["write_debiased"])
    timing["preprocess_s"] = time.perf_counter() - t0
    report(key, "cube", 0.3)
    cal = load_calibration(cal_dir, task["cal_night"])
    exptime = float(header["EXPTIME"])
    airmass = _mean_airmass(header)
    t1 = time.perf_counter()
    cube, flexure, _bkg = build_cube(image, var, cal, exptime=exptime, airmass=airmass, flat=cfg["science"]["flat"])
    name = names.object_name(header)
    prov = Provenance(schema="sedmtui.cube", version=1, config=cfg, steps={"debias": "COMPLETE", "cosmics": "COMPLETE",
                      "flexure": "COMPLETE", "bkgd": "COMPLETE", "extract": "COMPLETE", "flat": "COMPLETE",
                      "extinct": "COMPLETE"})
    prov.add_input(raw_path)
    for kind in ("traces", "wavesolution", "flat"):
        prov.add_input(cal_dir / f"{task['cal_night']}_{kind}.fits")
    if task.get("cal_fallback"):
        prov.extra["CALFALLB"] = (True, f"calibration of {task['cal_night']} used (fallback)")
    cube_name = names.cube(raw_path.name, name)
    write_cube(out_dir / cube_name, cube, header, prov)
    for card, value in cube.cards.items():
        header[card] = value
    timing["cube_s"] = time.perf_counter() - t1
    report(key, "target position", 0.55)
    t1 = time.perf_counter()
    astrom, reason, guider = _astrometry(header, task, task["kind"], out_dir, raw_path.name)
    timing["astrometry_s"] = time.perf_counter() - t1
    result = _extract(task, cube, header, cube_name, name, astrom, reason, guider, cal, flexure.di)
    result["observation"] = {
        "cube_file": cube_name, "jflex_px": flexure.dj, "iflex_px": flexure.di, "n_cr": n_cr,
        "astrom": list(astrom) if astrom else None, "astrometry_reason": reason,
        "guider_file": guider["file"] if guider else None, "calibration_night": task["cal_night"],
    }
    timing.update(result.pop("timing", {}))
    timing["total_s"] = time.perf_counter() - t0
    result["timing"] = {k: round(v, 3) for k, v in timing.items()}
    return result


def sample_correlation(cal, cube: Cube, di: float) -> np.ndarray | None:
    """Noise correlation of neighbouring cube samples (lags 1 and 2) from the exposure's resampler."""
    try:
        rb = cal.rebinner(di)
        return resampling_correlation(rb.first_bin[cube.spaxel_id], rb.frac[cube.spaxel_id], rb.n_wave)
    except (AttributeError, IndexError, ValueError) as exc:
        log.warning("no sample correlation: %s", exc)
        return None


def _extract(task, cube: Cube, header, cube_name, name, astrom, reason, guider, cal, di: float = 0.0) -> dict:
    req = task.get("request") or {}
    manual = tuple(req["centroid"]) if req.get("centroid") is not None else None
    position = choose_position(task["kind"], cube, astrom=astrom, astrometry_reason=reason, manual=manual)
    inputs = ExtractionInputs(
        task=task, cube=cube, header=header, cube_name=cube_name, object_name=name, position=position,
        region=req.get("region"), lstep=int(req.get("lstep", 1)), tag=req.get("tag", "robot"),
        reducer=req.get("reducer", "auto"), guider=guider, rotation_deg=sedm.ifu_centre_for(task["night"]).rotation_deg,
        correlation=sample_correlation(cal, cube, di),
        manual_radius=req.get("centroid_radius") if manual is not None else None,
    )
    return extract_and_deliver(inputs)


def reextract(task: dict) -> dict:
    """A manual re-extraction from the exposure's cube (``task["request"]`` holds its inputs)."""
    t0 = time.perf_counter()
    out_dir = Path(task["out_dir"])
    cube, header = read_cube(out_dir / task["cube_file"])
    guider = None
    gfile = task.get("guider_file")
    if gfile and (out_dir / gfile).exists():
        from engine.astrometry.product import read_guider_view

        guider = read_guider_view(out_dir / gfile)
    astrom = tuple(task["astrom"]) if task.get("astrom") else None
    cal = load_calibration(task["cal_dir"], task["cal_night"])
    result = _extract(task, cube, header, task["cube_file"], names.object_name(header), astrom,
                      task.get("astrometry_reason", ""), guider, cal, float(header.get("CCDIFLX", 0.0) or 0.0))
    result.setdefault("timing", {})["total_s"] = round(time.perf_counter() - t0, 3)
    return result


def _mean_airmass(header) -> float:
    x0 = header_value(header, "AIRMASS", None, cast=float)
    x1 = header_value(header, "ENDAIR", None, cast=float)
    if x0 is None:
        return 1.1
    return 0.5 * (x0 + x1) if x1 is not None else x0


__all__ = ["reduce_exposure", "reextract", "preprocess", "AlgorithmError"]
