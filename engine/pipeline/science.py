"""Science stage: every standard and science exposure, as soon as its night is calibrated.

* Standards are reduced before science frames; a science frame reduced before any standard
  exists is delivered uncalibrated (``..._notfluxcal``) and, when one arrives, extracted again
  from its cube with the same inputs: calibrated, and with the standard's PSF prior.
* Each exposure is one job on the executor; its progress (debias, cube, position, PSF, ...)
  is written to ``observations.stage``/``progress`` and the events.
* A failure is recorded on the observation with its reason; the night goes on.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from engine.pipeline.calibration import usable_calibration
from engine.pipeline.jobs import Job
from engine.pipeline.stage import EngineView
from engine.science.recalibrate import recalibrate
from engine.science.reduce import reduce_exposure
from engine.timeutil import utc_now_iso

log = logging.getLogger(__name__)


def _mjd(jd: float | None) -> float:
    return (jd or 2400000.5) - 2400000.5


def fluxcal_candidates(view: EngineView, night: str) -> list[dict]:
    """Sensitivities usable for a night: its own standards, else the newest earlier night's."""
    rows = view.writer.all(
        """SELECT e.night, e.fluxcal_file, o.jd FROM extractions e JOIN observations o ON o.id = e.observation_id
           WHERE o.kind='standard' AND e.status='current' AND e.fluxcal_file IS NOT NULL AND e.night <= ?
           ORDER BY e.night DESC""", [night])
    own = [r for r in rows if r["night"] == night]
    if not own and rows:
        newest = rows[0]["night"]
        from engine.pipeline.calibration import _days_before

        if newest >= _days_before(night, view.config.science.fluxcal_max_age_days):
            own = [r for r in rows if r["night"] == newest]
    redux = Path(view.config.paths.redux_root)
    return [{"path": str(redux / r["night"] / r["fluxcal_file"]), "mjd": _mjd(r["jd"]), "night": r["night"]} for r in own]


def base_task(view: EngineView, obs: dict, frame: dict) -> dict | None:
    """The job description of an exposure (``None`` if its night has no calibration yet)."""
    cal = usable_calibration(view, obs["night"])
    if cal is None:
        return None
    cal_dir, cal_night = cal
    redux = Path(view.config.paths.redux_root)
    return {
        "raw": frame["path"], "night": obs["night"], "obs_id": obs["obs_id"], "kind": obs["kind"],
        "out_dir": str(redux / obs["night"]), "cal_dir": cal_dir, "cal_night": cal_night,
        "cal_fallback": cal_night != obs["night"], "raw_dir": str(Path(frame["path"]).parent),
        "catalog_dir": view.config.catalog_dir(), "fluxcal": fluxcal_candidates(view, obs["night"]),
        "config": view.config.to_dict(), "job_key": f"science:{obs['night']}:{obs['obs_id']}",
    }


