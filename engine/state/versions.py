"""The schema's migration names, without sqlite-utils: what a reader checks a database against.

The console opens the database read-only and only needs to know which migrations exist;
importing :mod:`engine.state.schema` (and sqlite-utils with it) cost it 110 ms of its start.
:mod:`engine.state.schema` defines the migrations themselves; a test checks both agree.
"""

from __future__ import annotations

MIGRATION_SET = "sedmtui_state"
"""The ``migration_set`` of this program's rows in ``_sqlite_migrations``."""

SCHEMA_MIGRATIONS: tuple[str, ...] = ("m001_initial", "m002_deliveries", "m003_reprocess")
"""Names of the migrations this program knows, oldest first."""

SCHEMA_VERSION: int = len(SCHEMA_MIGRATIONS)
"""Schema version understood by this program (the number of migrations)."""

__all__ = ["MIGRATION_SET", "SCHEMA_MIGRATIONS", "SCHEMA_VERSION"]
