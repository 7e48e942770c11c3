"""The request stage: console/CLI requests (re-extract, accept, reject, recover, report, final report).

The engine claims each pending request and calls this stage's handler for its kind. A handler
either answers at once (accept, reject, recover, reports) or returns a :class:`Job` (a
re-extraction), which runs on the executor and whose result this stage records as a
``candidate`` extraction. Every handler checks the request against the state (unknown target, centroid outside the IFU,
extraction that is not a pending re-extraction, ...) and raises :class:`RequestError` with a
message the console shows; nothing else changes then. State changes of a request happen in
one transaction together with its completion, so a crash never half-applies one.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np

from engine.errors import RequestError
from engine.instrument import sedm
from engine.io import names
from engine.pipeline.jobs import Job
from engine.pipeline.recipes.exposure import reextract
from engine.pipeline.records import (
    RECOVERED,
    finish_request_in,
    insert_classification,
    insert_extraction,
    set_quality_in_products,
    summary,
)
from engine.pipeline.science import reextraction_task
from engine.pipeline.stage import EngineView
from engine.pipeline.tasks import ExtractionRequest, ExtractionResult
from engine.report import write_report
from engine.timeutil import utc_now_iso


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


def handle_reextract(view: EngineView, req: dict) -> Job:
    """A manual re-extraction from the cube: centroid, region, lstep.

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    req : dict
        The claimed request row (``params`` parsed).
    """
    obs = _observation(view, req)
    if obs["state"] != "done" or not obs["cube_file"]:
        raise RequestError(f"{req['target']} has no cube yet (state {obs['state']})")
    params = req["params"]
    centroid = params.get("centroid")
    if centroid is not None and float(np.hypot(*centroid)) > sedm.MLA_RADIUS_UNITS:
        raise RequestError(f"centroid ({centroid[0]:.2f}, {centroid[1]:.2f}) is outside the IFU "
                           f"(more than {sedm.MLA_RADIUS_UNITS:.0f} spaxels from the centre)")
    current = view.writer.one("SELECT * FROM extractions WHERE id=?", [obs["current_extraction_id"]]) or {}
    request = ExtractionRequest(tag=names.redo_tag(dt.datetime.now().strftime("%H%M%S")),
                                centroid=tuple(centroid) if centroid is not None else None,
                                centroid_radius=params.get("centroid_radius"),
                                region=params.get("region"), lstep=int(params.get("lstep", 1)),
                                reducer=req["user"] or "manual")
    key = f"reextract:{req['id']}"
    task = reextraction_task(view, obs, current, request, key)
    if task is None:
        raise RequestError(f"no calibration for {req['night']}")
    return Job(stage=RequestStage.name, key=key, fn=reextract, args=(task,), priority=5,
               context={"action": "reextract", "request": request, "request_row": req, "request_id": req["id"],
                        "observation_id": obs["id"], "night": obs["night"], "obs_id": obs["obs_id"],
                        "object": obs["object"], "kind": obs["kind"]})


def handle_accept(view: EngineView, req: dict) -> dict:
    """The re-extraction becomes current; the previous extraction is kept, superseded.

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    req : dict
        The claimed request row (``params`` parsed).
    """
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


def handle_reject(view: EngineView, req: dict) -> dict:
    """The re-extraction's products are removed; the current extraction is untouched.

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    req : dict
        The claimed request row (``params`` parsed).
    """
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


def handle_recover(view: EngineView, req: dict) -> dict:
    """Quality 5 -> 1 without re-extracting: the brightest object is the target.

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    req : dict
        The claimed request row (``params`` parsed).
    """
    obs = _observation(view, req)
    ext = view.writer.one("SELECT * FROM extractions WHERE id=?", [obs["current_extraction_id"]])
    if ext is None or ext["quality"] != 5:
        raise RequestError(f"{req['target']} is not quality 5 (quality {ext['quality'] if ext else 'none'}): nothing to recover")
    out = Path(view.config.paths.redux_root) / obs["night"]
    reason = f"{RECOVERED} by {req['user'] or 'observer'} (was 5: brightest spaxel accepted)"
    set_quality_in_products(out, ext, 1, reason)
    with view.writer.transaction():
        view.writer.update("extractions", ext["id"], {"quality": 1, "quality_reason": reason, "delivered": 1,
                                                      "updated": utc_now_iso()})
        view.writer.event("extraction", f"{obs['obs_id']} {obs['object']}: recovered, quality 5 -> 1", night=obs["night"],
                          obs_id=obs["obs_id"], payload={"extraction_id": ext["id"], "quality": 1})
    return {"extraction_id": ext["id"], "quality": 1}


def handle_report(view: EngineView, req: dict, *, final: bool = False) -> dict:
    """Write ``report.txt`` (and the final report text).

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    req : dict
        The claimed request row (``params`` parsed).
    final : bool
        Also the final report.
    """
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


class RequestStage:
    """Serves the requests of consoles and the command line; records re-extractions."""

    name = "requests"

    def tick(self, view: EngineView) -> bool:
        """Nothing beside the jobs."""
        return False

    def request_handlers(self) -> dict:
        """``{kind: handler(view, req)}``: a result dict, or a :class:`Job` to run."""
        return {
            "reextract": handle_reextract,
            "accept": handle_accept,
            "reject": handle_reject,
            "recover": handle_recover,
            "report": handle_report,
            "final_report": lambda view, req: handle_report(view, req, final=True),
        }

    def plan(self, view: EngineView) -> list[Job]:
        """None: the engine hands this stage each claimed request."""
        return []

    def on_submit(self, view: EngineView, job: Job) -> None:
        """Nothing to mark: the request is already ``running``."""

    def progress(self, view: EngineView, job: Job, stage: str, fraction: float, message: str) -> None:
        """Not recorded: a re-extraction takes about a second."""

    def record(self, view: EngineView, job: Job, result: ExtractionResult) -> None:
        """A re-extraction becomes a ``candidate`` extraction and its request is done."""
        ctx = job.context
        ext = result.extraction
        with view.writer.transaction():
            eid = insert_extraction(view, ctx, result, ctx["request"], status="candidate", request_id=ctx["request_id"])
            insert_classification(view, ctx, eid, result.classification)
            finish_request_in(view, ctx["request_row"], result={"extraction_id": eid, "spec_fits": ext["spec_fits"],
                                                                "quality": ext["quality"]})
            view.writer.event("extraction", "re-extraction ready: " + summary(ctx, result), night=ctx["night"],
                              obs_id=ctx["obs_id"], payload={"state": "candidate", "extraction_id": eid,
                                                             "request_id": ctx["request_id"]})

    def failed(self, view: EngineView, job: Job, error: BaseException) -> None:
        """The re-extraction's request fails with the error."""
        with view.writer.transaction():
            finish_request_in(view, job.context["request_row"], error=f"{type(error).__name__}: {error}")

    def busy(self, view: EngineView) -> bool:
        """Never: the engine itself waits for pending requests."""
        return False


__all__ = ["RECOVERED", "RequestStage", "finish_request_in"]
