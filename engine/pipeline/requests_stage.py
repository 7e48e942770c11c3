"""Serving console/CLI requests: re-extract, accept, reject, recover, report, final report.

Every handler checks the request against the state (unknown target, centroid outside the IFU,
extraction that is not a pending re-extraction, ...) and raises :class:`RequestError` with a
message the console shows; nothing else changes then. State changes of a request happen in
one transaction together with its completion, so a crash never half-applies one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np

from engine.errors import RequestError
from engine.instrument import sedm
from engine.io.inputs import clean_text
from engine.pipeline.jobs import Job
from engine.pipeline.stage import EngineView
from engine.report import write_report
from engine.science.reduce import reextract
from engine.timeutil import utc_now_iso


def finish_request_in(view: EngineView, req: dict, *, result: dict | None = None, error: str | None = None) -> None:
    """Mark a request done/failed with an event (inside the caller's transaction)."""
    status = "failed" if error else "done"
    error = None if error is None else clean_text(error, max_len=2000)
    view.writer.update("requests", req["id"], {"status": status, "result_json": json.dumps(result or {}, default=str),
                                               "error": error, "finished_at": utc_now_iso()})
    msg = f"request #{req['id']} {req['kind']} {req['target'] or ''}: " + (error or "done")
    view.writer.event("request", msg, night=req["night"], obs_id=req["target"], level="warning" if error else "info",
                      payload={"request_id": req["id"], "status": status, "kind": req["kind"], "result": result or {}})


def _observation(view: EngineView, req: dict) -> dict:
    obs = view.writer.one("SELECT * FROM observations WHERE night=? AND obs_id=?", [req["night"], req["target"]])
    if obs is None:
        raise RequestError(f"no exposure {req['target']} in night {req['night']}")
    return obs


def _extraction(view: EngineView, req: dict, obs: dict, eid: int, status: str) -> dict:
    ext = view.writer.one("SELECT * FROM extractions WHERE id=? AND observation_id=?", [eid, obs["id"]])
    if ext is None:
        raise RequestError(f"extraction {eid} does not belong to {req['target']}")
    if ext["status"] != status:
        raise RequestError(f"extraction {eid} ({ext['tag']}) is {ext['status']}, not {status}")
    return ext


def handle_reextract(stage, view: EngineView, req: dict) -> Job:
    """A manual re-extraction from the cube: centroid, region, lstep."""
    from engine.pipeline.science import base_task

    obs = _observation(view, req)
    if obs["state"] != "done" or not obs["cube_file"]:
        raise RequestError(f"{req['target']} has no cube yet (state {obs['state']})")
    params = req["params"]
    centroid = params.get("centroid")
    if centroid is not None and float(np.hypot(*centroid)) > sedm.MLA_RADIUS_UNITS:
        raise RequestError(f"centroid ({centroid[0]:.2f}, {centroid[1]:.2f}) is outside the IFU "
                           f"(more than {sedm.MLA_RADIUS_UNITS:.0f} spaxels from the centre)")
    cur = view.writer.one("SELECT * FROM extractions WHERE id=?", [obs["current_extraction_id"]]) or {}
    facts = json.loads(cur.get("facts_json") or "{}")
    frame = view.writer.one("SELECT path FROM frames WHERE id=?", [obs["frame_id"]])
    task = base_task(view, obs, frame)
    if task is None:
        raise RequestError(f"no calibration for {req['night']}")
    local = dt.datetime.now().strftime("%H%M%S")
    task.update({
        "cube_file": obs["cube_file"], "guider_file": facts.get("guider_file"),
        "astrom": [cur["astrom_x"], cur["astrom_y"]] if cur.get("astrom_x") is not None else None,
        "astrometry_reason": facts.get("astrometry_reason", ""),
        "request": {"tag": f"redo{local}", "centroid": centroid, "centroid_radius": params.get("centroid_radius"),
                    "region": params.get("region"),
                    "lstep": int(params.get("lstep", 1)), "reducer": req["user"] or "manual"},
        "job_key": f"reextract:{req['id']}",
    })
    return Job(stage="science", key=task["job_key"], fn=reextract, args=(task,), priority=5,
               context={"action": "reextract", "request": req, "request_id": req["id"], "observation_id": obs["id"],
                        "night": obs["night"], "obs_id": obs["obs_id"], "object": obs["object"], "kind": obs["kind"]})


def handle_accept(stage, view: EngineView, req: dict) -> dict:
    """The re-extraction becomes current; the previous extraction is kept, superseded."""
    obs = _observation(view, req)
    ext = _extraction(view, req, obs, req["params"]["extraction_id"], "candidate")
    with view.writer.transaction():
        if obs["current_extraction_id"]:
            view.writer.update("extractions", obs["current_extraction_id"], {"status": "superseded", "delivered": 0,
                                                                            "updated": utc_now_iso()})
        view.writer.update("extractions", ext["id"], {"status": "current", "delivered": int(ext["quality"] <= 2),
                                                      "updated": utc_now_iso()})
        view.writer.update("observations", obs["id"], {"current_extraction_id": ext["id"], "updated": utc_now_iso()})
        view.writer.event("extraction", f"{obs['obs_id']} {obs['object']}: {ext['tag']} accepted (Q{ext['quality']}); "
                          f"previous extraction superseded", night=obs["night"], obs_id=obs["obs_id"],
                          payload={"state": "done", "extraction_id": ext["id"], "accepted": True})
    return {"extraction_id": ext["id"], "spec_fits": ext["spec_fits"]}


def handle_reject(stage, view: EngineView, req: dict) -> dict:
    """The re-extraction's products are removed; the current extraction is untouched."""
    obs = _observation(view, req)
    ext = _extraction(view, req, obs, req["params"]["extraction_id"], "candidate")
    out = Path(view.config.paths.redux_root) / obs["night"]
    removed = []
    for key in ("spec_fits", "spec_txt", "psf_file", "verify_png"):
        if ext[key] and (out / ext[key]).exists():
            os.unlink(out / ext[key])
            removed.append(ext[key])
    with view.writer.transaction():
        view.writer.update("extractions", ext["id"], {"status": "rejected", "updated": utc_now_iso()})
        view.writer.event("extraction", f"{obs['obs_id']} {obs['object']}: {ext['tag']} rejected, {len(removed)} files removed",
                          night=obs["night"], obs_id=obs["obs_id"], payload={"extraction_id": ext["id"], "rejected": True})
    return {"extraction_id": ext["id"], "removed": removed}


RECOVERED = "recovered by hand"
"""How the quality reason of a recovered extraction (5 -> 1) begins."""


def handle_recover(stage, view: EngineView, req: dict) -> dict:
    """Quality 5 -> 1 without re-extracting: the brightest object is the target."""
    obs = _observation(view, req)
    ext = view.writer.one("SELECT * FROM extractions WHERE id=?", [obs["current_extraction_id"]])
    if ext is None or ext["quality"] != 5:
        raise RequestError(f"{req['target']} is not quality 5 (quality {ext['quality'] if ext else 'none'}): nothing to recover")
    out = Path(view.config.paths.redux_root) / obs["night"]
    reason = f"{RECOVERED} by {req['user'] or 'observer'} (was 5: brightest spaxel accepted)"
    _set_quality_in_products(out, ext, 1, reason)
    with view.writer.transaction():
        view.writer.update("extractions", ext["id"], {"quality": 1, "quality_reason": reason, "delivered": 1,
                                                      "updated": utc_now_iso()})
        view.writer.event("extraction", f"{obs['obs_id']} {obs['object']}: recovered, quality 5 -> 1", night=obs["night"],
                          obs_id=obs["obs_id"], payload={"extraction_id": ext["id"], "quality": 1})
    return {"extraction_id": ext["id"], "quality": 1}


def _set_quality_in_products(out: Path, ext: dict, quality: int, reason: str) -> None:
    from astropy.io import fits

    from engine.io.fitsio import write_atomic

    path = out / ext["spec_fits"]
    if path.exists():
        with fits.open(path) as hdul:
            hdul[0].header["QUALITY"] = quality
            hdul[0].header["QUALREAS"] = reason
            write_atomic(hdul, path)
    txt = out / ext["spec_txt"] if ext["spec_txt"] else None
    if txt and txt.exists():
        lines = txt.read_text().splitlines()
        lines = [f"# QUALITY: {quality}" if ln.startswith("# QUALITY:") else
                 (f"# QUALREAS: {reason}" if ln.startswith("# QUALREAS:") else ln) for ln in lines]
        tmp = txt.with_name(f".{txt.name}.part")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, txt)


