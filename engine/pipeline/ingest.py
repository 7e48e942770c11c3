"""Ingest: promote complete raw files into ``frames`` rows (and ``observations`` for IFU
standard/science exposures), recording bad files with their reason and retrying them."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from engine.config import WatchConfig
from engine.errors import FrameError
from engine.ingest.planner import classify_frame, obs_id_of
from engine.ingest.watcher import CompletenessSweep
from engine.io.fitsio import check_complete, header_value, read_header
from engine.state.writer import StateWriter
from engine.timeutil import previous_night, utc_now_iso

log = logging.getLogger(__name__)

HEADER_KEYS_KEPT = (
    "OBJECT", "NAME", "IMGTYPE", "EXPTIME", "ADCSPEED", "GAIN", "AIRMASS", "ENDAIR", "JD", "MJD_OBS",
    "TEL_RA", "TEL_DEC", "OBJRA", "OBJDEC", "TEL_PA", "END_PA", "IN_AIR", "IN_HUM", "BARPRESS", "DOMEST",
    "LAMPCUR", "REQ_ID", "OBJ_ID", "P60PRID", "CAM_NAME", "RA_RATE", "DEC_RATE", "OBSDATE", "OBSTIME",
)


def frame_row(path: Path, header, size: int, mtime: float) -> dict:
    """The ``frames`` row of a complete raw file (classified with the SEDM rules)."""
    night_dir = path.parent.name
    obs_id = obs_id_of(path.name)
    prev_day = bool(obs_id) and int(obs_id[:2]) >= 20
    cls = classify_frame(header, path.name, previous_day=prev_day)
    jd = header_value(header, "JD", cast=float)
    if jd is None or jd <= 0:
        jd = _jd_from_name(path.name)
    return {
        "night": night_dir,
        "file": path.name,
        "path": str(path),
        "camera": "rc" if cls.kind == "guider" else "ifu",
        "kind": cls.kind,
        "lamp": cls.lamp,
        "reason": cls.reason,
        "object": str(header.get("OBJECT", "") or ""),
        "name": str(header.get("NAME", "") or ""),
        "imgtype": str(header.get("IMGTYPE", "") or ""),
        "exptime": header_value(header, "EXPTIME", cast=float),
        "adcspeed": header_value(header, "ADCSPEED", cast=float),
        "airmass": header_value(header, "AIRMASS", cast=float),
        "jd": jd,
        "obs_id": obs_id,
        "size": size,
        "mtime": mtime,
        "state": "ingested",
        "error": None,
        "header_json": json.dumps({k: header[k] for k in HEADER_KEYS_KEPT if k in header}, default=str),
    }


def _jd_from_name(name: str) -> float | None:
    import datetime as dt

    from engine.ingest.planner import date_of

    d, o = date_of(name), obs_id_of(name)
    if not d or not o:
        return None
    t = dt.datetime.strptime(f"{d}{o}", "%Y%m%d%H_%M_%S").replace(tzinfo=dt.timezone.utc)
    return 2440587.5 + t.timestamp() / 86400.0


class Ingestor:
    """Turns nominated paths into state rows, one transaction (with its event) per file.

    Parameters
    ----------
    writer : StateWriter
        The engine's writer.
    watch : WatchConfig
        Stability and retry settings.
    """

    def __init__(self, writer: StateWriter, watch: WatchConfig) -> None:
        self.writer = writer
        self.watch = watch
        self.sweep_state = CompletenessSweep(stable_s=watch.stable_s)
        rows = writer.all("SELECT path, state FROM frames")
        self.known = {Path(r["path"]) for r in rows if r["state"] != "failed"}

    def nominate(self, paths) -> None:
        """Consider paths (from events or a rescan); already-ingested files are ignored."""
        self.sweep_state.nominate(p for p in paths if p not in self.known)

    @property
    def pending(self) -> int:
        """Files seen but not yet ingested (including those waiting for a retry)."""
        return len(self.sweep_state.candidates)

    def sweep(self, *, force: bool = False, now: float | None = None) -> list[dict]:
        """Ingest every stable candidate; return the new frame rows."""
        now = time.time() if now is None else now
        new_rows = []
        for path in self.sweep_state.ready(now, force=force):
            try:
                size = check_complete(path)
                header = read_header(path)
                row = frame_row(path, header, size, path.stat().st_mtime)
            except FrameError as exc:
                self._bad_file(path, exc, now, force)
                continue
            except OSError as exc:  # vanished or unreadable
                self._bad_file(path, FrameError(f"{path.name}: {exc}", retryable=True), now, force)
                continue
            self._record(row)
            self.sweep_state.done(path)
            self.known.add(path)
            new_rows.append(row)
        return new_rows

    def _record(self, row: dict) -> None:
        w = self.writer
        with w.transaction():
            existing = w.one("SELECT id FROM frames WHERE path=?", [row["path"]])
            row = dict(row, updated=utc_now_iso())
            if existing:
                w.update("frames", existing["id"], row)
                frame_id = existing["id"]
            else:
                frame_id = w.insert("frames", dict(row, created=utc_now_iso()))
            w.event(
                "frame",
                f"{row['file']}: {row['kind']} ({row['reason']})",
                night=row["night"], obs_id=row["obs_id"], frame=row["file"],
                payload={"kind": row["kind"], "object": row["object"], "lamp": row["lamp"]},
            )
            if row["kind"] in ("standard", "science"):
                self._observation(row, frame_id)

    def _observation(self, row: dict, frame_id: int) -> None:
        w = self.writer
        header = json.loads(row["header_json"])
        if w.one("SELECT id FROM observations WHERE night=? AND obs_id=?", [row["night"], row["obs_id"]]):
            return
        w.insert("observations", {
            "night": row["night"], "obs_id": row["obs_id"], "frame_id": frame_id, "file": row["file"],
            "object": row["object"].replace(" [A]", "").replace(" [B]", "").strip(),
            "name": row["name"] or row["object"], "kind": row["kind"], "exptime": row["exptime"],
            "airmass": row["airmass"], "jd": row["jd"], "ra": header.get("OBJRA"), "dec": header.get("OBJDEC"),
            "p60prid": header.get("P60PRID"), "state": "waiting", "stage": "waiting for calibration",
            "progress": 0.0, "created": utc_now_iso(), "updated": utc_now_iso(),
        })
        w.event("observation", f"{row['obs_id']} {row['object']}: new {row['kind']} exposure",
                night=row["night"], obs_id=row["obs_id"], payload={"state": "waiting"})

    def _bad_file(self, path: Path, exc: FrameError, now: float, force: bool) -> None:
        cand = self.sweep_state.candidates[path]
        backoff = self.watch.retry_backoff_s
        delay = backoff[min(cand.attempts, len(backoff) - 1)]
        give_up = cand.attempts + 1 >= self.watch.max_retries or (force and not exc.retryable)
        if force and exc.retryable and cand.attempts >= 1:
            give_up = True
        message = str(exc) if not give_up else f"{exc} (gave up after {cand.attempts + 1} attempts)"
        cand = self.sweep_state.retry_later(path, delay, message, now)
        night = path.parent.name
        w = self.writer
        with w.transaction():
            existing = w.one("SELECT id, error FROM frames WHERE path=?", [str(path)])
            fields = {
                "night": night, "file": path.name, "path": str(path), "state": "failed", "error": message,
                "attempts": cand.attempts, "next_retry": None if give_up else now + delay,
                "size": cand.size, "mtime": cand.mtime, "obs_id": obs_id_of(path.name), "updated": utc_now_iso(),
            }
            if existing:
                w.update("frames", existing["id"], fields)
            else:
                w.insert("frames", dict(fields, created=utc_now_iso()))
            if existing is None or existing["error"] != message:
                w.event("frame_failed", message, night=night, frame=path.name, level="warning",
                        payload={"retry_in_s": None if give_up else delay})
        if give_up:
            self.sweep_state.done(path)
        log.warning("%s", message)


def nights_to_scan(night: str) -> list[str]:
    """A night's own directory and the previous UT day's (afternoon calibrations)."""
    return [previous_night(night), night]
