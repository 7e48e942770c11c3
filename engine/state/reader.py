"""A Textual-free reader of the state database, for consoles and outside tools.

One connection is kept for the reader's lifetime; ``PRAGMA data_version`` (tens of
microseconds) tells when another connection committed, and ``events_after`` then reads the
new events. Every query is fully fetched, so no read transaction or cursor is ever left open
(an open reader would stop the engine's WAL checkpoints).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.state.db import open_reader
from engine.timeutil import now_s


@dataclass(frozen=True)
class Event:
    """One row of the ``events`` table."""

    id: int
    ts: str
    night: str | None
    kind: str
    obs_id: str | None
    frame: str | None
    level: str
    message: str | None
    payload: dict[str, Any]


def _rows(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


class StateReader:
    """Read-only access to the state database.

    Parameters
    ----------
    path : path-like
        The database file.
    readonly : bool
        Open the file with ``mode=ro`` (the console's ``--readonly``).
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.conn = open_reader(self.path, readonly=readonly)
        self._snapshot = self._is_immutable()

    def _is_immutable(self) -> bool:
        """True when the connection reads an immutable snapshot: after opening (and reading
        the schema) there is still no ``-wal``/``-shm``, so no connection could create them."""
        return not (Path(f"{self.path}-wal").exists() and Path(f"{self.path}-shm").exists())

    def _reopen_if_engine_started(self) -> None:
        """A snapshot connection sees no change: reopen it once an engine opens the database."""
        if self._snapshot and Path(f"{self.path}-wal").exists() and Path(f"{self.path}-shm").exists():
            old = self.conn
            self.conn = open_reader(self.path, readonly=True)
            self._snapshot = self._is_immutable()
            old.close()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def query(self, sql: str, params: list | tuple = ()) -> list[dict[str, Any]]:
        """Run a read query and fetch every row as a dict."""
        return _rows(self.conn.execute(sql, list(params)))

    # ------------------------------------------------------------------ tailing
    def data_version(self) -> int:
        """``PRAGMA data_version``: changes when another connection commits."""
        if self._snapshot:
            self._reopen_if_engine_started()
            if not self._snapshot:
                return -int(self.conn.execute("PRAGMA data_version").fetchone()[0]) - 1  # a change
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def max_event_id(self) -> int:
        """Id of the newest event (0 when there is none)."""
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    def events_after(self, last_id: int, limit: int = 5000) -> list[Event]:
        """Events with ``id > last_id``, oldest first."""
        rows = self.query("SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", [last_id, limit])
        return [
            Event(
                id=r["id"],
                ts=r["ts"],
                night=r["night"],
                kind=r["kind"],
                obs_id=r["obs_id"],
                frame=r["frame"],
                level=r["level"] or "info",
                message=r["message"],
                payload=json.loads(r["payload_json"]) if r["payload_json"] else {},
            )
            for r in rows
        ]

    def recent_events(self, night: str | None, n: int = 200) -> list[Event]:
        """The newest ``n`` events (of a night, plus night-less ones), oldest first."""
        last = self.max_event_id()
        rows = self.events_after(max(0, last - 20 * n), limit=20 * n)
        if night is not None:
            rows = [e for e in rows if e.night in (None, night)]
        return rows[-n:]

    # ------------------------------------------------------------------ snapshot
    def nights(self) -> list[str]:
        """Nights known to the engine, newest first."""
        return [r["night"] for r in self.query("SELECT night FROM nights ORDER BY night DESC")]

    def night(self, night: str) -> dict[str, Any] | None:
        """The ``nights`` row."""
        rows = self.query("SELECT * FROM nights WHERE night=?", [night])
        return rows[0] if rows else None

    def targets(self, night: str) -> list[dict[str, Any]]:
        """Rows of the ``targets`` view for a night, in time order."""
        return self.query("SELECT * FROM targets WHERE night=? ORDER BY obs_id", [night])

    def target(self, night: str, obs_id: str) -> dict[str, Any] | None:
        """One row of the ``targets`` view."""
        rows = self.query("SELECT * FROM targets WHERE night=? AND obs_id=?", [night, obs_id])
        return rows[0] if rows else None

    def observation(self, night: str, obs_id: str) -> dict[str, Any] | None:
        """The ``observations`` row of an exposure."""
        rows = self.query("SELECT * FROM observations WHERE night=? AND obs_id=?", [night, obs_id])
        return rows[0] if rows else None

    def extraction(self, extraction_id: int) -> dict[str, Any] | None:
        """One ``extractions`` row."""
        rows = self.query("SELECT * FROM extractions WHERE id=?", [extraction_id])
        return rows[0] if rows else None

    def extractions(self, night: str, obs_id: str) -> list[dict[str, Any]]:
        """Every extraction attempt of an exposure, oldest first."""
        return self.query(
            "SELECT * FROM extractions WHERE night=? AND obs_id=? ORDER BY id", [night, obs_id]
        )

    def classification(self, extraction_id: int) -> dict[str, Any] | None:
        """The newest built-in classification of an extraction."""
        rows = self.query(
            "SELECT * FROM classifications WHERE extraction_id=? ORDER BY (classifier='builtin') DESC, id DESC LIMIT 1",
            [extraction_id],
        )
        return rows[0] if rows else None

    def calibration(self, night: str) -> dict[str, Any] | None:
        """The newest calibration row of a night."""
        rows = self.query("SELECT * FROM calibrations WHERE night=? ORDER BY id DESC LIMIT 1", [night])
        return rows[0] if rows else None

    def frames(self, night: str) -> list[dict[str, Any]]:
        """Frames of a night directory."""
        return self.query("SELECT * FROM frames WHERE night=? ORDER BY file", [night])

    def requests(self, *, status: str | None = None, night: str | None = None) -> list[dict[str, Any]]:
        """Requests, newest first."""
        sql, params = "SELECT * FROM requests WHERE 1=1", []
        if status:
            sql += " AND status=?"
            params.append(status)
        if night:
            sql += " AND night=?"
            params.append(night)
        return self.query(sql + " ORDER BY id DESC", params)

    def request(self, request_id: int) -> dict[str, Any] | None:
        """One request row."""
        rows = self.query("SELECT * FROM requests WHERE id=?", [request_id])
        return rows[0] if rows else None

    def engine_status(self, stale_s: float = 30.0) -> dict[str, Any]:
        """The lease row plus ``alive`` (heartbeat younger than ``stale_s``) and ``age_s``."""
        rows = self.query("SELECT * FROM engine WHERE name='engine'")
        if not rows:
            return {"alive": False, "activity": "no engine has run", "queue_len": 0, "age_s": None}
        row = rows[0]
        age = None if row["heartbeat"] is None else now_s() - row["heartbeat"]
        row["age_s"] = age
        row["alive"] = row["status"] == "running" and age is not None and age < stale_s
        return row
