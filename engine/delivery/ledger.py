"""The delivery ledger: the ``deliveries`` table of the state database.

One row per thing to send to another system, keyed by what it is (``fritz_spectrum:<extraction
id>:<file>``, ``email_report:<night>``...): a key is planned once, so a rerun plans nothing new
and nothing is sent twice. States::

    pending --(claimed)--> sending --(reply)--> sent | pending (retry, with backoff) | failed
    pending --(dry run or superseded)--> skipped

A row is ``sending`` only while its call is in flight. An engine killed then leaves it
``sending``; at the next start :func:`reconcile_interrupted` puts a row whose destination can
be checked (Fritz: the spectrum list is read before any POST) back to ``pending``, and marks any
other (e-mail, Slack, TNS: no way to know) ``failed`` with the reason, never resending it.

Only the engine writes these rows (through its :class:`~engine.state.writer.StateWriter`);
consoles and the command line read them, and ask for a retry with a request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.io.inputs import clean_text
from engine.timeutil import now_s, utc_now_iso

if TYPE_CHECKING:  # pragma: no cover - the read side (status) must not need the writer's imports
    from engine.state.writer import StateWriter

STATES = ("pending", "sending", "sent", "failed", "skipped")
CHECKED_DESTINATIONS = frozenset({"fritz_spectrum", "fritz_annotation", "fritz_status", "tns_upload", "tns_reply"})
"""Destinations whose send is preceded by a check of what the remote already holds (or is
idempotent, or harmless to repeat: a second TNS upload is an unreferenced file), so an
interrupted send may be attempted again."""
MAX_ERROR = 500
"""Longest ``last_error`` kept [characters]."""


@dataclass(frozen=True)
class Planned:
    """A row to add to the ledger.

    Attributes
    ----------
    key : str
        What is sent, uniquely (the idempotency key).
    night, destination : str
        UT night and destination (``fritz_spectrum``, ``fritz_annotation``, ``fritz_status``,
        ``slack``, ``email``, ``tns``).
    payload : dict
        What the sender needs (file names, object, status text...); never a secret.
    obs_id, extraction_id, target :
        The exposure, extraction and remote object concerned, when there is one.
    depends_on_key : str, optional
        A row that must be ``sent`` before this one runs (its remote id is handed over).
    """

    key: str
    night: str
    destination: str
    payload: dict = field(default_factory=dict)
    obs_id: str | None = None
    extraction_id: int | None = None
    target: str | None = None
    depends_on_key: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What one attempt achieved.

    Attributes
    ----------
    state : str
        ``sent``; ``retry`` (provably not committed, or to be checked before another attempt);
        ``failed`` (refused: resending would not help); ``unknown`` (may have been delivered
        and cannot be checked: never resent automatically).
    message : str
        What happened, for the operator (no secret in it).
    remote_id, remote_url : str, optional
        The id and address of what was stored.
    retry_after_s : float, optional
        The remote asked to wait this long (``Retry-After``).
    """

    state: str
    message: str = ""
    remote_id: str | None = None
    remote_url: str | None = None
    retry_after_s: float | None = None


def add(writer: StateWriter, planned: Planned, *, dry_run: bool = False) -> int | None:
    """Add a planned row unless its key exists; its id, or ``None`` when it was there already.

    A dry-run row is recorded ``skipped`` under ``<key>#dry``, so that turning the dry run off
    later still sends the real one.
    """
    key = f"{planned.key}#dry" if dry_run else planned.key
    with writer.transaction():
        if writer.one("SELECT id FROM deliveries WHERE key=?", [key]) is not None:
            return None
        dep = None
        if planned.depends_on_key:
            dep_key = f"{planned.depends_on_key}#dry" if dry_run else planned.depends_on_key
            row = writer.one("SELECT id FROM deliveries WHERE key=?", [dep_key])
            dep = row["id"] if row else None
        now = utc_now_iso()
        rid = writer.insert("deliveries", {
            "key": key, "night": planned.night, "obs_id": planned.obs_id, "extraction_id": planned.extraction_id,
            "destination": planned.destination, "target": planned.target,
            "state": "skipped" if dry_run else "pending", "payload_json": planned.payload, "depends_on": dep,
            "last_error": "dry run: nothing sent" if dry_run else None, "dry_run": int(dry_run),
            "created": now, "updated": now})
        if dry_run:  # a queued row says nothing yet; what it becomes (sent, failed) is an event
            writer.event("delivery", f"dry run: would send {describe(planned.destination, planned.payload)}",
                         night=planned.night, obs_id=planned.obs_id, payload={"delivery_id": rid, "state": "skipped"})
    return rid


