"""Ingest: promote complete raw files into ``frames`` rows (and ``observations`` for IFU
standard/science exposures), recording bad files with their reason and retrying them.

Every file passes the input boundary (:mod:`engine.io.inputs`) first: its night directory,
its name, its FITS structure and its header cards. A file refused for good (not FITS, an
impossible time in its name, an unparsable header card, ``EXPTIME <= 0``...) is recorded once
with its reason and not read again unless it changes. A file still being written (truncated)
is retried; a change of its size or mtime makes it a candidate again at once, so a slowly
written file is ingested within ``stable_s`` (plus one sweep) of its completion.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from engine.config import WatchConfig
from engine.errors import FrameError
from engine.ingest.planner import classify_frame
from engine.ingest.watcher import CompletenessSweep
from engine.io.fitsio import check_complete
from engine.io.inputs import (
    RawName,
    Refusal,
    check_exposure,
    clean_text,
    parse_night,
    parse_raw_name,
    read_frame_header,
)
from engine.state.writer import StateWriter
from engine.timeutil import previous_night, utc_now_iso

log = logging.getLogger(__name__)


def frame_row(path: Path, values: dict, size: int, mtime: float, name: RawName) -> dict:
    """The ``frames`` row of a complete raw file (classified with the SEDM rules).

    Parameters
    ----------
    path : Path
        The raw file.
    values : dict
        Its validated header keywords (:func:`engine.io.inputs.read_frame_header`).
    size, mtime : int, float
        File size and modification time.
    name : RawName
        Its parsed file name.
    """
    prev_day = int(name.obs_id[:2]) >= 20
    cls = classify_frame(values, path.name, previous_day=prev_day)
    jd = values.get("JD")
    if jd is None or jd <= 0:
        jd = name.jd
    return {
        "night": path.parent.name,
        "file": path.name,
        "path": str(path),
        "camera": "rc" if cls.kind == "guider" else "ifu",
        "kind": cls.kind,
        "lamp": cls.lamp,
        "reason": cls.reason,
        "object": str(values.get("OBJECT", "")),
        "name": str(values.get("NAME", "")),
        "imgtype": str(values.get("IMGTYPE", "")),
        "exptime": values.get("EXPTIME"),
        "adcspeed": values.get("ADCSPEED"),
        "airmass": values.get("AIRMASS"),
        "jd": jd,
        "obs_id": name.obs_id,
        "size": size,
        "mtime": mtime,
        "state": "ingested",
        "error": None,
        "next_retry": None,
        "header_json": json.dumps(values, default=str),
    }


def file_key(path: Path) -> tuple[str, str]:
    """``(night directory, file name)``: the same file however the raw root is spelled."""
    return path.parent.name, path.name


def read_raw_file(path: Path) -> dict:
    """A raw file through the input boundary: its ``frames`` row, or a FrameError with the reason.

    Raises
    ------
    FrameError
        The file is refused (``retryable`` when it may still be being written).
    """
    night = parse_night(path.parent.name)
    if isinstance(night, Refusal):
        raise FrameError(f"{path.name}: directory {night.reason}")
    name = parse_raw_name(path.name)
    if isinstance(name, Refusal):
        raise FrameError(name.reason)
    size = check_complete(path)
    values = read_frame_header(path)
    row = frame_row(path, values, size, path.stat().st_mtime, name)
    refusal = check_exposure(values, row["kind"], path.name)
    if refusal is not None:
        raise FrameError(refusal.reason)
    return row


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
        rows = writer.all("SELECT night, file, state, next_retry, size, mtime FROM frames")
        self.known = {(r["night"], r["file"]) for r in rows if r["state"] != "failed"}
        self.refused: dict[tuple[str, str], tuple] = {
            (r["night"], r["file"]): (r["size"], r["mtime"]) for r in rows
            if r["state"] == "failed" and r["next_retry"] is None
        }

    def nominate(self, paths) -> None:
        """Consider paths (from events or a rescan); ingested and refused files are ignored
        (a refused file is considered again only once its size or mtime changed)."""
        self.sweep_state.nominate(p for p in paths if file_key(p) not in self.known and not self._still_refused(p))

    def _still_refused(self, path: Path) -> bool:
        seen = self.refused.get(file_key(path))
        if seen is None:
            return False
        try:
            st = path.stat()
        except OSError:
            return True
        if (st.st_size, st.st_mtime) == seen:
            return True
        del self.refused[file_key(path)]
        return False

    @property
    def pending(self) -> int:
        """Files seen but not yet ingested (including those waiting for a retry)."""
        return len(self.sweep_state.candidates)

    @property
    def fresh(self) -> int:
        """Files seen and not yet tried (a file waiting for a retry does not hold the night up)."""
        return sum(1 for c in self.sweep_state.candidates.values() if c.attempts == 0 or c.next_try == 0.0)

    def sweep(self, *, force: bool = False, now: float | None = None) -> list[dict]:
        """Ingest every stable candidate; return the new frame rows."""
        now = time.time() if now is None else now
        new_rows = []
        for path in self.sweep_state.ready(now, force=force):
            try:
                row = read_raw_file(path)
            except FrameError as exc:
                self._bad_file(path, exc, now, force)
                continue
            except OSError as exc:  # vanished or unreadable
                self._bad_file(path, FrameError(f"{path.name}: {exc}", retryable=True), now, force)
                continue
            except Exception as exc:  # noqa: BLE001 - a bad file is recorded, never stops the night
                log.exception("reading %s failed", path)
                self._bad_file(path, FrameError(f"{path.name}: cannot be read ({type(exc).__name__}: {exc})"), now, force)
                continue
            self._record(row)
            self.sweep_state.done(path)
            self.known.add(file_key(path))
            new_rows.append(row)
        return new_rows

    def _existing(self, night: str, file: str) -> dict | None:
        return self.writer.one("SELECT id, error, path FROM frames WHERE night=? AND file=?", [night, file])

    def _record(self, row: dict) -> None:
        w = self.writer
        with w.transaction():
            existing = self._existing(row["night"], row["file"])
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
        """Record a refused file with its reason; retry only what may still be being written."""
        cand = self.sweep_state.candidates[path]
        backoff = self.watch.retry_backoff_s
        delay = backoff[min(cand.attempts, len(backoff) - 1)]
        give_up = (not exc.retryable or cand.attempts + 1 >= self.watch.max_retries
                   or (force and cand.attempts >= 1))
        reason = clean_text(exc, max_len=500)
        message = reason if not give_up or not exc.retryable else f"{reason} (gave up after {cand.attempts + 1} attempts)"
        cand = self.sweep_state.retry_later(path, delay, message, now)
        if give_up:
            self.sweep_state.done(path)
            self.refused[file_key(path)] = (cand.size, cand.mtime)
        log.warning("%s", message)
        if isinstance(parse_night(path.parent.name), Refusal):
            return  # not a night directory: logged, never a state row
        night = path.parent.name
        w = self.writer
        with w.transaction():
            existing = self._existing(night, path.name)
            fields = {
                "night": night, "file": path.name, "path": str(path), "state": "failed", "error": message,
                "attempts": cand.attempts, "next_retry": None if give_up else now + delay,
                "size": cand.size, "mtime": cand.mtime, "updated": utc_now_iso(),
            }
            name = parse_raw_name(path.name)
            fields["obs_id"] = None if isinstance(name, Refusal) else name.obs_id
            if existing:
                w.update("frames", existing["id"], fields)
            else:
                w.insert("frames", dict(fields, created=utc_now_iso()))
            if existing is None or existing["error"] != message:
                w.event("frame_failed", message, night=night, frame=path.name, level="warning",
                        payload={"retry_in_s": None if give_up else delay, "retryable": bool(exc.retryable)})


def nights_to_scan(night: str) -> list[str]:
    """A night's own directory and the previous UT day's (afternoon calibrations)."""
    return [previous_night(night), night]
