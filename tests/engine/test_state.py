"""State database: lease, events tail, requests, schema guard."""

import sqlite3

import pytest

from engine.errors import LeaseError, RequestError, SchemaError
from engine.state.db import open_reader, open_writer
from engine.state.reader import StateReader
from engine.state.requests import claim_next, requeue_stale, submit_request
from engine.state.writer import StateWriter


@pytest.fixture
def db_path(tmp_path):
    path = tmp_path / "sedm.db"
    db = open_writer(path)
    db.close()
    return path


def test_single_writer_lease(db_path):
    w1 = StateWriter(open_writer(db_path))
    w1.acquire_lease(timeout_s=30)
    w2 = StateWriter(open_writer(db_path))
    with pytest.raises(LeaseError, match="another engine .* holds the state database"):
        w2.acquire_lease(timeout_s=30)
    w1.release_lease()
    w2.acquire_lease(timeout_s=30)  # released: a new engine may start
    with pytest.raises(LeaseError, match="lost its lease"):
        w1.token = "stale"
        w1.heartbeat("x")


def test_stale_lease_can_be_taken_over(db_path):
    w1 = StateWriter(open_writer(db_path))
    w1.acquire_lease(timeout_s=30)
    w1.db.execute("UPDATE engine SET heartbeat = heartbeat - 100")
    w2 = StateWriter(open_writer(db_path))
    w2.acquire_lease(timeout_s=30)


def test_reader_tails_events_with_data_version(db_path):
    w = StateWriter(open_writer(db_path))
    reader = StateReader(db_path)
    v0, last = reader.data_version(), reader.max_event_id()
    w.event("frame", "one", night="20261124")
    w.event("frame", "two", night="20261124")
    assert reader.data_version() != v0
    events = reader.events_after(last)
    assert [e.message for e in events] == ["one", "two"]
    assert reader.events_after(events[-1].id) == []


def test_request_lifecycle_and_requeue(db_path):
    reader = StateReader(db_path)
    conn = sqlite3.connect(db_path)
    rid = submit_request(conn, "reextract", night="20261124", target="03_06_30",
                         params={"centroid": [1.0, -2.5], "lstep": 1}, user="obs")
    with pytest.raises(RequestError, match="centroid must be two numbers"):
        submit_request(conn, "reextract", night="20261124", target="03_06_30", params={"centroid": [1]})
    with pytest.raises(RequestError, match="unknown request kind"):
        submit_request(conn, "explode", night="20261124", target="x")
    with pytest.raises(RequestError, match="includes no spaxel"):
        submit_request(conn, "reextract", night="20261124", target="x", params={"region": {"include": []}})
    db = open_writer(db_path)
    req = claim_next(db)
    assert req["id"] == rid and req["params"]["centroid"] == [1.0, -2.5]
    assert reader.request(rid)["status"] == "running"
    assert claim_next(db) is None
    assert requeue_stale(db) == 1  # an engine died while serving it
    assert reader.request(rid)["status"] == "pending"


def test_newer_schema_is_refused(db_path):
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('sedmtui_state', 'm999_future', 'x')")
    conn.commit()
    with pytest.raises(SchemaError, match="newer schema"):
        open_reader(db_path)
    with pytest.raises(SchemaError, match="newer schema"):
        open_writer(db_path)


def test_uninitialised_database_is_refused_by_readers(tmp_path):
    sqlite3.connect(tmp_path / "empty.db").close()
    with pytest.raises(SchemaError, match="not initialised"):
        open_reader(tmp_path / "empty.db")


def test_readonly_reader_cannot_write(db_path):
    reader = StateReader(db_path, readonly=True)
    with pytest.raises(sqlite3.OperationalError):
        submit_request(reader.conn, "report", night="20261124")


def test_the_readers_migration_names_are_the_schemas():
    from engine.state import schema, versions

    assert versions.SCHEMA_MIGRATIONS == schema.SCHEMA_MIGRATIONS and versions.MIGRATION_SET == schema.MIGRATION_SET