def handle_report(stage, view: EngineView, req: dict, *, final: bool = False) -> dict:
    """Write ``report.txt`` (and the final report text)."""
    night = req["night"] or (max(view.nights) if view.nights else None)
    if night is None:
        raise RequestError("no night to report on")
    comment = req["params"].get("comment")
    redux = str(Path(view.config.paths.redux_root) / night)
    res = write_report(view.writer.all, night, redux, comment=comment, final=final)
    with view.writer.transaction():
        if comment is not None:
            view.writer.update_night(night, report_comment=comment)
        if final:
            view.writer.update_night(night, final_report_at=utc_now_iso())
        view.writer.event("report", f"{'final ' if final else ''}report of {night} written", night=night,
                          payload=res["paths"])
    return res["paths"]


def handlers(stage) -> dict:
    """``{kind: handler(view, req)}`` for the engine."""
    return {
        "reextract": lambda view, req: handle_reextract(stage, view, req),
        "accept": lambda view, req: handle_accept(stage, view, req),
        "reject": lambda view, req: handle_reject(stage, view, req),
        "recover": lambda view, req: handle_recover(stage, view, req),
        "report": lambda view, req: handle_report(stage, view, req),
        "final_report": lambda view, req: handle_report(stage, view, req, final=True),
    }


__all__ = ["handlers", "finish_request_in"]