def describe(destination: str, payload: dict) -> str:
    """One line naming a delivery (for events and the status table)."""
    what = {
        "fritz_spectrum": lambda p: f"spectrum {p.get('filename', '')} of {p.get('obj_id', '')} to Fritz",
        "fritz_annotation": lambda p: f"annotation {p.get('origin', '')} of {p.get('obj_id', '')} to Fritz",
        "fritz_status": lambda p: f"follow-up request {p.get('followup_request_id', '')} status "
                                  f"'{p.get('new_status', '')}' to Fritz",
        "slack": lambda p: f"figure {p.get('filename', '')} to Slack",
        "email": lambda p: f"e-mail '{p.get('subject', '')}' to {', '.join(p.get('recipients', []))}",
        "tns": lambda p: f"classification of {p.get('tns_name', '')} ({p.get('type', '')}) to TNS",
        "tns_reply": lambda p: f"TNS's reply to the classification of {p.get('tns_name', '')}",
    }.get(destination, lambda p: destination)
    return what(payload)


def due(writer: StateWriter, *, limit: int, now: float | None = None) -> list[dict]:
    """Pending rows whose time has come and whose dependency (if any) was sent, oldest first."""
    now = now_s() if now is None else now
    rows = writer.all(
        """SELECT d.*, dep.remote_id AS dep_remote_id FROM deliveries d
           LEFT JOIN deliveries dep ON dep.id = d.depends_on
           WHERE d.state='pending' AND d.next_attempt <= ? AND (d.depends_on IS NULL OR dep.state='sent')
           ORDER BY d.id LIMIT ?""", [now, limit])
    for r in rows:
        r["payload"] = json.loads(r["payload_json"] or "{}")
    return rows


def mark_sending(writer: StateWriter, row_id: int) -> None:
    """The row's call is about to go out (committed before it does)."""
    with writer.transaction():
        writer.update("deliveries", row_id, {"state": "sending", "updated": utc_now_iso()})


def record(writer: StateWriter, row: dict, outcome: Outcome, *, backoff_s: tuple[float, ...],
           max_attempts: int) -> str:
    """Record an attempt's outcome (row, event) in one transaction; returns the new state."""
    attempts = int(row["attempts"] or 0) + 1
    message = clean_text(outcome.message, max_len=MAX_ERROR)
    fields: dict[str, Any] = {"attempts": attempts, "updated": utc_now_iso()}
    if outcome.state == "sent":
        fields.update(state="sent", remote_id=outcome.remote_id, remote_url=outcome.remote_url,
                      sent_at=utc_now_iso(), last_error=None)
    elif outcome.state == "retry" and attempts < max_attempts:
        wait = backoff_s[min(attempts, len(backoff_s)) - 1]
        wait = max(wait, outcome.retry_after_s or 0.0)
        fields.update(state="pending", next_attempt=now_s() + wait,
                      last_error=f"{message} (attempt {attempts}; next in {wait:.0f} s)")
    elif outcome.state == "retry":
        fields.update(state="failed", last_error=f"gave up after {attempts} attempts: {message}")
    elif outcome.state == "unknown":
        fields.update(state="failed", last_error=f"{message}; it may have been delivered, so it is not sent "
                                                 "again automatically (`sedmtui deliver retry` after checking)")
    else:
        fields.update(state="failed", last_error=message)
    what = describe(row["destination"], row.get("payload") or json.loads(row["payload_json"] or "{}"))
    with writer.transaction():
        writer.update("deliveries", row["id"], fields)
        text = {"sent": f"sent {what}" + (f" ({message})" if message else ""),
                "pending": f"will retry {what}: {fields.get('last_error')}",
                "failed": f"FAILED {what}: {fields.get('last_error')}"}[fields["state"]]
        writer.event("delivery", text, night=row["night"], obs_id=row["obs_id"],
                     level={"sent": "info", "pending": "warning"}.get(fields["state"], "error"),
                     payload={"delivery_id": row["id"], "state": fields["state"], "remote_id": outcome.remote_id})
    return fields["state"]


