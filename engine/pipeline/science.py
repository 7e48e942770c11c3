"""Science stage: every standard and science exposure, as soon as its night is calibrated.

* Standards are reduced before science frames; a science frame reduced before any standard
  exists is delivered uncalibrated (``..._notfluxcal``) and, when one arrives, extracted again
  from its cube with the same inputs: calibrated, and with the standard's PSF prior.
* Each exposure is one job on the executor; its progress (debias, cube, position, PSF, ...)
  is written to ``observations.stage``/``progress`` and the events.
* A failure is recorded on the observation with its reason; the night goes on.

The job is :func:`engine.pipeline.recipes.exposure.reduce_exposure` on an :class:`ExposureTask`
(:func:`exposure_task`); its :class:`ExtractionResult` becomes the ``extractions`` and
``classifications`` rows here (:mod:`engine.pipeline.records`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from engine.pipeline.calibration import days_before, usable_calibration
from engine.pipeline.jobs import Job
from engine.pipeline.recipes.exposure import recalibrate, reduce_exposure
from engine.pipeline.records import (
    OBSERVATION_FACTS,
    RECOVERED,
    extraction_row,
    insert_classification,
    insert_extraction,
    set_quality_in_products,
    summary,
)
from engine.pipeline.stage import EngineView
from engine.pipeline.tasks import (
    ExposureTask,
    ExtractionRequest,
    ExtractionResult,
    FluxcalCandidate,
    RecalibrationTask,
    ReextractionTask,
)
from engine.timeutil import utc_now_iso

log = logging.getLogger(__name__)


def _mjd(jd: float | None) -> float:
    return (jd or 2400000.5) - 2400000.5


def fluxcal_candidates(view: EngineView, night: str) -> tuple[FluxcalCandidate, ...]:
    """Sensitivities usable for a night: its own standards, else the newest earlier night's.

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    night : str
        UT night ``YYYYMMDD``.
    """
    rows = view.writer.all(
        """SELECT e.night, e.fluxcal_file, o.jd FROM extractions e JOIN observations o ON o.id = e.observation_id
           WHERE o.kind='standard' AND e.status='current' AND e.fluxcal_file IS NOT NULL AND e.night <= ?
           ORDER BY e.night DESC""", [night])
    own = [r for r in rows if r["night"] == night]
    if not own and rows:
        newest = rows[0]["night"]
        if newest >= days_before(night, view.config.science.fluxcal_max_age_days):
            own = [r for r in rows if r["night"] == newest]
    redux = Path(view.config.paths.redux_root)
    return tuple(FluxcalCandidate(path=str(redux / r["night"] / r["fluxcal_file"]), mjd=_mjd(r["jd"]), night=r["night"])
                 for r in own)


def no_fluxcal_reason(view: EngineView, night: str) -> str:
    """Why a science frame of ``night`` has no sensitivity, in words an observer can act on.

    Meant for when :func:`fluxcal_candidates` is empty: the night's standards that were refused
    (with their own reason), failed, or are still waiting; or that none was observed.

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    night : str
        UT night ``YYYYMMDD``.
    """
    rows = view.writer.all(
        """SELECT o.obs_id, o.object, o.state, o.error, e.facts_json FROM observations o
           LEFT JOIN extractions e ON e.observation_id = o.id AND e.status = 'current'
           WHERE o.kind = 'standard' AND o.night = ? ORDER BY o.obs_id""", [night])
    max_age = view.config.science.fluxcal_max_age_days
    if not rows:
        return f"no standard star observed yet this night, nor a usable one in the {max_age} nights before"
    why = []
    for r in rows:
        name = f"{r['object'] or 'standard'} {r['obs_id'].replace('_', ':')}"
        facts = _facts(r["facts_json"])
        if facts.get("fluxcal_note"):
            why.append(f"{name}: {facts['fluxcal_note']}")
        elif r["state"] == "failed":
            why.append(f"{name} failed: {r['error'] or 'no reason recorded'}")
        else:
            why.append(f"{name} not reduced yet ({r['state']})")
    return "no usable standard star: " + "; ".join(why)


def _facts(facts_json: str | None) -> dict:
    try:
        facts = json.loads(facts_json) if facts_json else {}
    except ValueError:
        return {}
    return facts if isinstance(facts, dict) else {}


def exposure_task(view: EngineView, obs: dict, frame: dict, job_key: str = "") -> ExposureTask | None:
    """The task of an exposure (``None`` if its night has no calibration yet).

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    obs : dict
        The ``observations`` row.
    frame : dict
        Its ``frames`` row (``path``).
    job_key : str
        The job's key ('' : ``science:<night>:<obs_id>``).
    """
    cal = usable_calibration(view, obs["night"])
    if cal is None:
        return None
    cal_dir, cal_night = cal
    redux = Path(view.config.paths.redux_root)
    fluxcal = fluxcal_candidates(view, obs["night"])
    return ExposureTask(
        raw=frame["path"], night=obs["night"], obs_id=obs["obs_id"], kind=obs["kind"],
        out_dir=str(redux / obs["night"]), cal_dir=cal_dir, cal_night=cal_night,
        catalog_dir=view.config.catalog_dir(), config=view.config, fluxcal=fluxcal,
        no_fluxcal_reason="" if fluxcal or obs["kind"] != "science" else no_fluxcal_reason(view, obs["night"]),
        job_key=job_key or f"science:{obs['night']}:{obs['obs_id']}")


def reextraction_task(view: EngineView, obs: dict, current: dict, request: ExtractionRequest,
                      job_key: str) -> ReextractionTask | None:
    """A new extraction of ``obs`` from its cube, with the astrometry of its extraction ``current``.

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    obs : dict
        The ``observations`` row.
    current : dict
        Its current ``extractions`` row (astrometry, guider view).
    request : ExtractionRequest
        The new extraction's inputs.
    job_key : str
        The job's key.
    """
    frame = view.writer.one("SELECT path FROM frames WHERE id=?", [obs["frame_id"]])
    exposure = exposure_task(view, obs, frame, job_key) if frame else None
    if exposure is None or not obs["cube_file"]:
        return None
    facts = json.loads(current.get("facts_json") or "{}")
    astrom = (current["astrom_x"], current["astrom_y"]) if current.get("astrom_x") is not None else None
    return ReextractionTask(exposure=exposure, cube_file=obs["cube_file"], request=request,
                            guider_file=facts.get("guider_file"), astrom=astrom,
                            astrometry_reason=facts.get("astrometry_reason", ""))


def request_of(row: dict) -> ExtractionRequest:
    """The inputs of an ``extractions`` row (tag, manual centroid, region, lstep, reducer)."""
    manual = row["srcpos"] == "manual"
    return ExtractionRequest(tag=row["tag"], centroid=(row["guess_x"], row["guess_y"]) if manual else None,
                             region=json.loads(row["region_json"]) if row["region_json"] else None,
                             lstep=int(row["lstep"] or 1), reducer=row["reducer"] or "auto")


class ScienceStage:
    """Plans exposure reductions and re-calibrations; records their results (re-extractions
    asked for by an observer are the request stage's)."""

    name = "science"

    def __init__(self) -> None:
        self._given_up: set[str] = set()
        """Re-calibrations that failed in this engine run (not planned again: a frame whose
        cube cannot be re-extracted keeps its uncalibrated spectrum and the error event)."""

    def plan(self, view: EngineView) -> list[Job]:
        """Waiting exposures of calibrated nights (standards first) and uncalibrated spectra a
        sensitivity now exists for."""
        jobs: list[Job] = []
        for night in sorted(view.nights):
            if usable_calibration(view, night) is None:
                self._fail_if_hopeless(view, night)
                continue
            waiting = view.writer.all(
                """SELECT o.*, f.path AS frame_path FROM observations o JOIN frames f ON f.id = o.frame_id
                   WHERE o.night=? AND o.state='waiting' ORDER BY (o.kind='standard') DESC, o.obs_id""", [night])
            pending_std = any(o["kind"] == "standard" for o in waiting) or bool(view.writer.one(
                "SELECT 1 AS x FROM observations WHERE night=? AND kind='standard' AND state='reducing'", [night]))
            for obs in waiting:
                if obs["kind"] == "science" and pending_std:
                    continue
                task = exposure_task(view, obs, {"path": obs["frame_path"]})
                key = task.job_key
                if key in view.running:
                    continue
                jobs.append(Job(stage=self.name, key=key, fn=reduce_exposure, args=(task,),
                                priority=20 if obs["kind"] == "standard" else 30,
                                context={"observation_id": obs["id"], "night": night, "obs_id": obs["obs_id"],
                                         "object": obs["object"], "kind": obs["kind"], "action": "reduce",
                                         "request": ExtractionRequest(),
                                         "label": f"reducing {obs['obs_id']} {obs['object']}"}))
            jobs.extend(self._recalibrations(view, night))
        return jobs

    def _recalibrations(self, view: EngineView, night: str) -> list[Job]:
        rows = view.writer.all(
            """SELECT e.*, o.object AS object, o.kind AS kind FROM extractions e JOIN observations o ON o.id=e.observation_id
               WHERE e.night=? AND e.status IN ('current','candidate') AND e.fluxcal=0 AND o.kind='science'
               AND e.spec_fits LIKE '%_notfluxcal.fits'""", [night])
        if not rows:
            return []
        cands = fluxcal_candidates(view, night)
        if not cands:
            return []
        jobs = []
        for e in rows:
            key = f"recalibrate:{night}:{e['obs_id']}:{e['id']}"
            if key in view.running or key in self._given_up:
                continue
            obs = view.writer.one("SELECT * FROM observations WHERE id=?", [e["observation_id"]])
            request = request_of(e)
            task = reextraction_task(view, obs, e, request, key)
            if task is None:
                continue
            jobs.append(Job(stage=self.name, key=key, fn=recalibrate, args=(RecalibrationTask(task, e["spec_fits"]),),
                            priority=25,
                            context={"extraction_id": e["id"], "observation_id": e["observation_id"], "night": night,
                                     "obs_id": e["obs_id"], "object": e["object"], "kind": e["kind"],
                                     "action": "recalibrate", "request": request,
                                     "label": f"flux-calibrating {e['obs_id']} {e['object']}"}))
        return jobs

    def on_submit(self, view: EngineView, job: Job) -> None:
        """The engine started the job: mark the exposure as being reduced."""
        if job.context.get("action") == "reduce":
            obs = view.writer.one("SELECT * FROM observations WHERE id=?", [job.context["observation_id"]])
            self._set_state(view, obs, "reducing", "started", 0.0)

    def _fail_if_hopeless(self, view: EngineView, night: str) -> None:
        row = view.writer.one("SELECT calib_status FROM nights WHERE night=?", [night])
        if row and row["calib_status"] == "failed":
            for obs in view.writer.all("SELECT * FROM observations WHERE night=? AND state='waiting'", [night]):
                self._set_state(view, obs, "failed", "no calibration", 0.0,
                                error="no calibration for the night and none to fall back on")

    # ---------------------------------------------------------------------------- records
    def _set_state(self, view: EngineView, obs: dict, state: str, stage: str, progress: float, error: str | None = None) -> None:
        with view.writer.transaction():
            view.writer.update("observations", obs["id"], {"state": state, "stage": stage, "progress": progress,
                                                           "error": error, "updated": utc_now_iso()})
            view.writer.event("observation", f"{obs['obs_id']} {obs['object']}: {stage}" + (f" ({error})" if error else ""),
                              night=obs["night"], obs_id=obs["obs_id"], level="error" if error else "info",
                              payload={"state": state, "stage": stage, "progress": progress})

    def progress(self, view: EngineView, job: Job, stage: str, fraction: float, message: str) -> None:
        ctx = job.context
        if ctx.get("action") != "reduce":
            return
        with view.writer.transaction():
            view.writer.update("observations", ctx["observation_id"], {"stage": stage, "progress": fraction,
                                                                       "updated": utc_now_iso()})
            view.writer.event("progress", f"{ctx['obs_id']} {ctx['object']}: {stage}", night=ctx["night"],
                              obs_id=ctx["obs_id"], payload={"state": "reducing", "stage": stage, "progress": fraction})

    def record(self, view: EngineView, job: Job, result: ExtractionResult) -> None:
        """An exposure's extraction becomes current; a re-calibration replaces its extraction."""
        ctx = job.context
        if ctx["action"] == "recalibrate":
            return self._record_recalibration(view, job, result)
        ext, obs_upd = result.extraction, result.observation
        with view.writer.transaction():
            prev = view.writer.one("SELECT current_extraction_id FROM observations WHERE id=?", [ctx["observation_id"]])
            if prev and prev["current_extraction_id"]:
                view.writer.update("extractions", prev["current_extraction_id"],
                                   {"status": "superseded", "updated": utc_now_iso()})
            eid = insert_extraction(view, ctx, result, ctx["request"], status="current")
            insert_classification(view, ctx, eid, result.classification)
            view.writer.update("observations", ctx["observation_id"], {
                "state": "done", "stage": "done", "progress": 1.0, "error": None, "current_extraction_id": eid,
                "cube_file": obs_upd["cube_file"], "needs_fluxcal": int(not ext["fluxcal"] and ctx["kind"] == "science"),
                "updated": utc_now_iso()})
            view.writer.event("extraction", summary(ctx, result), night=ctx["night"], obs_id=ctx["obs_id"],
                              payload={"state": "done", "extraction_id": eid, "quality": ext["quality"],
                                       "timing": result.timing})
        return None

    def _record_recalibration(self, view: EngineView, job: Job, result: ExtractionResult) -> None:
        """The re-extraction replaces the uncalibrated extraction in its row (same id, status)."""
        ctx = job.context
        cls = result.classification
        old = view.writer.one("SELECT * FROM extractions WHERE id=?", [ctx["extraction_id"]])
        ext = extraction_row(result, ctx["request"], status=old["status"])
        if (old["quality_reason"] or "").startswith(RECOVERED) and ext["quality"] == 5:
            set_quality_in_products(Path(view.config.paths.redux_root) / ctx["night"], ext, 1, old["quality_reason"])
            ext["quality"], ext["quality_reason"] = 1, old["quality_reason"]
        facts = {k: v for k, v in json.loads(old["facts_json"] or "{}").items() if k in OBSERVATION_FACTS}
        facts.update(result.extraction.get("facts") or {})
        facts["timing"] = result.timing
        ext.update({"facts_json": facts, "updated": utc_now_iso(),
                    "delivered": int(old["status"] == "current" and ext["quality"] <= 2)})
        with view.writer.transaction():
            view.writer.update("extractions", ctx["extraction_id"], ext)
            insert_classification(view, ctx, ctx["extraction_id"], cls)
            view.writer.update("observations", ctx["observation_id"], {"needs_fluxcal": 0, "updated": utc_now_iso()})
            view.writer.event("extraction", f"{ctx['obs_id']}: flux-calibrated after the fact with {ext['calsrc']} "
                              "(extracted again from its cube)"
                              + (f"; SNID {cls['type']} z {cls['z']:.3f}" if cls and cls.get("z") is not None else ""),
                              night=ctx["night"], obs_id=ctx["obs_id"],
                              payload={"state": "done", "extraction_id": ctx["extraction_id"], "quality": ext["quality"]})

    def failed(self, view: EngineView, job: Job, error: BaseException) -> None:
        ctx = job.context
        msg = f"{type(error).__name__}: {error}"
        if ctx["action"] == "recalibrate":
            self._given_up.add(job.key)
            view.writer.event("extraction", f"{ctx['obs_id']}: re-calibration failed (spectrum left uncalibrated): {msg}",
                              night=ctx["night"], obs_id=ctx["obs_id"], level="error")
            return
        obs = view.writer.one("SELECT * FROM observations WHERE id=?", [ctx["observation_id"]])
        self._set_state(view, obs, "failed", "failed", 0.0, error=msg)

    def busy(self, view: EngineView) -> bool:
        for night in view.nights:
            if usable_calibration(view, night) is None:
                row = view.writer.one("SELECT calib_status FROM nights WHERE night=?", [night])
                if row and row["calib_status"] == "failed":
                    continue
                if view.writer.one("SELECT 1 AS x FROM observations WHERE night=? AND state='waiting'", [night]):
                    return True
                continue
            if view.writer.one("SELECT 1 AS x FROM observations WHERE night=? AND state IN ('waiting','reducing')", [night]):
                return True
            if self._recalibrations(view, night):
                return True
        return False

    def tick(self, view: EngineView) -> bool:
        """Nothing beside the jobs."""
        return False

    def request_handlers(self) -> dict:
        """None: requests are the request stage's."""
        return {}


__all__ = ["ScienceStage", "exposure_task", "fluxcal_candidates", "reextraction_task", "request_of"]