class ScienceStage:
    """Plans exposure reductions, re-calibrations and re-extractions; records their results."""

    name = "science"

    def __init__(self) -> None:
        self._given_up: set[str] = set()
        """Re-calibrations that failed in this engine run (not planned again: a frame whose
        cube cannot be re-extracted keeps its uncalibrated spectrum and the error event)."""

    def plan(self, view: EngineView) -> list[Job]:
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
                task = base_task(view, obs, {"path": obs["frame_path"]})
                key = task["job_key"]
                if key in view.running:
                    continue
                jobs.append(Job(stage=self.name, key=key, fn=reduce_exposure, args=(task,),
                                priority=20 if obs["kind"] == "standard" else 30,
                                context={"observation_id": obs["id"], "night": night, "obs_id": obs["obs_id"],
                                         "object": obs["object"], "kind": obs["kind"], "action": "reduce",
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
            task = self._recalibration_task(view, e)
            if task is None:
                continue
            task["job_key"] = key
            jobs.append(Job(stage=self.name, key=key, fn=recalibrate, args=(task,), priority=25,
                            context={"extraction_id": e["id"], "observation_id": e["observation_id"], "night": night,
                                     "obs_id": e["obs_id"], "object": e["object"], "kind": e["kind"],
                                     "action": "recalibrate", "label": f"flux-calibrating {e['obs_id']} {e['object']}"}))
        return jobs

    @staticmethod
    def _recalibration_task(view: EngineView, e: dict) -> dict | None:
        """A re-extraction of extraction ``e`` from its exposure's cube with its own inputs."""
        obs = view.writer.one("SELECT * FROM observations WHERE id=?", [e["observation_id"]])
        frame = view.writer.one("SELECT path FROM frames WHERE id=?", [obs["frame_id"]])
        task = base_task(view, obs, frame) if frame else None
        if task is None or not obs["cube_file"]:
            return None
        facts = json.loads(e["facts_json"] or "{}")
        manual = e["srcpos"] == "manual"
        task.update({
            "cube_file": obs["cube_file"], "guider_file": facts.get("guider_file"),
            "astrom": [e["astrom_x"], e["astrom_y"]] if e["astrom_x"] is not None else None,
            "astrometry_reason": facts.get("astrometry_reason", ""),
            "request": {"tag": e["tag"], "centroid": [e["guess_x"], e["guess_y"]] if manual else None,
                        "region": json.loads(e["region_json"]) if e["region_json"] else None,
                        "lstep": int(e["lstep"] or 1), "reducer": e["reducer"] or "auto"},
            "spec_fits": e["spec_fits"],
        })
        return task

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

    def record(self, view: EngineView, job: Job, result: dict) -> None:
        ctx = job.context
        if ctx["action"] == "recalibrate":
            return self._record_recalibration(view, job, result)
        if ctx["action"] == "reextract":
            return self._record_reextraction(view, job, result)
        ext = dict(result["extraction"])
        obs_upd = result["observation"]
        with view.writer.transaction():
            prev = view.writer.one("SELECT current_extraction_id FROM observations WHERE id=?", [ctx["observation_id"]])
            if prev and prev["current_extraction_id"]:
                view.writer.update("extractions", prev["current_extraction_id"], {"status": "superseded", "updated": utc_now_iso()})
            eid = self._insert_extraction(view, ctx, ext, status="current", observation=obs_upd, timing=result.get("timing"))
            self._insert_classification(view, ctx, eid, result.get("classification"))
            view.writer.update("observations", ctx["observation_id"], {
                "state": "done", "stage": "done", "progress": 1.0, "error": None, "current_extraction_id": eid,
                "cube_file": obs_upd["cube_file"], "needs_fluxcal": int(not ext["fluxcal"] and ctx["kind"] == "science"),
                "updated": utc_now_iso()})
            view.writer.event("extraction", _summary(ctx, ext, result), night=ctx["night"], obs_id=ctx["obs_id"],
                              payload={"state": "done", "extraction_id": eid, "quality": ext["quality"],
                                       "timing": result.get("timing")})

    def _insert_extraction(self, view, ctx, ext, *, status, observation=None, timing=None, request_id=None) -> int:
        facts = dict(ext.get("facts_json") or {})
        if observation:
            facts.update({k: observation[k] for k in ("jflex_px", "iflex_px", "n_cr", "astrometry_reason", "guider_file",
                                                       "calibration_night") if k in observation})
        if timing:
            facts["timing"] = timing
        row = {k: v for k, v in ext.items() if k != "facts_json"}
        row.update({"observation_id": ctx["observation_id"], "night": ctx["night"], "obs_id": ctx["obs_id"],
                    "status": status, "facts_json": facts, "request_id": request_id, "created": utc_now_iso(),
                    "updated": utc_now_iso(), "delivered": int(status == "current" and ext["quality"] <= 2)})
        return view.writer.insert("extractions", row)

    def _insert_classification(self, view, ctx, eid, cls) -> None:
        if not cls:
            return
        view.writer.insert("classifications", dict(cls, extraction_id=eid, night=ctx["night"], obs_id=ctx["obs_id"],
                                                   created=utc_now_iso()))

    def _record_recalibration(self, view, job, result) -> None:
        """The re-extraction replaces the uncalibrated extraction in its row (same id, status)."""
        from engine.pipeline.requests_stage import RECOVERED, _set_quality_in_products

        ctx = job.context
        ext = dict(result["extraction"])
        cls = result.get("classification")
        old = view.writer.one("SELECT * FROM extractions WHERE id=?", [ctx["extraction_id"]])
        if (old["quality_reason"] or "").startswith(RECOVERED) and ext["quality"] == 5:
            _set_quality_in_products(Path(view.config.paths.redux_root) / ctx["night"], ext, 1, old["quality_reason"])
            ext["quality"], ext["quality_reason"] = 1, old["quality_reason"]
        facts = {k: v for k, v in json.loads(old["facts_json"] or "{}").items()
                 if k in ("jflex_px", "iflex_px", "n_cr", "astrometry_reason", "guider_file", "calibration_night")}
        facts.update(ext.pop("facts_json", None) or {})
        facts["timing"] = result.get("timing")
        ext.update({"facts_json": facts, "updated": utc_now_iso(),
                    "delivered": int(old["status"] == "current" and ext["quality"] <= 2)})
        with view.writer.transaction():
            view.writer.update("extractions", ctx["extraction_id"], ext)
            self._insert_classification(view, ctx, ctx["extraction_id"], cls)
            view.writer.update("observations", ctx["observation_id"], {"needs_fluxcal": 0, "updated": utc_now_iso()})
            view.writer.event("extraction", f"{ctx['obs_id']}: flux-calibrated after the fact with {ext['calsrc']} "
                              "(extracted again from its cube)"
                              + (f"; SNID {cls['type']} z {cls['z']:.3f}" if cls and cls.get("z") is not None else ""),
                              night=ctx["night"], obs_id=ctx["obs_id"],
                              payload={"state": "done", "extraction_id": ctx["extraction_id"], "quality": ext["quality"]})

    def _record_reextraction(self, view, job, result) -> None:
        from engine.pipeline.requests_stage import finish_request_in

        ctx = job.context
        ext = dict(result["extraction"])
        with view.writer.transaction():
            eid = self._insert_extraction(view, ctx, ext, status="candidate", timing=result.get("timing"),
                                          request_id=ctx["request_id"])
            self._insert_classification(view, ctx, eid, result.get("classification"))
            finish_request_in(view, ctx["request"], result={"extraction_id": eid, "spec_fits": ext["spec_fits"],
                                                            "quality": ext["quality"]})
            view.writer.event("extraction", "re-extraction ready: " + _summary(ctx, ext, result), night=ctx["night"],
                              obs_id=ctx["obs_id"], payload={"state": "candidate", "extraction_id": eid,
                                                             "request_id": ctx["request_id"]})

    def failed(self, view: EngineView, job: Job, error: BaseException) -> None:
        ctx = job.context
        msg = f"{type(error).__name__}: {error}"
        if ctx["action"] == "reextract":
            from engine.pipeline.requests_stage import finish_request_in

            with view.writer.transaction():
                finish_request_in(view, ctx["request"], error=msg)
            return
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

    def request_handlers(self) -> dict:
        from engine.pipeline.requests_stage import handlers

        return handlers(self)


def _summary(ctx: dict, ext: dict, result: dict) -> str:
    cls = result.get("classification") or {}
    parts = [f"{ctx['obs_id']} {ctx.get('object', '')}", f"Q{ext['quality']}"]
    if ext["quality"]:
        parts.append(ext["quality_reason"])
    if cls.get("type"):
        z = cls.get("z")
        parts.append(f"{cls.get('subtype') or cls['type']} z {z:.3f} rlap {cls.get('rlap', 0):.1f}" if z is not None else cls["type"])
    if ext.get("s2n"):
        parts.append(f"S/N {ext['s2n']:.0f}")
    if not ext["fluxcal"]:
        parts.append("not flux-calibrated")
    t = (result.get("timing") or {}).get("total_s")
    if t:
        parts.append(f"{t:.1f} s")
    return " · ".join(parts)


__all__ = ["ScienceStage", "fluxcal_candidates", "base_task"]
