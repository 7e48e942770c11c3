"""The ledger as text and per exposure, for ``sedmtui deliver status``, ``sedmtui status`` and the console.

Pure functions over ledger rows (``SELECT * FROM deliveries``) plus one read helper that treats
a database without the table (an older schema) as an empty ledger.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from engine.delivery.ledger import counts, describe, rows_of
from engine.io.inputs import clean_text

Query = Callable[[str, list], list[dict]]
SHORT = {"fritz_spectrum": "fritz spectrum", "fritz_annotation": "fritz annot.", "fritz_status": "fritz status",
         "slack": "slack", "email": "e-mail", "tns_upload": "tns upload", "tns": "tns", "tns_reply": "tns reply"}


def ledger_rows(query: Query, night: str | None = None) -> list[dict]:
    """The ledger rows of a night (``[]`` when the database predates the ledger)."""
    try:
        return rows_of(query, night)
    except sqlite3.OperationalError:
        return []


def summary_line(rows: list[dict]) -> str:
    """``deliveries: 10 sent · 1 failed · 2 pending`` (dry-run rows counted apart)."""
    c = counts(rows)
    dry = sum(1 for r in rows if r.get("dry_run"))
    parts = [f"{c[s]} {s}" for s in ("sent", "pending", "sending", "failed", "skipped") if c.get(s)]
    if dry:
        parts.append(f"{dry} dry-run")
    return "deliveries: " + (" · ".join(parts) if parts else "none")


def _note(r: dict, now: float) -> str:
    if r["state"] == "sent":
        return r.get("remote_url") or ""
    note = r.get("last_error") or ""
    if r["state"] == "pending" and r.get("depends_on") and not note:
        note = f"after #{r['depends_on']}"
    if r["state"] == "pending" and r.get("next_attempt") and r["next_attempt"] > now:
        note = f"next try in {r['next_attempt'] - now:.0f} s · {note}"
    return note


def status_table(rows: list[dict], *, now: float | None = None, width: int = 260) -> str:
    """The ledger as a fixed-width table (one row per delivery)."""
    import json

    now = time.time() if now is None else now
    head = ["#", "UT", "destination", "what", "state", "tries", "remote", "note"]
    body = []
    for r in rows:
        payload = json.loads(r.get("payload_json") or "{}")
        what = clean_text(describe(r["destination"], payload), max_len=60)
        body.append([str(r["id"]), (r.get("obs_id") or "-").replace("_", ":"), SHORT.get(r["destination"], r["destination"]),
                     what, r["state"] + (" (dry)" if r.get("dry_run") else ""), str(r.get("attempts") or 0),
                     str(r.get("remote_id") or "-"), clean_text(_note(r, now), max_len=200)])
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(head[:-1])]
    fmt = lambda cells: ("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1]).rstrip()[:width]
    return "\n".join([fmt(head)] + [fmt(b) for b in body])


def exposure_states(rows: list[dict]) -> dict[str, dict]:
    """Per exposure ``{obs_id: {"state", "detail"}}`` for a console column: ``failed`` if any row
    failed (with its reason), else ``pending`` while any is pending or sending, else ``sent``."""
    out: dict[str, dict] = {}
    for r in rows:
        if not r.get("obs_id") or r.get("dry_run") or r["state"] == "skipped":
            continue
        cur = out.setdefault(r["obs_id"], {"state": "sent", "detail": ""})
        state = "pending" if r["state"] == "sending" else r["state"]
        rank = {"sent": 0, "pending": 1, "failed": 2}
        if rank[state] > rank[cur["state"]]:
            cur.update(state=state, detail=f"{SHORT.get(r['destination'], r['destination'])}: {r.get('last_error') or ''}")
    return out


def report_lines(rows: list[dict]) -> list[str]:
    """The night report's delivery section: what went where, what failed and why (``[]`` when
    nothing was to be delivered)."""
    import json

    real = [r for r in rows if not r.get("dry_run") and r["state"] != "skipped"]
    if not real:
        return []
    out = [summary_line(rows).replace("deliveries:", "Deliveries:")]
    for r in real:
        if r["destination"] in ("fritz_spectrum", "email", "tns") or r["state"] == "failed":
            what = describe(r["destination"], json.loads(r.get("payload_json") or "{}"))
            where = r.get("remote_url") or r.get("remote_id") or ""
            note = {"sent": where, "failed": f"FAILED: {r.get('last_error') or ''}",
                    "pending": f"pending: {r.get('last_error') or 'not sent yet'}"}.get(r["state"], r["state"])
            out.append(clean_text(f"  {(r.get('obs_id') or '').replace('_', ':'):<8}  {what} · {note}", max_len=300))
    return out
