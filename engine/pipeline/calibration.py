"""Calibration stage: run the night calibration when the frames are there, or fall back.

* The ideal set (>= 10 biases per read speed, 5 domes, 5 of each arc) starts the calibration
  at once; the SEDM minimum (5 / 3 / 3) after evening twilight (``engine.twilight_ut_hour``);
  any complete set (>= 1 of each) when the night's data are known to be complete (``--once``).
* On failure, or with no usable frames, the most recent good night's products (at most
  ``engine.fallback_max_age_days`` old) are used. That is recorded in ``calibrations``
  (status ``fallback``, ``source_night``), in an event, and in every product made with them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from engine.calib.night import calibrate_night
from engine.ingest.planner import belongs_to_night, calibration_set
from engine.pipeline.jobs import Job
from engine.pipeline.stage import EngineView
from engine.timeutil import previous_night, utc_now_iso

log = logging.getLogger(__name__)

DONE_STATES = ("ok", "fallback", "failed")


def night_dir(view: EngineView, night: str) -> Path:
    """The reduction directory of a night."""
    return Path(view.config.paths.redux_root) / night


def calibration_status(view: EngineView, night: str) -> dict | None:
    """The newest calibration row of a night with a terminal status."""
    return view.writer.one(
        "SELECT * FROM calibrations WHERE night=? AND status IN ('ok','fallback','failed') ORDER BY id DESC LIMIT 1",
        [night],
    )


def usable_calibration(view: EngineView, night: str) -> tuple[str, str] | None:
    """``(products_directory, calibration_night)`` for a night, or ``None``."""
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
        cal = [r for r in rows if r["kind"] in ("bias", "dome", "arc") and belongs_to_night(r["night"], r["file"], r["kind"], night)]
        speeds = {round(float(r["adcspeed"]), 1) for r in rows
                  if r["night"] == night and r["kind"] in ("standard", "science") and r["adcspeed"] is not None}
        if not speeds:
            speeds = {round(float(r["adcspeed"]), 1) for r in cal if r["kind"] in ("dome", "arc") and r["adcspeed"] is not None}
        return cal, speeds

    def plan(self, view: EngineView) -> list[Job]:
        jobs = []
        for night in sorted(view.nights):
            key = f"calibration:{night}"
            if key in view.running or calibration_status(view, night) is not None:
                continue
            frames, speeds = self._frames(view, night)
            cal = calibration_set(frames)
            level = cal.level(speeds)
            after_twilight = 0.0 <= view.now_ut_hour < 12.0 and view.now_ut_hour >= view.config.engine.twilight_ut_hour
            ready = level == "ideal" or (level == "minimum" and after_twilight) or (
                level in ("minimum", "partial") and view.once and view.ingest_idle)
            if not ready:
                if view.once and view.ingest_idle and level == "incomplete":
                    self._fallback(view, night, f"incomplete calibration set {cal.counts()}")
                continue
            payload = {"biases": {str(k): v for k, v in cal.biases.items()}, "domes": cal.domes, "arcs": cal.arcs}
            config = view.config.to_dict()
            jobs.append(Job(stage=self.name, key=key, fn=calibrate_night,
                            args=(night, payload, str(night_dir(view, night)), config, key), priority=10,
                            context={"night": night, "level": level, "counts": cal.counts(),
                                     "label": f"calibrating {night}"}))
        return jobs

    def on_submit(self, view: EngineView, job: Job) -> None:
        """The engine started the calibration."""
        night, level = job.context["night"], job.context["level"]
        with view.writer.transaction():
            view.writer.update_night(night, calib_status="running")
            view.writer.event("calibration", f"calibration of {night} started ({level} set: {job.context['counts']})",
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

    def _fallback(self, view: EngineView, night: str, reason: str) -> None:
        max_age = view.config.engine.fallback_max_age_days
        row = view.writer.one(
            """SELECT night, id FROM calibrations WHERE status='ok' AND night < ? AND night >= ?
               ORDER BY night DESC, id DESC LIMIT 1""",
            [night, _days_before(night, max_age)],
        )
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
        return any(calibration_status(view, n) is None for n in view.nights)


def _days_before(night: str, days: int) -> str:
    import datetime as dt

    d = dt.datetime.strptime(night, "%Y%m%d") - dt.timedelta(days=days)
    return d.strftime("%Y%m%d")
