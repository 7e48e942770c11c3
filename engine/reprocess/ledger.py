"""The reprocessing ledger: what a batch did to each task, and with which inputs.

A task's *fingerprint* is the SHA-256 of everything its products depend on: the typed task
itself (frames, calibration night, sensitivities, the resolved configuration with secrets
masked), the size and modification time of every input file it names, the fingerprint of the
calibration it uses, and the engine version (a standard's fingerprint leaves out the
sensitivities: it uses none, and the live engine's list of them depends on timing). The ``reprocess`` table holds one row per task
key (``calibration:NIGHT``, ``science:NIGHT:HH_MM_SS``, ``recalibrate:...``) with the
fingerprint it ran with, its outcome and the worker's figures.

A rerun trusts the state database, not the files on disk: a night whose calibration row and
ledger row agree with today's fingerprint is kept, an exposure whose observation is ``done``
(or ``failed``) with today's fingerprint is kept; everything else goes back to ``waiting`` and
the engine's own stages reduce it again (the old extraction is superseded, as live).
Exposures the live engine reduced (no ledger row) are reduced again once: nothing records the
configuration they were made with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine import __version__
from engine.config import Config
from engine.pipeline.tasks import CalibrationTask, ExposureTask, RecalibrationTask, ReextractionTask
from engine.state.writer import StateWriter
from engine.timeutil import utc_now_iso

DONE, FAILED = "done", "failed"
"""Outcomes of a task in the ledger."""


def _plain(value: Any) -> Any:
    """A task as JSON-able data: dataclasses as dicts, the configuration as its masked dict."""
    if isinstance(value, Config):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "job_key"}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _stat(path: str) -> list:
    """``[path, size, mtime_ns]`` (``[path, None, None]`` for a missing file)."""
    try:
        st = os.stat(path)
    except OSError:
        return [path, None, None]
    return [path, st.st_size, st.st_mtime_ns]


def task_files(task: Any) -> list[str]:
    """The input files a task names (raw frames, sensitivities, the cube of a re-extraction)."""
    if isinstance(task, CalibrationTask):
        return task.frames.paths()
    if isinstance(task, RecalibrationTask):
        return task_files(task.reextraction)
    if isinstance(task, ReextractionTask):
        return [*task_files(task.exposure), str(Path(task.exposure.out_dir) / task.cube_file)]
    if isinstance(task, ExposureTask):
        return [task.raw, *(c.path for c in task.fluxcal if task.kind == "science")]
    return []


def _exposure_of(task: Any) -> ExposureTask | None:
    if isinstance(task, RecalibrationTask):
        return task.reextraction.exposure
    if isinstance(task, ReextractionTask):
        return task.exposure
    return task if isinstance(task, ExposureTask) else None


class Ledger:
    """The ``reprocess`` table, written by the client only (through the engine's writer).

    Parameters
    ----------
    writer : StateWriter
        The client's state writer.
    run_id : str
        This run's id (recorded on every row it writes).
    roots : dict, optional
        ``{path: name}``: the raw and reduction roots, written as their names in a fingerprint
        (a root mounted elsewhere, or a copied reduction root, keeps what it holds).
    """

    def __init__(self, writer: StateWriter, run_id: str, roots: dict[str, str] | None = None) -> None:
        self.writer = writer
        self.run_id = run_id
        self.roots = sorted((roots or {}).items(), key=lambda kv: -len(kv[0]))

    def get(self, key: str) -> dict | None:
        """The ledger row of a task key, or ``None``."""
        return self.writer.one("SELECT * FROM reprocess WHERE key=?", [key])

    def fingerprint(self, task: Any) -> str:
        """The fingerprint of a task (see the module docstring)."""
        exposure = _exposure_of(task)
        cal = ""
        if isinstance(task, ExposureTask) and task.kind != "science":
            task = dataclasses.replace(task, fluxcal=())  # a standard fits its own sensitivity
        if exposure is not None:
            row = self.get(f"calibration:{exposure.cal_night}")
            cal = row["fingerprint"] if row and row["status"] == DONE else ""
        blob = {"engine": __version__, "type": type(task).__name__, "task": _plain(task),
                "files": [_stat(p) for p in task_files(task)], "calibration": cal}
        text = json.dumps(blob, sort_keys=True, default=str)
        for path, name in self.roots:
            text = text.replace(path, name)
        return hashlib.sha256(text.encode()).hexdigest()

    def started(self, key: str, night: str, kind: str, fingerprint: str) -> None:
        """A task was sent to the cluster (``attempts`` + 1; the outcome is cleared)."""
        row = self.get(key)
        fields = {"night": night, "kind": kind, "fingerprint": fingerprint, "status": "running", "error": None,
                  "run_id": self.run_id, "updated": utc_now_iso()}
        with self.writer.transaction():
            if row is None:
                self.writer.db["reprocess"].insert({"key": key, "attempts": 1, **fields})
            else:
                self.writer.db["reprocess"].update(key, {**fields, "attempts": int(row["attempts"]) + 1})

    def finished(self, key: str, status: str, *, error: str | None = None, facts: dict | None = None) -> None:
        """Record a task's outcome (call inside the transaction that records its result)."""
        facts = facts or {}
        self.writer.db["reprocess"].update(key, {
            "status": status, "error": error, "worker": facts.get("worker"), "wall_s": facts.get("wall_s"),
            "peak_rss_mb": facts.get("peak_rss_mb"), "run_id": self.run_id, "updated": utc_now_iso()})

    def rows(self, nights: Iterable[str]) -> list[dict]:
        """Every ledger row of some nights."""
        nights = sorted(nights)
        marks = ",".join("?" * len(nights))
        return self.writer.all(f"SELECT * FROM reprocess WHERE night IN ({marks}) ORDER BY key", nights) if nights else []


__all__ = ["DONE", "FAILED", "Ledger", "task_files"]
