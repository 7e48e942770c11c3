"""``sedmtui doctor``: check a reduction root and say what to do about each problem.

Checks, all read-only (the database is opened without creating any file):

* the database files: readable, writable by this user, one owner for the database, its
  ``-wal``/``-shm`` and its directory (a side file left by another user stops the engine);
* the schema (known migrations, ``PRAGMA quick_check``);
* the writer lease (alive, stale, or held by a process that is gone);
* stuck rows: exposures ``reducing``, requests ``running`` or long ``pending``, calibrations
  ``running``, with no live engine to finish them;
* orphaned temporary files (``.*.part``) in the night directories;
* products recorded in the database that are missing, unreadable or truncated;
* the delivery ledger: failed rows (with the newest reasons), rows left ``sending`` by a stopped
  engine, and pending rows that nothing is sending.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.io.inputs import clean_text, is_night

PART_AGE_S = 120.0
"""A temporary file older than this while an engine is alive is orphaned [s]."""
PENDING_AGE_S = 600.0
"""A request pending this long under a live engine is stuck [s]."""


@dataclass(frozen=True)
class Finding:
    """One result of a check.

    Attributes
    ----------
    level : str
        ``ok``, ``warn`` or ``fail``.
    what : str
        What was found.
    fix : str
        What to do about it (empty for ``ok``).
    """

    level: str
    what: str
    fix: str = ""


def _owner(path: Path) -> str:
    try:
        import pwd

        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (ImportError, KeyError, OSError):
        return "?"


def check_files(db: Path) -> list[Finding]:
    """Existence, readability, writability and owners of the database files."""
    if not db.exists():
        return [Finding("fail", f"no state database at {db}", "start the engine (sedmtui --batch) or pass --db")]
    out = []
    files = [db] + [p for p in (Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
    owners = {p.name: _owner(p) for p in files + [db.parent]}
    for p in files:
        if not os.access(p, os.R_OK):
            out.append(Finding("fail", f"{p.name} is not readable by this user (owner {owners[p.name]})",
                               f"chmod a+r {p} or run as {owners[p.name]}"))
        elif not os.access(p, os.W_OK):
            out.append(Finding("warn", f"{p.name} is not writable by this user (owner {owners[p.name]})",
                               f"fine for consoles; the engine must run as {owners[p.name]}"))
    if not os.access(db.parent, os.W_OK):
        out.append(Finding("warn", f"directory {db.parent} is not writable by this user",
                           "the engine needs it writable (it creates the -wal/-shm files)"))
    if len(set(owners.values())) > 1:
        listing = ", ".join(f"{k}: {v}" for k, v in owners.items())
        out.append(Finding("fail", f"the database files have different owners ({listing})",
                           "an engine running as the database's owner fails with 'attempt to write a readonly "
                           "database'; when no process has the database open, remove the stray -wal/-shm "
                           "(or chown them to the engine's user)"))
    if not out:
        out.append(Finding("ok", f"database files readable and writable, owner {owners[db.name]}"))
    return out


def check_schema(reader) -> list[Finding]:
    """Known migrations and a quick integrity check."""
    from engine.state.db import applied_migrations
    from engine.state.schema import SCHEMA_MIGRATIONS

    applied = applied_migrations(reader.conn)
    out = [Finding("ok", f"schema version {len(applied)} (this program: {len(SCHEMA_MIGRATIONS)})")]
    result = [r[0] for r in reader.conn.execute("PRAGMA quick_check").fetchall()]
    if result != ["ok"]:
        out.append(Finding("fail", f"integrity check: {clean_text('; '.join(result[:5]), max_len=300)}",
                           "stop the engine, back up the database, and rebuild it with `sqlite3 sedm.db .recover`"))
    return out


def check_lease(reader) -> tuple[list[Finding], bool]:
    """The writer lease; returns the findings and whether an engine is alive."""
    from engine.state.writer import holder_is_dead

    status = reader.engine_status()
    owner = clean_text(status.get("owner") or "?")
    if status.get("owner") is None:
        return [Finding("ok", "no engine has run on this database")], False
    if status["alive"]:
        if holder_is_dead(status.get("owner")):
            return [Finding("warn", f"the lease holder {owner} is gone but its heartbeat is recent",
                            "a new engine takes over at once: start it (sedmtui --batch)")], False
        return [Finding("ok", f"engine {owner} alive ({clean_text(status.get('activity'))})")], True
    if status.get("status") == "running":
        age = status.get("age_s")
        return [Finding("warn", f"engine {owner} stopped without releasing its lease (heartbeat {age:.0f} s ago)",
                        "start the engine again; it takes the stale lease over")], False
    return [Finding("ok", f"engine {owner} stopped cleanly")], False


def check_stuck(reader, alive: bool, night: str | None) -> list[Finding]:
    """Rows that wait for an engine that is not there (or that waits too long)."""
    out = []
    where, params = ("AND night=?", [night]) if night else ("", [])
    reducing = reader.query(f"SELECT night, obs_id FROM observations WHERE state='reducing' {where}", params)
    running = reader.query("SELECT id, kind, claimed_at FROM requests WHERE status='running'")
    calib = reader.query(f"SELECT night FROM nights WHERE calib_status='running' {where}", params)
    if not alive:
        if reducing:
            out.append(Finding("warn", f"{len(reducing)} exposure(s) left 'reducing' by a stopped engine "
                               f"({', '.join(r['obs_id'] for r in reducing[:5])})",
                               "start the engine: it puts them back in the queue"))
        if running:
            out.append(Finding("warn", f"{len(running)} request(s) left 'running' "
                               f"(#{', #'.join(str(r['id']) for r in running[:5])})",
                               "start the engine: it serves them again"))
        if calib:
            out.append(Finding("warn", f"calibration left 'running' for {', '.join(r['night'] for r in calib)}",
                               "start the engine: it calibrates again"))
    pending = reader.query("SELECT id, created FROM requests WHERE status='pending' ORDER BY id")
    old = [r for r in pending if _age_s(r["created"]) > PENDING_AGE_S]
    if old:
        out.append(Finding("warn" if alive else "fail",
                           f"{len(old)} request(s) pending for more than {PENDING_AGE_S / 60:.0f} min "
                           f"(oldest #{old[0]['id']})",
                           "the engine is busy or wedged: see `sedmtui status`" if alive else
                           "no live engine serves requests: start it (sedmtui --batch)"))
    failed = reader.query(f"SELECT count(*) AS n FROM frames WHERE state='failed' {where}", params)[0]["n"]
    if failed:
        out.append(Finding("warn", f"{failed} raw file(s) refused at ingest",
                           "their reasons: sqlite3 <db> \"SELECT file, error FROM frames WHERE state='failed'\""))
    if not out:
        out.append(Finding("ok", "no stuck exposure, request or calibration"))
    return out


def _age_s(iso: str | None) -> float:
    import datetime as dt

    if not iso:
        return 0.0
    try:
        t = dt.datetime.strptime(iso.rstrip("Z")[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return 0.0
    return time.time() - t.timestamp()


def night_dirs(redux_root: Path, night: str | None) -> list[Path]:
    """The night directories to check."""
    if night:
        return [redux_root / night] if (redux_root / night).is_dir() else []
    try:
        return sorted(d for d in redux_root.iterdir() if d.is_dir() and is_night(d.name))
    except OSError:
        return []


def check_temporaries(dirs: list[Path], alive: bool) -> list[Finding]:
    """``.*.part`` files left by an interrupted write."""
    now = time.time()
    orphans = []
    for d in dirs:
        for p in d.glob(".*.part"):
            try:
                if not alive or now - p.stat().st_mtime > PART_AGE_S:
                    orphans.append(p)
            except OSError:
                continue
    if not orphans:
        return [Finding("ok", f"no orphaned temporary file in {len(dirs)} night directorie(s)")]
    shown = ", ".join(str(p.relative_to(p.parent.parent)) for p in orphans[:5])
    return [Finding("warn", f"{len(orphans)} orphaned temporary file(s): {shown}",
                    "harmless; remove them (rm <night>/.*.part) when no engine is running")]


def check_products(reader, redux_root: Path, night: str | None) -> list[Finding]:
    """Products recorded in the database that are missing, unreadable or truncated."""
    from engine.errors import FrameError
    from engine.io.fitsio import check_complete

    sql = """SELECT e.night, e.spec_fits, e.spec_txt, e.verify_png, o.cube_file
             FROM extractions e JOIN observations o ON o.id = e.observation_id
             WHERE e.status IN ('current', 'candidate')"""
    rows = reader.query(sql + " AND e.night=?", [night]) if night else reader.query(sql)
    bad, checked = [], 0
    for r in rows:
        for key in ("spec_fits", "spec_txt", "verify_png", "cube_file"):
            name = r[key]
            if not name:
                continue
            path = redux_root / r["night"] / name
            checked += 1
            if not path.exists():
                bad.append(f"{r['night']}/{name} missing")
            elif not os.access(path, os.R_OK):
                bad.append(f"{r['night']}/{name} unreadable (owner {_owner(path)})")
            elif name.endswith(".fits"):
                try:
                    check_complete(path)
                except (FrameError, OSError) as exc:
                    bad.append(f"{r['night']}/{name}: {exc}")
    if not bad:
        return [Finding("ok", f"{checked} recorded product(s) present and readable")]
    return [Finding("fail", f"{len(bad)} of {checked} product(s) missing or unreadable: "
                    + clean_text("; ".join(bad[:5]), max_len=600),
                    "ask for a re-extraction (sedmtui redex HH_MM_SS) or reprocess the night "
                    "(sedmtui --batch --night D --once)")]


def check_deliveries(reader, alive: bool, night: str | None, now: float | None = None) -> list[Finding]:
    """The delivery ledger: what failed and why, what a stopped engine left half-sent, what waits.

    Parameters
    ----------
    reader : StateReader
        A read-only reader.
    alive : bool
        An engine holds the lease (it sends pending rows and settles ``sending`` ones).
    night : str or None
        Only this night's rows.
    now : float, optional
        Current time [s since the epoch] (tests).
    """
    from engine.delivery.status import SHORT, ledger_rows

    rows = [r for r in ledger_rows(reader.query, night) if not r.get("dry_run")]
    if not rows:
        return [Finding("ok", "no delivery in the ledger" + (f" for {night}" if night else ""))]
    now = time.time() if now is None else now
    out = []
    failed = [r for r in rows if r["state"] == "failed"]
    if failed:
        shown = "; ".join(f"#{r['id']} {SHORT.get(r['destination'], r['destination'])}"
                          f"{' ' + r['obs_id'] if r.get('obs_id') else ''}: {r.get('last_error') or '?'}"
                          for r in failed[-3:])
        out.append(Finding("warn", f"{len(failed)} deliver{'y' if len(failed) == 1 else 'ies'} failed (newest: "
                           f"{clean_text(shown, max_len=400)})",
                           "fix the cause (token, address, the destination's reply), then `sedmtui deliver retry` "
                           "(or D in the console): each row is checked against its destination before any resend"))
    sending = [r for r in rows if r["state"] == "sending"]
    if sending and not alive:
        out.append(Finding("warn", f"{len(sending)} deliver{'y' if len(sending) == 1 else 'ies'} left 'sending' by a "
                           "stopped engine",
                           "start the engine: a destination it can check is checked before any resend; any "
                           "other is failed for review, never sent twice"))
    waiting = [r for r in rows if r["state"] == "pending"]
    overdue = [r for r in waiting if (r.get("next_attempt") or 0) < now - PENDING_AGE_S]
    if waiting and not alive:
        out.append(Finding("warn", f"{len(waiting)} deliver{'y' if len(waiting) == 1 else 'ies'} pending with no "
                           "engine to send them", "start the engine, or `sedmtui deliver run` to drain them"))
    elif overdue:
        out.append(Finding("warn", f"{len(overdue)} deliver{'y' if len(overdue) == 1 else 'ies'} due for more than "
                           f"{PENDING_AGE_S / 60:.0f} min (oldest #{overdue[0]['id']})",
                           "is [delivery] enabled in the running engine's configuration? `sedmtui deliver status` "
                           "shows each row"))
    if not out:
        sent = sum(1 for r in rows if r["state"] == "sent")
        out.append(Finding("ok", f"{sent} deliver{'y' if sent == 1 else 'ies'} sent, nothing failed or stuck"))
    return out


def diagnose(db: Path, redux_root: Path, night: str | None = None) -> list[tuple[str, list[Finding]]]:
    """Every check, grouped by section: ``[(section, findings), ...]``."""
    from engine.state.reader import StateReader

    sections: list[tuple[str, list[Finding]]] = [("database files", check_files(db))]
    if not db.exists():
        return sections
    try:
        reader = StateReader(db, readonly=True)
    except (EngineError, sqlite3.Error, OSError) as exc:
        sections.append(("schema", [Finding("fail", clean_text(exc), "see the database files above")]))
        return sections
    try:
        sections.append(("schema", check_schema(reader)))
        lease, alive = check_lease(reader)
        sections.append(("lease", lease))
        sections.append(("stuck rows", check_stuck(reader, alive, night)))
        dirs = night_dirs(redux_root, night)
        sections.append(("temporary files", check_temporaries(dirs, alive)))
        sections.append(("products", check_products(reader, redux_root, night)))
        sections.append(("deliveries", check_deliveries(reader, alive, night)))
    except sqlite3.Error as exc:
        sections.append(("database", [Finding("fail", f"reading the database failed: {clean_text(exc)}",
                                              "check the database files and the disk")]))
    finally:
        reader.close()
    return sections


def format_report(sections: list[tuple[str, list[Finding]]]) -> str:
    """The findings as text, one line each, with what to do."""
    mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for section, findings in sections:
        for f in findings:
            lines.append(f"{mark[f.level]} {section}: {clean_text(f.what)}")
            if f.fix:
                lines.append(f"     -> {clean_text(f.fix)}")
    return "\n".join(lines)


__all__ = ["Finding", "check_deliveries", "diagnose", "format_report"]
