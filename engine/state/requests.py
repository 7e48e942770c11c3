"""The request API: consoles and the CLI submit, the engine claims, completes or fails.

Requests are durable: a request survives an engine restart (``pending`` -> ``running`` ->
``done``/``failed``); a ``running`` request found at engine start-up (the engine died while
serving it) is put back to ``pending``. The engine applies each request's state changes in a
single transaction at its end, so a crash never leaves one half-applied.

Kinds and parameters
--------------------
``reextract``     ``{"centroid": [x, y] | null, "region": {...} | null, "lstep": 1}``;
                  region is ``{"radius": r}``, ``{"include": [spaxel ids]}`` or
                  ``{"exclude": [spaxel ids]}`` (a circle of the default radius minus those)
``recover``       ``{}`` -- quality 5 -> 1 without re-extracting
``accept``        ``{"extraction_id": n}`` -- the redo becomes the current extraction
``reject``        ``{"extraction_id": n}`` -- the redo products are removed
``report``        ``{"comment": str | null}`` -- rewrite ``report.txt``
``final_report``  ``{"comment": str | null}`` -- ``report.txt`` plus the final report text
"""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
from typing import Any

from engine.errors import RequestError
from engine.timeutil import utc_now_iso

REQUEST_KINDS: tuple[str, ...] = ("reextract", "recover", "accept", "reject", "report", "final_report")
TARGETED_KINDS: frozenset[str] = frozenset({"reextract", "recover", "accept", "reject"})


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

    Raises
    ------
    RequestError
        Unknown kind, missing target, malformed centroid, region or lstep.
    """
    if kind not in REQUEST_KINDS:
        raise RequestError(f"unknown request kind {kind!r}; known: {', '.join(REQUEST_KINDS)}")
    if kind in TARGETED_KINDS and not (night and target):
        raise RequestError(f"a {kind} request needs a night and a target (HH_MM_SS)")
    if kind == "reextract":
        centroid = params.get("centroid")
        if centroid is not None:
            if len(centroid) != 2 or not all(isinstance(v, (int, float)) for v in centroid):
                raise RequestError(f"centroid must be two numbers [x, y], not {centroid!r}")
        region = params.get("region")
        if region is not None:
            if not isinstance(region, dict) or not set(region) <= {"radius", "include", "exclude"}:
                raise RequestError(f"region must be {{radius|include|exclude}}, not {region!r}")
            if "include" in region and len(region["include"]) == 0:
                raise RequestError("the region includes no spaxel")
        lstep = params.get("lstep", 1)
        if not isinstance(lstep, int) or not 1 <= lstep <= 5:
            raise RequestError(f"lstep must be an integer 1-5, not {lstep!r}")
    if kind in {"accept", "reject"} and not isinstance(params.get("extraction_id"), int):
        raise RequestError(f"a {kind} request needs the extraction_id of the re-extraction")


def submit_request(
    conn: sqlite3.Connection,
    kind: str,
    *,
    night: str | None = None,
    target: str | None = None,
    params: dict[str, Any] | None = None,
    user: str | None = None,
) -> int:
    """Insert a ``pending`` request (the only write a console makes) and return its id."""
    params = dict(params or {})
    validate_shape(kind, night, target, params)
    with conn:
        cur = conn.execute(
            """INSERT INTO requests (created, user, kind, night, target, params_json, status)
               VALUES (?, ?, ?, ?, ?, ?, 'pending')""",
            [utc_now_iso(), user or default_user(), kind, night, target, json.dumps(params)],
        )
    return int(cur.lastrowid)


def claim_next(db) -> dict[str, Any] | None:
    """Engine: take the oldest pending request (status -> ``running``)."""
    with db.atomic():
        row = db.execute(
            "SELECT * FROM requests WHERE status='pending' ORDER BY id LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        cols = [d[0] for d in db.execute("SELECT * FROM requests LIMIT 0").description]
        req = dict(zip(cols, row))
        db.execute(
            "UPDATE requests SET status='running', claimed_at=? WHERE id=?", [utc_now_iso(), req["id"]]
        )
    req["status"] = "running"
    req["params"] = json.loads(req["params_json"] or "{}")
    return req


def requeue_stale(db) -> int:
    """Engine start-up: requests left ``running`` by a dead engine become ``pending``."""
    with db.atomic():
        cur = db.execute("UPDATE requests SET status='pending', claimed_at=NULL WHERE status='running'")
    return cur.rowcount
