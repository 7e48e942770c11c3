"""The request API: consoles and the CLI submit, the engine claims, completes or fails.

Requests are durable: a request survives an engine restart (``pending`` -> ``running`` ->
``done``/``failed``); a ``running`` request found at engine start-up (the engine died while
serving it) is put back to ``pending``. The engine applies each request's state changes in a
single transaction at its end, so a crash never leaves one half-applied.

Kinds and parameters
--------------------
``reextract``     ``{"centroid": [x, y] | null, "region": {...} | null, "lstep": 1}``;
                  region is ``{"radius": r}``, ``{"include": [spaxel ids]}`` or
                  ``{"exclude": [spaxel ids]}`` (a circle of the default radius minus those);
                  optional ``"centroid_radius": r`` with a centroid: the PSF fit may move at
                  most ``r`` spaxels from it (default ``GUESS_ERR["manual"]``), a fit that
                  moves farther is quality 4 with the distance in the reason
``recover``       ``{}`` -- quality 5 -> 1 without re-extracting
``accept``        ``{"extraction_id": n}`` -- the redo becomes the current extraction
``reject``        ``{"extraction_id": n}`` -- the redo products are removed
``report``        ``{"comment": str | null}`` -- rewrite ``report.txt``
``final_report``  ``{"comment": str | null}`` -- ``report.txt`` plus the final report text
"""

from __future__ import annotations

import getpass
import os
import sqlite3
from typing import Any

from engine.io.inputs import (
    MAX_USER,
    REQUEST_KINDS,
    TARGETED_KINDS,
    Refusal,
    check_request_row,
    clean_text,
    encode_params,
    validate_request,
)
from engine.state.db import immediate
from engine.timeutil import utc_now_iso

__all__ = ["REQUEST_KINDS", "TARGETED_KINDS", "claim_next", "default_user", "requeue_stale", "submit_request",
           "validate_shape"]

def default_user() -> str:
    """The requesting user: ``$SEDM_USER``, else the login name."""
    user = os.environ.get("SEDM_USER")
    if user:
        return user.replace(" ", "_")
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "manual"


def validate_shape(kind: str, night: str | None, target: str | None, params: dict[str, Any]) -> None:
    """Check a request's kind and parameter shapes (the engine checks meaning).

    Delegates to :func:`engine.io.inputs.validate_request`, the input boundary.

    Raises
    ------
    RequestError
        Unknown kind, bad night or target, malformed centroid (NaN included), region, lstep.
    """
    validate_request(kind, night, target, params)


def submit_request(
    conn: sqlite3.Connection,
    kind: str,
    *,
    night: str | None = None,
    target: str | None = None,
    params: dict[str, Any] | None = None,
    user: str | None = None,
) -> int:
    """Insert a ``pending`` request (the only write a console makes) and return its id.

    Raises
    ------
    RequestError
        Invalid request (see :func:`validate_shape`), or parameters larger than
        :data:`engine.io.inputs.MAX_PARAMS_BYTES`.
    """
    params = dict(params or {})
    validate_shape(kind, night, target, params)
    params_json = encode_params(params)
    user = clean_text(user or default_user(), max_len=MAX_USER)
    with conn:
        cur = conn.execute(
            """INSERT INTO requests (created, user, kind, night, target, params_json, status)
               VALUES (?, ?, ?, ?, ?, ?, 'pending')""",
            [utc_now_iso(), user, kind, night, target, params_json],
        )
    return int(cur.lastrowid)


def claim_next(db) -> dict[str, Any] | None:
    """Engine: take the oldest pending request (status -> ``running``).

    The row is checked at the boundary (:func:`engine.io.inputs.check_request_row`): a
    request whose stored parameters are malformed (a client wrote the table directly) comes
    back with ``params = None`` and ``refusal`` set to the reason, so the engine fails it
    instead of crashing on it at every restart.
    """
    with immediate(db):
        cur = db.execute("SELECT * FROM requests WHERE status='pending' ORDER BY id LIMIT 1")
        row = cur.fetchone()
        if row is None:
            return None
        req = dict(zip([d[0] for d in cur.description], row))
        db.execute(
            "UPDATE requests SET status='running', claimed_at=? WHERE id=?", [utc_now_iso(), req["id"]]
        )
    req["status"] = "running"
    for key in ("night", "target", "user", "kind"):
        if req.get(key) is not None and not isinstance(req[key], str):
            req[key] = str(req[key])
    checked = check_request_row(req)
    req["params"] = None if isinstance(checked, Refusal) else checked
    req["refusal"] = checked.reason if isinstance(checked, Refusal) else None
    req["target"] = None if req["target"] is None else clean_text(req["target"], max_len=40)
    req["user"] = None if req["user"] is None else clean_text(req["user"], max_len=MAX_USER)
    return req


def requeue_stale(db) -> int:
    """Engine start-up: requests left ``running`` by a dead engine become ``pending``."""
    with immediate(db):
        cur = db.execute("UPDATE requests SET status='pending', claimed_at=NULL WHERE status='running'")
    return cur.rowcount
