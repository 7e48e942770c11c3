"""The engine's calibration and science stages, across the nights of a batch.

Live, a night is reduced after the nights before it, so its fallback calibration and a
standard borrowed from an earlier night are already there. A batch reduces many nights at once,
so two rules wait for the neighbours instead:

* a night without a usable calibration set (incomplete, or its calibration job failed) falls
  back once every batch night within ``engine.fallback_max_age_days`` has its calibration
  outcome, on the **nearest** good night either side (the earlier one on a tie); the
  ``calibrations`` row (``fallback``, ``source_night``), the event and every product say so;
* a night without standards reduces its science once the earlier batch nights within
  ``science.fluxcal_max_age_days`` have reduced theirs (the live rule then picks the newest).

Everything else -- planning, tasks, recording, the events -- is the live stages' code.

:func:`invalidate` is the start of a rerun: it sends back to ``waiting`` what the ledger
cannot vouch for (see :mod:`engine.reprocess.ledger`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from engine.ingest.planner import calibration_set
from engine.pipeline.calibration import CalibrationStage, calibration_status, days_before, night_dir, usable_calibration
from engine.pipeline.science import ScienceStage, exposure_task
from engine.pipeline.stage import EngineView
from engine.pipeline.tasks import CalibrationFrames, CalibrationTask
from engine.reprocess.ledger import DONE, FAILED, Ledger
from engine.timeutil import utc_now_iso


def _days(a: str, b: str) -> int:
    return abs((dt.datetime.strptime(a, "%Y%m%d") - dt.datetime.strptime(b, "%Y%m%d")).days)


def days_after(night: str, days: int) -> str:
    """The UT date ``days`` after ``night`` (``YYYYMMDD``).

    Parameters
    ----------
    night : str
        UT night ``YYYYMMDD``.
    days : int
        How many days later [day].
    """
    return (dt.datetime.strptime(night, "%Y%m%d") + dt.timedelta(days=days)).strftime("%Y%m%d")


class BatchCalibrationStage(CalibrationStage):
    """The live calibration stage; a fallback waits for its neighbours and takes the nearest good night.

    Parameters
    ----------
    ledger : Ledger
        The reprocessing ledger (a calibration the ledger says failed with today's inputs is
        not run again: the night goes straight to its fallback).
    """

    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger
        self.deferred: dict[str, str] = {}
        """``{night: reason}``: nights whose fallback waits for a neighbour's calibration."""

    def task_for(self, view: EngineView, night: str) -> CalibrationTask:
        """The calibration task the live stage would plan for a night with the frames it has now."""
        frames, _speeds = self._frames(view, night)
        cal = calibration_set(frames)
        return CalibrationTask(night=night, out_dir=str(night_dir(view, night)), config=view.config,
                               frames=CalibrationFrames.from_lists({"biases": cal.biases, "domes": cal.domes,
                                                                    "arcs": cal.arcs}),
                               job_key=f"calibration:{night}")

    def plan(self, view: EngineView) -> list:
        for night in sorted(view.nights):
            if night in self.deferred or calibration_status(view, night) is not None:
                continue
            row = self.ledger.get(f"calibration:{night}")
            if row and row["status"] == FAILED and row["fingerprint"] == self.ledger.fingerprint(self.task_for(view, night)):
                self.deferred[night] = row["error"] or "its calibration failed"
        for night, reason in sorted(self.deferred.items()):
            if self._neighbours_settled(view, night):
                del self.deferred[night]
                super()._fallback(view, night, reason)
        return super().plan(dataclasses.replace(view, nights=view.nights - set(self.deferred)))

    def _fallback(self, view: EngineView, night: str, reason: str) -> None:
        if self._neighbours_settled(view, night):
            super()._fallback(view, night, reason)
        else:
            self.deferred[night] = reason

    def _neighbours_settled(self, view: EngineView, night: str) -> bool:
        """Every other batch night within the fallback window has its calibration outcome (or
        is itself waiting to fall back: it can never become a good night)."""
        max_age = view.config.engine.fallback_max_age_days
        return all(calibration_status(view, n) is not None or n in self.deferred
                   for n in view.nights if n != night and _days(n, night) <= max_age)

    def fallback_source(self, view: EngineView, night: str) -> dict | None:
        """The nearest good night within ``engine.fallback_max_age_days``, either side (earlier on a tie)."""
        max_age = view.config.engine.fallback_max_age_days
        rows = view.writer.all(
            "SELECT night, id FROM calibrations WHERE status='ok' AND night != ? AND night >= ? AND night <= ? "
            "ORDER BY night, id DESC", [night, days_before(night, max_age), days_after(night, max_age)])
        best: dict[str, dict] = {}
        for r in rows:
            best.setdefault(r["night"], r)
        if not best:
            return None
        return min(best.values(), key=lambda r: (_days(r["night"], night), r["night"] > night))