def reconcile_interrupted(writer: StateWriter) -> int:
    """Rows left ``sending`` by a killed process: checked destinations back to ``pending``, the
    others ``failed`` (they may have been delivered). Returns how many rows were changed."""
    rows = writer.all("SELECT * FROM deliveries WHERE state='sending'")
    with writer.transaction():
        for r in rows:
            if r["destination"] in CHECKED_DESTINATIONS:
                fields = {"state": "pending", "next_attempt": 0,
                          "last_error": "interrupted while sending; the remote is checked before any resend"}
            else:
                fields = {"state": "failed",
                          "last_error": "interrupted while sending; it may have been delivered, so it is not sent "
                                        "again automatically (`sedmtui deliver retry` after checking)"}
            writer.update("deliveries", r["id"], dict(fields, updated=utc_now_iso()))
            writer.event("delivery", f"delivery #{r['id']} ({r['destination']}): {fields['last_error']}",
                         night=r["night"], obs_id=r["obs_id"], level="warning",
                         payload={"delivery_id": r["id"], "state": fields["state"]})
    return len(rows)


def retry(writer: StateWriter, *, ids: list[int] | None = None, night: str | None = None) -> int:
    """Failed rows (these ids, or all of a night) back to ``pending`` now; returns how many."""
    where, params = ["state='failed'", "dry_run=0"], []
    if ids:
        where.append(f"id IN ({', '.join('?' * len(ids))})")
        params += list(ids)
    if night:
        where.append("night=?")
        params.append(night)
    with writer.transaction():
        cur = writer.db.execute(f"UPDATE deliveries SET state='pending', attempts=0, next_attempt=0, updated=? "
                                f"WHERE {' AND '.join(where)}", [utc_now_iso()] + params)
        n = cur.rowcount
        if n:
            writer.event("delivery", f"{n} failed deliver{'y' if n == 1 else 'ies'} queued again", night=night,
                         payload={"retried": n})
    return n


def skip_superseded(writer: StateWriter, planned: Planned) -> int:
    """A new spectrum of an exposure (a re-extraction, or the same one re-calibrated) makes the
    exposure's older Fritz spectrum and annotation rows that never went out ``skipped``, and with
    them every pending row that waited for one of those. Returns how many rows were skipped."""
    mark = planned.key.split(":", 1)[1]  # "<extraction id>:<file>"
    now = utc_now_iso()
    with writer.transaction():
        cur = writer.db.execute(
            """UPDATE deliveries SET state='skipped', last_error='superseded by a newer spectrum', updated=?
               WHERE night=? AND obs_id=? AND destination IN ('fritz_spectrum', 'fritz_annotation')
                 AND state='pending' AND attempts=0 AND dry_run=0 AND key NOT LIKE ?""",
            [now, planned.night, planned.obs_id, f"%:{mark}%"])
        n = cur.rowcount
        cur = writer.db.execute(
            """UPDATE deliveries SET state='skipped', last_error='what it waited for was superseded', updated=?
               WHERE state='pending' AND depends_on IN (SELECT id FROM deliveries WHERE state='skipped'
                                                          AND night=? AND obs_id=?)""",
            [now, planned.night, planned.obs_id])
    return n + cur.rowcount


Query = Callable[[str, list], list[dict]]


def rows_of(query: Query, night: str | None = None) -> list[dict]:
    """Ledger rows (of a night), oldest first, through any ``query(sql, params)``."""
    sql = "SELECT * FROM deliveries" + (" WHERE night=?" if night else "") + " ORDER BY id"
    return query(sql, [night] if night else [])


def counts(rows: list[dict]) -> dict[str, int]:
    """``{state: n}`` of real (not dry-run) rows."""
    out: dict[str, int] = {}
    for r in rows:
        if not r.get("dry_run"):
            out[r["state"]] = out.get(r["state"], 0) + 1
    return out
