"""Write a complete synthetic SEDM night: raw frames, guider frames, catalogue and truth.

``write_night(out, night, mini=..., seed=...)`` writes ``out/YYYYMMDD/`` (and the previous UT
day's directory for the afternoon calibrations), ``out/catalog/refcat_YYYYMMDD.fits`` (the
reference stars of every field, as a local catalogue would provide them) and
``out/YYYYMMDD/truth.json`` with ``out/YYYYMMDD/truth/`` (trace table, flat, SEDs).
Frames are rendered in parallel; every frame has its own seed, so the output does not depend
on the number of workers.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from engine import __version__
from engine.synth import guider as gd
from engine.synth import truth as truth_mod
from engine.synth.frames import (
    NightContext,
    finish_ifu,
    frame_header,
    pointing_of,
    render_arc,
    render_dome,
    render_onsky,
    write_guider_frames,
)
from engine.synth.plan import FramePlan, plan_night
from engine.synth.priors import DEFAULT_PRIORS, check_priors


@lru_cache(maxsize=1)
def _context(night: str, camera: str, seed: int, raw_root: str, priors: str = DEFAULT_PRIORS,
             pin: tuple | None = None) -> NightContext:
    return NightContext.build(night, camera, seed, Path(raw_root), priors, pin)


def _pin_key(pin: dict | None) -> tuple | None:
    """``pin`` as a hashable, ordered tuple of ``(key, value)`` pairs."""
    if not pin:
        return None
    return tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple, np.ndarray)) else v) for k, v in pin.items()))


def render_frame(plan: FramePlan, night: str, camera: str, seed: int, raw_root: str,
                 noise_seed: int | None = None, priors: str = DEFAULT_PRIORS, pin: dict | None = None) -> dict:
    """Render and write one IFU frame (and its guider frames); return its truth entries.

    ``noise_seed`` redraws only the detector's randomness (photon and read noise, cosmic rays,
    dark sky): the same scene, seen again. ``priors`` names the instrument's prior set
    (:mod:`engine.synth.priors`); ``plan`` must come from ``plan_night`` with the same one.
    ``pin`` sets drawn quantities of a wide instrument (:data:`engine.synth.wide.PIN_KEYS`).
    """
    ctx = _context(night, camera, seed, raw_root, priors, _pin_key(pin))
    rng = np.random.default_rng(plan.seed)
    entry: dict = {"file": plan.file, "dir": plan.dir_night, "kind": plan.kind, "object": plan.obj,
                   "exptime": plan.exptime, "adcspeed": plan.adcspeed, "start": plan.start.isoformat()}
    if plan.lamp:
        entry["lamp"] = plan.lamp
    if plan.skip_reason:
        entry["skip_reason"] = plan.skip_reason
    result: dict = {"frame": entry, "guider_frames": [], "exposure": None, "stars": None}
    pointing = None
    electrons = None
    if plan.kind == "dome":
        electrons = render_dome(ctx, plan)
    elif plan.kind == "arc":
        electrons = render_arc(ctx, plan, rng)
    elif plan.exposure is not None:
        exp = plan.exposure
        pointing, centre = pointing_of(ctx, exp)
        electrons, sed, extras = render_onsky(ctx, plan, rng)
        field_rng = np.random.default_rng(plan.seed + 1)
        field = gd.draw_star_field(*centre["ifu_centre_radec"], field_rng)
        names, wcs_truth = write_guider_frames(ctx, plan, pointing, tuple(centre["ifu_centre_radec"]), field, rng)
        result["guider_frames"] = [
            {"file": n, "dir": plan.dir_night, "kind": "guider", "object": plan.obj, "ifu_file": plan.file}
            for n in names
        ]
        if exp.guider != "none":
            result["stars"] = {"ra": field.ra, "dec": field.dec, "mag": field.mag}
        result["exposure"] = truth_mod.exposure_entry(ctx, plan, sed, centre, wcs_truth, names, extras)
    elif plan.kind == "skip" and plan.exptime > 0:
        electrons = np.zeros((2048, 2048), dtype=np.float32)
    noise_rng = rng if noise_seed is None else np.random.default_rng([plan.seed, noise_seed])
    raw = finish_ifu(ctx, plan, electrons, noise_rng)
    header = frame_header(ctx, plan, pointing)
    path = Path(raw_root) / plan.dir_night / plan.file
    fits.PrimaryHDU(data=raw, header=header).writeto(path, overwrite=True)
    return result


def write_night(
    out: str | os.PathLike,
    night: str,
    *,
    mini: bool = False,
    seed: int = 1,
    camera: str | None = None,
    workers: int | None = None,
    progress=None,
    noise_seed: int | None = None,
    priors: str = DEFAULT_PRIORS,
    pin: dict | None = None,
) -> Path:
    """Synthesise a night; return the path of its ``truth.json``.

    Parameters
    ----------
    out : path-like
        Raw root: frames go to ``out/YYYYMMDD/``.
    night : str
        UT night ``YYYYMMDD``.
    mini : bool
        A small but complete night for tests.
    seed : int
        Master seed.
    camera : {"pixis", "andor"}, optional
        Detector layout; default Andor for nights from 2023-04-07, PIXIS before.
    workers : int, optional
        Render processes (default: the number of CPUs, at most 2 for ``mini``).
    progress : callable, optional
        Called with a one-line message per finished frame.
    noise_seed : int, optional
        Redraw the detector noise of every frame (photon and read noise, cosmic rays) from this
        seed, all else equal: a twin of the ``seed`` night whose difference from it is pure
        noise (the benchmarks use it to measure the noise floor of accuracy figures).
    priors : {"nominal", "wide"}
        The instrument's prior set (:mod:`engine.synth.priors`): ``"nominal"`` the narrow draw
        around the nominal constants (frames unchanged since format 2), ``"wide"`` the wide
        priors, a finite microlens array and detector defects, recorded in ``truth.json``'s
        ``instrument_draw``. Default :data:`engine.synth.priors.DEFAULT_PRIORS`.
    pin : dict, optional
        With ``priors="wide"``: quantities to set instead of drawing, e.g. ``{"pitch_px": 40.0}``
        for a night at the edge of the priors (keys :data:`engine.synth.wide.PIN_KEYS`; the
        trace-separation rule still holds, ``ValueError`` otherwise).
    """
    check_priors(priors)
    if pin:
        from engine.synth.wide import check_pin

        check_pin(pin)
        if priors != "wide":
            raise ValueError("pin= needs priors='wide'")
    t0 = time.perf_counter()
    camera = camera or ("andor" if night >= "20230407" else "pixis")
    out = Path(out)
    plans = plan_night(night, mini=mini, seed=seed, camera=camera, priors=priors)
    for d in {p.dir_night for p in plans} | {night}:
        (out / d).mkdir(parents=True, exist_ok=True)
    workers = workers if workers is not None else min(os.cpu_count() or 1, 2 if mini else 4)
    results: list[dict] = []
    args = [(p, night, camera, seed, str(out), noise_seed, priors, pin) for p in plans]
    if workers <= 1:
        for a in args:
            results.append(render_frame(*a))
            if progress:
                progress(f"wrote {a[0].file}")
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(render_frame, *a) for a in args]
            for fut, a in zip(futures, args):
                results.append(fut.result())
                if progress:
                    progress(f"wrote {a[0].file}")
    ctx = _context(night, camera, seed, str(out), priors, _pin_key(pin))
    cat_dir = out / "catalog"
    cat_dir.mkdir(exist_ok=True)
    stars = [r["stars"] for r in results if r["stars"] is not None]
    if stars:
        cat = Table({k: np.concatenate([s[k] for s in stars]) for k in ("ra", "dec", "mag")})
        cat.meta["COMMENT"] = "reference stars (r-band AB) around the night's fields"
        cat.write(cat_dir / f"refcat_{night}.fits", overwrite=True)
    truth_path = truth_mod.write_truth(
        out, night, ctx, results, mini=mini, seed=seed, camera=camera, noise_seed=noise_seed, priors=priors,
        elapsed_s=time.perf_counter() - t0, version=__version__,
    )
    return truth_path


__all__ = ["write_night", "render_frame"]
