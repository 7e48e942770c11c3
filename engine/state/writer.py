"""The engine's side of the state database: the writer lease, state rows and events.

Every state change is written together with an ``events`` row in one transaction, so a
console that tails ``events`` sees a change exactly when the state rows that describe it are
committed.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlite_utils import Database

from engine import __version__
from engine.errors import LeaseError
from engine.io.inputs import clean_text
from engine.state.db import immediate
from engine.timeutil import now_s, utc_now_iso

LEASE_NAME = "engine"
MAX_EVENT_MESSAGE = 2000
"""Longest event message kept [characters]; outside text in it is neutralised (clean_text)."""


def holder_is_dead(owner: str | None) -> bool:
    """True if a lease holder ``host:pid`` ran on this host and that process no longer exists.

    Only a provable absence counts: another host, a malformed owner, or a process this user
    may not signal (``EPERM``: it exists) all answer False.
    """
    host, _, pid_text = str(owner or "").rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed process not yet reaped by its parent (state ``Z`` in /proc) is gone too."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


class StateWriter:
    """Writes state rows and events; holds the single-writer lease.

    Parameters
    ----------
    db : sqlite_utils.Database
        Connection from :func:`engine.state.db.open_writer`.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.token: str | None = None

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """One atomic write that takes the write lock first (nested calls become savepoints)."""
        with immediate(self.db):
            yield self.db

    def data_version(self) -> int:
        """``PRAGMA data_version``: changes when another connection commits (a request)."""
        return int(self.db.execute("PRAGMA data_version").fetchone()[0])

    # ------------------------------------------------------------------ lease
    def acquire_lease(self, timeout_s: float) -> None:
        """Take the writer lease, or raise if another live engine holds it.

        A lease whose heartbeat is younger than ``timeout_s`` is respected, unless its holder
        ran on this host and its process is provably gone (``kill -9``): then it is taken
        over at once, with an event saying so.

        Raises
        ------
        LeaseError
            Another engine's heartbeat is younger than ``timeout_s`` and it may be alive.
        """
        token = secrets.token_hex(8)
        now = now_s()
        with immediate(self.db):
            row = self.db.execute(
                "SELECT owner, heartbeat, status, heartbeat_iso FROM engine WHERE name = ?", [LEASE_NAME]
            ).fetchone()
            takeover = None
            if row is not None and row[2] == "running" and row[1] is not None and now - row[1] < timeout_s:
                if holder_is_dead(row[0]):
                    takeover = f"the previous engine ({row[0]}) is gone (no such process on this host)"
                else:
                    age = now - row[1]
                    msg = (
                        f"another engine ({row[0]}) holds the state database: its last heartbeat was "
                        f"{age:.1f} s ago ({row[3]}). Stop it first, or wait {timeout_s - age:.0f} s "
                        "if it has died."
                    )
                    raise LeaseError(msg)
            self.db.execute(
                """INSERT INTO engine (name, owner, token, version, started, heartbeat, heartbeat_iso,
                                       activity, queue_len, status)
                   VALUES (?, ?, ?, ?, ?, ?, ?, 'starting', 0, 'running')
                   ON CONFLICT(name) DO UPDATE SET owner=excluded.owner, token=excluded.token,
                     version=excluded.version, started=excluded.started, heartbeat=excluded.heartbeat,
                     heartbeat_iso=excluded.heartbeat_iso, activity='starting', queue_len=0,
                     status='running'""",
                [LEASE_NAME, self.owner, token, __version__, utc_now_iso(), now, utc_now_iso()],
            )
            if takeover:
                self._event_sql("engine", f"lease taken over: {takeover}", level="warning")
            self._event_sql("engine", f"engine started ({self.owner}, version {__version__})")
        self.token = token

    def heartbeat(self, activity: str | None = None, queue_len: int | None = None) -> None:
        """Refresh the lease; optionally record the current activity and queue length.

        An activity or queue change also writes an ``engine`` event so consoles update.

        Raises
        ------
        LeaseError
            The lease was taken over by another engine.
        """
        with self.transaction():
            row = self.db.execute(
                "SELECT token, activity, queue_len FROM engine WHERE name = ?", [LEASE_NAME]
            ).fetchone()
            if row is None or row[0] != self.token:
                raise LeaseError("this engine lost its lease on the state database; stopping")
            new_activity = row[1] if activity is None else activity
            new_queue = row[2] if queue_len is None else queue_len
            self.db.execute(
                "UPDATE engine SET heartbeat=?, heartbeat_iso=?, activity=?, queue_len=? WHERE name=?",
                [now_s(), utc_now_iso(), new_activity, new_queue, LEASE_NAME],
            )
            if (new_activity, new_queue) != (row[1], row[2]):
                self._event_sql(
                    "engine", new_activity, payload={"activity": new_activity, "queue_len": new_queue}
                )

    def release_lease(self) -> None:
        """Mark the engine stopped (clean shutdown)."""
        if self.token is None:
            return
        with self.transaction():
            self.db.execute(
                "UPDATE engine SET status='stopped', activity='stopped', queue_len=0 WHERE name=? AND token=?",
                [LEASE_NAME, self.token],
            )
            self._event_sql("engine", "engine stopped", payload={"activity": "stopped", "queue_len": 0})
        self.token = None

    # ------------------------------------------------------------------ events
    def _event_sql(
        self,
        kind: str,
        message: str | None,
        *,
        night: str | None = None,
        obs_id: str | None = None,
        frame: str | None = None,
        level: str = "info",
        payload: Mapping[str, Any] | None = None,
    ) -> int:
        if message is not None:
            message = clean_text(message, max_len=MAX_EVENT_MESSAGE)
        cur = self.db.execute(
            """INSERT INTO events (ts, night, kind, obs_id, frame, level, message, payload_json)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            [utc_now_iso(), night, kind, None if obs_id is None else clean_text(obs_id, max_len=40),
             None if frame is None else clean_text(frame, max_len=200), level, message, _json(payload)],
        )
        return int(cur.lastrowid)

    def event(
        self,
        kind: str,
        message: str | None,
        *,
        night: str | None = None,
        obs_id: str | None = None,
        frame: str | None = None,
        level: str = "info",
        payload: Mapping[str, Any] | None = None,
    ) -> int:
        """Append an event (in the current transaction if one is open)."""
        with self.transaction():
            return self._event_sql(
                kind, message, night=night, obs_id=obs_id, frame=frame, level=level, payload=payload
            )

    # ------------------------------------------------------------------ generic rows
    def insert(self, table: str, row: Mapping[str, Any]) -> int:
        """Insert a row and return its id."""
        cols = list(row)
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        with self.transaction():
            cur = self.db.execute(sql, [self._value(row[c]) for c in cols])
            return int(cur.lastrowid)

    def update(self, table: str, row_id: int, fields: Mapping[str, Any]) -> None:
        """Update columns of row ``row_id``."""
        if not fields:
            return
        cols = list(fields)
        sql = f"UPDATE {table} SET {', '.join(f'{c}=?' for c in cols)} WHERE id=?"
        with self.transaction():
            self.db.execute(sql, [self._value(fields[c]) for c in cols] + [row_id])

    @staticmethod
    def _value(v: Any) -> Any:
        if isinstance(v, (dict, list, tuple)):
            return _json(v)
        if hasattr(v, "item") and callable(v.item):  # numpy scalar
            return v.item()
        return v

    def one(self, sql: str, params: list | tuple = ()) -> dict | None:
        """First row of a query as a dict (or ``None``)."""
        cur = self.db.execute(sql, list(params))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row))

    def all(self, sql: str, params: list | tuple = ()) -> list[dict]:
        """All rows of a query as dicts."""
        cur = self.db.execute(sql, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    # ------------------------------------------------------------------ nights
    def ensure_night(self, night: str, raw_dir: str, redux_dir: str) -> None:
        """Create the ``nights`` row on first sight (with an event)."""
        with self.transaction():
            if self.one("SELECT night FROM nights WHERE night=?", [night]) is None:
                self.db.execute(
                    "INSERT INTO nights (night, raw_dir, redux_dir, created) VALUES (?, ?, ?, ?)",
                    [night, raw_dir, redux_dir, utc_now_iso()],
                )
                self._event_sql("night", f"night {night} opened", night=night)

    def update_night(self, night: str, **fields: Any) -> None:
        """Update columns of a ``nights`` row."""
        cols = list(fields)
        with self.transaction():
            self.db.execute(
                f"UPDATE nights SET {', '.join(f'{c}=?' for c in cols)} WHERE night=?",
                [self._value(fields[c]) for c in cols] + [night],
            )

    # ------------------------------------------------------------------ maintenance
    def checkpoint(self) -> None:
        """Truncate the WAL (called between frames)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