class BatchScienceStage(ScienceStage):
    """The live science stage; a night without standards waits for its earlier neighbours' standards."""

    def plan(self, view: EngineView) -> list:
        held = {n for n in view.nights if self._waits_for_neighbours(view, n)}
        return super().plan(dataclasses.replace(view, nights=view.nights - held))

    def _waits_for_neighbours(self, view: EngineView, night: str) -> bool:
        if view.writer.one("SELECT 1 AS x FROM observations WHERE night=? AND kind='standard'", [night]):
            return False
        lo = days_before(night, view.config.science.fluxcal_max_age_days)
        for n in view.nights:
            if lo <= n < night:
                if calibration_status(view, n) is None:
                    return True
                if view.writer.one("SELECT 1 AS x FROM observations WHERE night=? AND kind='standard' "
                                   "AND state IN ('waiting','reducing')", [n]):
                    return True
        return False


def _reset_observation(view: EngineView, obs: dict, why: str) -> None:
    view.writer.update("observations", obs["id"], {"state": "waiting", "stage": "queued for reprocessing",
                                                   "progress": 0.0, "error": None, "updated": utc_now_iso()})
    view.writer.event("observation", f"{obs['obs_id']} {obs['object'] or ''}: reduced again ({why})",
                      night=obs["night"], obs_id=obs["obs_id"], payload={"state": "waiting", "reprocess": why})


def invalidate(view: EngineView, ledger: Ledger, cal_stage: BatchCalibrationStage, *, force: bool = False,
               retry_failed: bool = False) -> dict[str, int]:
    """Send back to ``waiting`` what the ledger cannot vouch for; return the counts kept and reset.

    Parameters
    ----------
    view : EngineView
        The client's view (its nights are the batch's, ingested).
    ledger : Ledger
        The reprocessing ledger.
    cal_stage : BatchCalibrationStage
        Builds the calibration tasks (their fingerprints).
    force : bool
        Reduce everything again.
    retry_failed : bool
        Also exposures that failed with today's inputs (a worker killed by the system is
        always retried).
    """
    counts = {"calibrations_kept": 0, "calibrations_redone": 0, "exposures_kept": 0, "exposures_redone": 0}
    redo_cal: set[str] = set()
    with view.writer.transaction():
        for night in sorted(view.nights):
            row = calibration_status(view, night)
            if row is None:
                continue
            led = ledger.get(f"calibration:{night}")
            fp = ledger.fingerprint(cal_stage.task_for(view, night))
            own_ok = led is not None and led["fingerprint"] == fp and (
                (led["status"] == DONE and row["status"] == "ok")
                or (led["status"] == FAILED and row["status"] in ("fallback", "failed")))
            source = row["source_night"] if row["status"] == "fallback" else None
            if force or not own_ok or (source is not None and source in redo_cal):
                redo_cal.add(night)
                view.writer.db.execute("UPDATE calibrations SET status='superseded' WHERE night=? "
                                       "AND status IN ('ok','fallback','failed')", [night])
                view.writer.update_night(night, calib_status="waiting")
                view.writer.event("calibration", f"calibration of {night} made again (reprocess: "
                                  f"{'--force' if force else 'inputs or configuration changed'})", night=night,
                                  payload={"status": "waiting", "reprocess": True})
                counts["calibrations_redone"] += 1
            else:
                counts["calibrations_kept"] += 1
        for night in sorted(view.nights):
            _invalidate_exposures(view, ledger, night, redo_cal, counts, force=force, retry_failed=retry_failed)
    return counts


def _invalidate_exposures(view: EngineView, ledger: Ledger, night: str, redo_cal: set[str], counts: dict, *,
                          force: bool, retry_failed: bool) -> None:
    rows = view.writer.all(
        """SELECT o.*, f.path AS frame_path FROM observations o JOIN frames f ON f.id = o.frame_id
           WHERE o.night=? AND o.state IN ('done','failed') ORDER BY (o.kind='standard') DESC, o.obs_id""", [night])
    cal = usable_calibration(view, night)
    standard_redone = False
    for obs in rows:
        key = f"science:{night}:{obs['obs_id']}"
        led = ledger.get(key)
        why = ""
        if force:
            why = "--force"
        elif cal is None or night in redo_cal or cal[1] in redo_cal:
            why = "its calibration is made again"
        elif obs["kind"] == "science" and standard_redone:
            why = "its night's standard is reduced again"
        elif led is None:
            why = "not in the reprocessing ledger"
        elif obs["state"] == "failed" and (retry_failed or "KilledWorker" in (led["error"] or "")):
            why = "retrying a failure"
        elif led["fingerprint"] != ledger.fingerprint(exposure_task(view, obs, {"path": obs["frame_path"]})):
            why = "inputs or configuration changed"
        if why:
            _reset_observation(view, obs, why)
            standard_redone |= obs["kind"] == "standard"
            counts["exposures_redone"] += 1
        else:
            counts["exposures_kept"] += 1


__all__ = ["BatchCalibrationStage", "BatchScienceStage", "days_after", "invalidate"]
