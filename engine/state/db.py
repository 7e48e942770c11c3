"""Opening the state database: the writer's connection and the readers' connections."""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from engine.errors import EngineError, SchemaError
from engine.state.versions import MIGRATION_SET, SCHEMA_MIGRATIONS

if TYPE_CHECKING:  # sqlite-utils is the writer's: a read-only console starts without it
    from sqlite_utils import Database

BUSY_TIMEOUT_S = 10.0
"""Busy timeout of every connection [s]."""


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A plain sqlite3 connection with the busy timeout set.

    Parameters
    ----------
    path : path-like
        Database file.
    readonly : bool
        Never write, and never create a file: see :func:`readonly_uri`.

    Raises
    ------
    SchemaError
        ``readonly`` and the file does not exist.
    """
    path = Path(path)
    if readonly:
        if not path.exists():
            raise SchemaError(f"state database {path} does not exist (is the engine running?)")
        uri, _immutable = readonly_uri(path)
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def readonly_uri(path: Path) -> tuple[str, bool]:
    """``(uri, immutable)`` of a connection that reads ``path`` and creates no file.

    A WAL database opened with ``mode=ro`` makes SQLite create the ``-wal`` and ``-shm``
    files when they are missing and the directory is writable -- owned by the reader's user,
    which then stops an engine running as another user ("attempt to write a readonly
    database") -- and fails outright when they are missing on a read-only mount. So:

    * both ``-wal`` and ``-shm`` exist (an engine has the database open): ``mode=ro``;
    * otherwise no process is writing it: ``immutable=1``, which reads the file as a
      snapshot without locks or side files (:class:`~engine.state.reader.StateReader`
      reopens with ``mode=ro`` once an engine starts and the ``-wal`` appears).
    """
    target = quote(str(path.resolve()))
    if Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists():
        return f"file:{target}?mode=ro", False
    return f"file:{target}?mode=ro&immutable=1", True


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One atomic write that takes the write lock first (``BEGIN IMMEDIATE``).

    A deferred ``BEGIN`` that reads and then writes fails at once with "database is locked"
    when another connection (a console filing a request) commits in between: the busy timeout
    cannot help a read snapshot that became stale. ``BEGIN IMMEDIATE`` waits for the lock (up
    to the busy timeout) before reading, so the transaction never has to upgrade. Nested calls
    become savepoints of the outer transaction.
    """
    if conn.in_transaction:
        name = f"sp_{secrets.token_hex(6)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                conn.execute(f"RELEASE SAVEPOINT {name}")
            raise
        conn.execute(f"RELEASE SAVEPOINT {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _raw_conn(db) -> sqlite3.Connection:
    """The sqlite3 connection of a ``sqlite_utils.Database`` (or the connection itself)."""
    return db if isinstance(db, sqlite3.Connection) else db.conn


def immediate(db) -> Iterator[sqlite3.Connection]:
    """:func:`write_transaction` on a ``sqlite_utils.Database`` or a connection."""
    return write_transaction(_raw_conn(db))


def _unwritable_files(path: Path) -> list[str]:
    """The database's files (and directory) this user cannot write, for error messages."""
    bad = []
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if p.exists() and not os.access(p, os.W_OK):
            owner = _owner(p)
            bad.append(f"{p.name} (owner {owner})" if owner else p.name)
    if not os.access(path.parent, os.W_OK):
        bad.append(f"the directory {path.parent}")
    return bad


def _owner(path: Path) -> str:
    try:
        import pwd

        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (ImportError, KeyError, OSError):
        return ""


def open_writer(path: str | Path) -> Database:
    """Open (create, migrate) the database for the engine, the only writer of state rows.

    WAL mode, ``synchronous=NORMAL``, a 64 MB journal size limit; pending migrations are
    applied, each in its own transaction. The connection is in autocommit mode: every write
    transaction is explicit (:func:`write_transaction`), never an implicit deferred ``BEGIN``.

    Raises
    ------
    EngineError
        The database or its ``-wal``/``-shm`` files cannot be written by this user.
    """
    from sqlite_utils import Database

    from engine.state.schema import migrations

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    conn.isolation_level = None
    db = Database(conn, execute_plugins=False)
    try:
        db.enable_wal()
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA journal_size_limit=67108864")
        db.execute("PRAGMA foreign_keys=ON")
        check_schema(conn)
        migrations.apply(db)
    except sqlite3.OperationalError as exc:
        conn.close()
        bad = _unwritable_files(path)
        hint = (f"; not writable by this user: {', '.join(bad)}. Fix the permissions, or remove a stale "
                "-wal/-shm left by another user when no process has the database open") if bad else ""
        msg = f"cannot write the state database {path}: {exc}{hint}"
        raise EngineError(msg) from exc
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
    """Open the database for a console or tool: schema checked, never migrated.

    A read-write open that fails because the files cannot be written (a read-only mount,
    a database owned by another user, a missing ``-shm``) falls back to a read-only one.

    Raises
    ------
    SchemaError
        Missing, unreadable, not a database, or a schema this program does not know, with a
        message saying what to do.
    """
    path = Path(path)
    try:
        conn = connect(path, readonly=readonly)
        try:
            check_schema(conn, require_current=True)
        except sqlite3.OperationalError:
            conn.close()
            if readonly:
                raise
            conn = connect(path, readonly=True)
            check_schema(conn, require_current=True)
    except sqlite3.DatabaseError as exc:
        bad = _unwritable_files(path)
        hint = f" (not writable by this user: {', '.join(bad)})" if bad else ""
        msg = f"cannot read the state database {path}: {exc}{hint}"
        if not os.access(path, os.R_OK):
            msg = f"cannot read the state database {path}: permission denied (owner {_owner(path) or '?'})"
        raise SchemaError(msg) from exc
    return conn
