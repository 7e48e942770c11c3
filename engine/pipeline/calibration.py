"""Calibration stage: run the night calibration when the frames are there, or fall back.

* The ideal set (>= 10 biases per read speed, 5 domes, 5 of each arc) starts the calibration
  at once; the SEDM minimum (5 / 3 / 3) after evening twilight (``engine.twilight_ut_hour``);
  any complete set (>= 1 of each) when the night's data are known to be complete (``--once``).
* On failure, or with no usable frames, the most recent good night's products (at most
  ``engine.fallback_max_age_days`` old) are used. That is recorded in ``calibrations``
  (status ``fallback``, ``source_night``), in an event, and in every product made with them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from engine.ingest.planner import belongs_to_night, calibration_set
from engine.pipeline.jobs import Job
from engine.pipeline.recipes.calibration import calibrate_night
from engine.pipeline.stage import EngineView
from engine.pipeline.tasks import CalibrationFrames, CalibrationTask
from engine.timeutil import previous_night, utc_now_iso

log = logging.getLogger(__name__)

DONE_STATES = ("ok", "fallback", "failed")


def night_dir(view: EngineView, night: str) -> Path:
    """The reduction directory of a night.

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    night : str
        UT night ``YYYYMMDD``.
    """
    return Path(view.config.paths.redux_root) / night


def calibration_status(view: EngineView, night: str) -> dict | None:
    """The newest calibration row of a night with a terminal status.

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    night : str
        UT night ``YYYYMMDD``.
    """
    return view.writer.one(
        "SELECT * FROM calibrations WHERE night=? AND status IN ('ok','fallback','failed') ORDER BY id DESC LIMIT 1",
        [night],
    )


def usable_calibration(view: EngineView, night: str) -> tuple[str, str] | None:
    """``(products_directory, calibration_night)`` for a night, or ``None``.

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    night : str
        UT night ``YYYYMMDD``.
    """
    row = calibration_status(view, night)
    if row is None or row["status"] not in ("ok", "fallback"):
        return None
    source = row["source_night"] or night
    return str(night_dir(view, source)), source


class CalibrationStage:
    """Plans one calibration job per night and records its outcome."""

    name = "calibration"

    def _frames(self, view: EngineView, night: str) -> tuple[list[dict], set[float]]:
        rows = view.writer.all(
            "SELECT night, file, kind, lamp, adcspeed, path FROM frames WHERE state='ingested' AND night IN (?, ?)",
            [night, previous_night(night)],
        )
        cal = [r for r in rows
               if r["kind"] in ("bias", "dome", "arc") and belongs_to_night(r["night"], r["file"], r["kind"], night)]
        speeds = {round(float(r["adcspeed"]), 1) for r in rows
                  if r["night"] == night and r["kind"] in ("standard", "science") and r["adcspeed"] is not None}
        if not speeds:
            speeds = {round(float(r["adcspeed"]), 1) for r in cal if r["kind"] in ("dome", "arc") and r["adcspeed"] is not None}
        return cal, speeds

    def __init__(self) -> None:
        self._waiting: dict[str, str] = {}  # night -> the last "waiting" reason announced

    def plan(self, view: EngineView) -> list[Job]:
        jobs = []
        for night in sorted(view.nights):
            key = f"calibration:{night}"
            if key in view.running or calibration_status(view, night) is not None:
                continue
            frames, speeds = self._frames(view, night)
            cal = calibration_set(frames)
            level = cal.level(speeds)
            ready, why = self._readiness(view, night, level)
            if not ready:
                if why == "fallback":
                    self._fallback(view, night, f"incomplete calibration set {cal.counts()}")
                else:
                    self._announce_wait(view, night, f"calibration of {night} waiting: {level} set {cal.counts()}; {why}")
                continue
            self._waiting.pop(night, None)
            cal_frames = CalibrationFrames.from_lists({"biases": cal.biases, "domes": cal.domes, "arcs": cal.arcs})
            task = CalibrationTask(night=night, frames=cal_frames, out_dir=str(night_dir(view, night)), config=view.config,
                                   job_key=key)
            jobs.append(Job(stage=self.name, key=key, fn=calibrate_night, args=(task,), priority=10,
                            context={"night": night, "level": level, "counts": cal.counts(),
                                     "label": f"calibrating {night}", "why": why}))
        return jobs

    def _readiness(self, view: EngineView, night: str, level: str) -> tuple[bool, str]:
        """``(ready, why)``: whether a night's calibration may start now, and the reason.

        * ``ideal``: at once.
        * ``minimum`` (5 / 3 / 3): after evening twilight of the current night, or once the
          night's calibration frames are known to be all there.
        * ``partial`` (>= 1 of each): once they are all there.
        * ``incomplete``: once they are all there, fall back (``why == "fallback"``).

        The calibration frames are all there when ``--once`` says so, when the night's on-sky
        exposures have begun (SEDM takes its calibrations before them), or when the night is
        over (an earlier UT date than today); in watch mode nothing may be waiting to be
        ingested either.
        """
        if level == "ideal":
            return True, "ideal set"
        science = view.writer.one(
            "SELECT count(*) AS n FROM frames WHERE night=? AND state='ingested' AND kind IN ('standard','science')",
            [night])["n"]
        past = bool(view.today) and night < view.today
        if view.once:
            complete, because = view.ingest_idle, "the night's data are complete (--once)"
        elif past:
            complete, because = view.ingest_idle, f"the night is over (today is {view.today})"
        elif science:
            complete, because = view.ingest_idle, f"on-sky exposures have begun ({science})"
        else:
            complete, because = False, ""
        tonight = night == view.today or not view.today
        after_twilight = tonight and 0.0 <= view.now_ut_hour < 12.0 and view.now_ut_hour >= view.config.engine.twilight_ut_hour
        if level == "minimum" and after_twilight:
            return True, "minimum set after twilight"
        if level in ("minimum", "partial") and complete:
            return True, f"{level} set: {because}"
        if level == "incomplete" and complete:
            return False, "fallback"
        if level == "incomplete":
            return False, ("needs at least 1 bias, 1 dome and 1 Hg, Cd and Xe arc; waiting for more frames "
                           "(falls back once the night's exposures begin or the night is over)")
        return False, (f"waiting for the ideal set (10 biases, 5 domes, 5 of each arc); the {level} set will be "
                       "used once the night's exposures begin, after twilight, or once the night is over")

    def _announce_wait(self, view: EngineView, night: str, message: str) -> None:
        """One event per night and reason, so a console can say why nothing happens."""
        if self._waiting.get(night) == message:
            return
        self._waiting[night] = message
        with view.writer.transaction():
            view.writer.update_night(night, calib_status="waiting")
            view.writer.event("calibration", message, night=night, payload={"status": "waiting"})

    def on_submit(self, view: EngineView, job: Job) -> None:
        """The engine started the calibration."""
        night, level = job.context["night"], job.context["level"]
        with view.writer.transaction():
            view.writer.update_night(night, calib_status="running")
            view.writer.event("calibration", f"calibration of {night} started ({level} set: {job.context['counts']}; "
                              f"{job.context.get('why', '')})",
                              night=night, payload={"status": "running", "level": level})

    def progress(self, view: EngineView, job: Job, stage: str, fraction: float, message: str) -> None:
        night = job.context["night"]
        view.writer.event("calibration", f"calibration {night}: {stage}", night=night,
                          payload={"status": "running", "stage": stage, "progress": fraction})

    def record(self, view: EngineView, job: Job, result: dict) -> None:
        night = job.context["night"]
        s = result["stats"]
        with view.writer.transaction():
            cid = view.writer.insert("calibrations", {
                "night": night, "status": "ok", "source_night": night, "level": job.context["level"],
                "products_json": result["products"], "stats_json": s, "inputs_json": result["inputs"],
                "wall_s": s.get("wall_s"), "created": utc_now_iso(),
            })
            view.writer.update_night(night, calib_status="ok", calib_id=cid)
            view.writer.event(
                "calibration",
                f"calibration of {night} done in {s.get('wall_s', 0):.0f} s: {s.get('nspax')} spaxels, "
                f"wavelength rms {s.get('wave_rms_median_aa', float('nan')):.2f} A, flat std {100 * s.get('flat_std', 0):.1f} %",
                night=night, payload={"status": "ok", "calibration_id": cid, "stats": s},
            )

    def failed(self, view: EngineView, job: Job, error: BaseException) -> None:
        night = job.context["night"]
        msg = f"{type(error).__name__}: {error}"
        with view.writer.transaction():
            view.writer.insert("calibrations", {
                "night": night, "status": "error", "level": job.context.get("level"), "error": msg,
                "created": utc_now_iso(),
            })
            view.writer.event("calibration", f"calibration of {night} failed: {msg}", night=night, level="error",
                              payload={"status": "error", "error": msg})
        self._fallback(view, night, msg)

    def fallback_source(self, view: EngineView, night: str) -> dict | None:
        """The calibration a night falls back on: the most recent good earlier night at most
        ``engine.fallback_max_age_days`` old (``{"night", "id"}``), or ``None``."""
        return view.writer.one(
            """SELECT night, id FROM calibrations WHERE status='ok' AND night < ? AND night >= ?
               ORDER BY night DESC, id DESC LIMIT 1""",
            [night, days_before(night, view.config.engine.fallback_max_age_days)],
        )

    def _fallback(self, view: EngineView, night: str, reason: str) -> None:
        max_age = view.config.engine.fallback_max_age_days
        row = self.fallback_source(view, night)
        with view.writer.transaction():
            if row is None:
                view.writer.insert("calibrations", {"night": night, "status": "failed", "error": reason,
                                                    "created": utc_now_iso()})
                view.writer.update_night(night, calib_status="failed")
                view.writer.event("calibration", f"no calibration for {night}: {reason}; no good night in the last "
                                  f"{max_age} days to fall back on", night=night, level="error",
                                  payload={"status": "failed"})
                return
            cid = view.writer.insert("calibrations", {
                "night": night, "status": "fallback", "source_night": row["night"], "error": reason,
                "products_json": json.dumps({"from_calibration_id": row["id"]}), "created": utc_now_iso(),
            })
            view.writer.update_night(night, calib_status="fallback", calib_id=cid)
            view.writer.event("calibration", f"{night} uses the calibration of {row['night']} (fallback): {reason}",
                              night=night, level="warning",
                              payload={"status": "fallback", "source_night": row["night"]})

    def busy(self, view: EngineView) -> bool:
        """True while a night has no calibration outcome yet."""
        return any(calibration_status(view, n) is None for n in view.nights)

    def tick(self, view: EngineView) -> bool:
        """Nothing beside the jobs."""
        return False

    def request_handlers(self) -> dict:
        """None."""
        return {}


def days_before(night: str, days: int) -> str:
    """The UT date ``days`` before ``night`` (``YYYYMMDD``).

    Parameters
    ----------
    night : str
        UT night ``YYYYMMDD``.
    days : int
        How many days earlier [day].
    """
    d = dt.datetime.strptime(night, "%Y%m%d") - dt.timedelta(days=days)
    return d.strftime("%Y%m%d")
