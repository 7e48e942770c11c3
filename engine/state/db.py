"""Opening the state database: the writer's connection and the readers' connections."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from engine.errors import SchemaError
from engine.state.schema import MIGRATION_SET, SCHEMA_MIGRATIONS, migrations

BUSY_TIMEOUT_S = 10.0
"""Busy timeout of every connection [s]."""


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A plain sqlite3 connection with the busy timeout set.

    Parameters
    ----------
    path : path-like
        Database file.
    readonly : bool
        Open with ``mode=ro``: the connection can never write.
    """
    path = Path(path)
    if readonly:
        if not path.exists():
            raise SchemaError(f"state database {path} does not exist (is the engine running?)")
        uri = f"file:{path.resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def open_writer(path: str | Path) -> Database:
    """Open (create, migrate) the database for the engine, the only writer of state rows.

    WAL mode, ``synchronous=NORMAL``, a 64 MB journal size limit; pending migrations are
    applied, each in its own transaction.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    db = Database(conn, execute_plugins=False)
    db.enable_wal()
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA journal_size_limit=67108864")
    db.execute("PRAGMA foreign_keys=ON")
    check_schema(conn)
    migrations.apply(db)
    return db


def applied_migrations(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations applied to a database (empty for a new file)."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='_sqlite_migrations'"
    ).fetchone()
    if row is None:
        return []
    rows = conn.execute(
        "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY rowid", [MIGRATION_SET]
    ).fetchall()
    return [r[0] for r in rows]


def check_schema(conn: sqlite3.Connection, *, require_current: bool = False) -> list[str]:
    """Refuse a database written by a newer program.

    Raises
    ------
    SchemaError
        The database holds migrations this program does not know (it is newer), or
        ``require_current`` is set and migrations are missing (it is older or empty).
    """
    applied = applied_migrations(conn)
    unknown = [m for m in applied if m not in SCHEMA_MIGRATIONS]
    if unknown:
        msg = (
            f"the state database has a newer schema ({len(applied)} migrations, this program knows "
            f"{len(SCHEMA_MIGRATIONS)}; unknown: {', '.join(unknown)}). Upgrade sedmtui and restart."
        )
        raise SchemaError(msg)
    if require_current and len(applied) < len(SCHEMA_MIGRATIONS):
        msg = (
            "the state database is not initialised or has an older schema; start the engine "
            "(sedmtui --batch) once to upgrade it."
        )
        raise SchemaError(msg)
    return applied


def open_reader(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the database for a console or tool: schema checked, never migrated."""
    conn = connect(path, readonly=readonly)
    check_schema(conn, require_current=True)
    return conn
