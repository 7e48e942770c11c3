"""Display cells, deltas and the tail of the state database."""

from __future__ import annotations

import re
import sqlite3

import pytest

from engine.state.reader import StateReader
from sedmtui.state import (
    COLUMNS,
    Tail,
    compile_filter,
    diff_cells,
    format_target,
    load_snapshot,
    quality_severity,
)


def test_quality_severity():
    assert [quality_severity(q) for q in (0, 1, 2, 3, 4, 5, None)] == ["ok", "ok", "ok", "bad", "bad", "warn", None]


def test_format_target_cells():
    row = {"obs_id": "04_21_30", "object": "ZTF26x [A]", "kind": "science", "exptime": 900.0, "airmass": 1.064,
           "state": "reducing", "stage": "debias and cosmic rays", "progress": 0.05, "quality": None,
           "snid_type": "Ia", "snid_subtype": "norm", "redshift": 0.0461, "rlap": 27.66, "s2n": 37.3,
           "extraction": "robot", "delivered": 0}
    c = format_target(row, candidates=1)
    assert set(c) == {col.key for col in COLUMNS}
    assert c["object"] == ("ZTF26x", None) and c["state"] == ("debias 5%", "busy")
    assert c["type"] == ("Ia-norm", None) and c["z"] == ("0.046", None) and c["ext"] == ("robot+1", "warn")
    assert c["q"] == ("·", None) and c["dlv"] == ("·", "dim")
    std = format_target({**row, "kind": "standard", "state": "done", "quality": 0, "delivered": 1})
    assert std["type"][0] == "STD" and std["q"] == ("0", "ok") and std["dlv"] == ("✓", "ok")


def test_diff_cells_only_changes():
    a = {"q": ("5", "warn"), "state": ("done", None)}
    b = {"q": ("1", "ok"), "state": ("done", None)}
    assert diff_cells(a, b) == [("q", ("1", "ok"))]
    assert diff_cells(None, b) == list(b.items())


def test_filter_regex_and_inversion():
    m = compile_filter("Q5|ia-")
    assert m("04_21_30 ZTF Q5") and m("x Ia-norm") and not m("Q0 II")
    inv = compile_filter("!ZTF")
    assert inv("STD-BD+25") and not inv("ZTF26")
    assert compile_filter("")("anything") and compile_filter("!")("anything")
    with pytest.raises(re.error):
        compile_filter("(")


def test_snapshot_and_tail_see_commits_of_another_connection(night):
    reader = StateReader(night.db)
    snap = load_snapshot(reader, night.night)
    assert len(snap.targets) == 6 and snap.calibration["wave_rms"] == pytest.approx(0.31)
    assert snap.engine["status"] == "stopped" and not snap.engine["alive"]
    tail = Tail(reader, night.night, snap.last_event_id, snap.engine)
    assert tail.poll() is None
    conn = sqlite3.connect(night.db)
    with conn:
        conn.execute("UPDATE observations SET state='done', stage='done' WHERE obs_id='04_51_30'")
        conn.execute("INSERT INTO events (ts, night, kind, obs_id, message) VALUES ('t', '20261124', 'observation', "
                     "'04_51_30', 'done')")
        conn.execute("INSERT INTO events (ts, night, kind, obs_id, message) VALUES ('t', '20261123', 'observation', "
                     "'01_00_00', 'other night')")
        rid = conn.execute("INSERT INTO requests (created, kind, night, target, status) VALUES "
                           "('t', 'recover', '20261124', '04_21_30', 'pending')").lastrowid
    tail.watch_request(rid)
    d = tail.poll()
    assert [e.obs_id for e in d.events] == ["04_51_30"]
    assert d.targets["04_51_30"]["state"] == "done"
    assert d.requests[rid]["status"] == "pending"
    with conn:
        conn.execute("UPDATE requests SET status='done' WHERE id=?", [rid])
    d = tail.poll()
    assert d.requests[rid]["status"] == "done" and rid not in tail.watched
    assert tail.poll() is None
    conn.close()
    reader.close()


def test_tail_started_after_a_commit_still_sees_it(night):
    """The snapshot and the tail use different connections: a commit between the two must not
    be lost (the tail's first poll reads unconditionally)."""
    snap_reader = StateReader(night.db)
    snap = load_snapshot(snap_reader, night.night)
    conn = sqlite3.connect(night.db)
    with conn:
        conn.execute("INSERT INTO events (ts, night, kind, obs_id, message) VALUES ('t', '20261124', 'observation', "
                     "'04_51_30', 'done')")
    conn.close()
    reader = StateReader(night.db)
    tail = Tail(reader, night.night, snap.last_event_id, snap.engine)
    d = tail.poll()
    assert d is not None and [e.obs_id for e in d.events] == ["04_51_30"]
    assert tail.poll() is None
    reader.close()
    snap_reader.close()


def test_tail_notices_a_dead_engine_without_commits(night):
    reader = StateReader(night.db)
    conn = sqlite3.connect(night.db)
    with conn:
        conn.execute("UPDATE engine SET status='running', heartbeat=1.0")
    tail = Tail(reader, night.night, reader.max_event_id(), {"alive": True, "status": "running", "activity": "",
                                                             "queue": 0}, engine_check_s=0.0)
    d = tail.poll()
    assert d is not None and d.engine["alive"] is False
    conn.close()
    reader.close()


def test_many_consoles_tail_while_requests_are_filed_as_fast_as_possible(tmp_path):
    """Issue 15: N consoles tailing while requests are filed as fast as possible. Six tails poll
    (each on its own read-only connection, as six consoles do), two filers submit requests with
    no pause, and an engine-like writer claims and answers them, writing an event for each, in
    read-then-write transactions. Nothing may fail ("database is locked" included), every request
    is answered, and every tail sees every event of the night, in order, exactly once."""
    import threading
    import time

    from engine.state.db import open_writer
    from engine.state.requests import claim_next, submit_request
    from engine.state.writer import StateWriter

    night = "20261124"
    db_path = tmp_path / "sedm.db"
    w = StateWriter(open_writer(db_path))
    w.ensure_night(night, "raw", "redux")
    errors: list[BaseException] = []
    stop_filing, stop_tails = threading.Event(), threading.Event()
    filed: list[int] = []
    seen: list[list[int]] = [[] for _ in range(6)]

    def filer() -> None:
        conn = sqlite3.connect(db_path, timeout=10)
        try:
            while not stop_filing.is_set():
                filed.append(submit_request(conn, "report", night=night, user="flood"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            conn.close()

    def console(k: int) -> None:
        reader = StateReader(db_path, readonly=True)
        try:
            tail = Tail(reader, night, 0)
            while not stop_tails.is_set():
                delta = tail.poll()
                if delta is not None:
                    seen[k].extend(e.id for e in delta.events)
                time.sleep(0.005)
            delta = tail.poll()
            if delta is not None:
                seen[k].extend(e.id for e in delta.events)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            reader.close()

    filers = [threading.Thread(target=filer) for _ in range(2)]
    consoles = [threading.Thread(target=console, args=(k,)) for k in range(6)]
    for t in filers + consoles:
        t.start()
    answered = 0

    def answer_one() -> bool:
        req = claim_next(w.db)
        if req is None:
            return False
        with w.transaction():  # read, then write: a filer commits in between
            n = w.one("SELECT count(*) AS n FROM requests WHERE status='pending'")["n"]
            w.db.execute("UPDATE requests SET status='done', result_json='{}' WHERE id=?", [req["id"]])
            w.event("request", f"request {req['id']} answered ({n} pending)", night=night)
        return True

    try:
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:
            if answer_one():
                answered += 1
            else:
                time.sleep(0.001)
        stop_filing.set()
        for t in filers:
            t.join()
        while answer_one():  # what was filed before the filers stopped
            answered += 1
    finally:
        stop_filing.set()
        time.sleep(0.1)
        stop_tails.set()
        for t in filers + consoles:
            t.join()
    assert not errors, errors[:3]
    statuses = dict(w.db.execute("SELECT status, count(*) FROM requests GROUP BY status").fetchall())
    assert statuses == {"done": len(filed)} and answered == len(filed) > 100, (statuses, answered)
    print(f"filed {len(filed)} requests in 3 s; {len(events_of(w, night))} events seen by each of 6 tails")
    events = events_of(w, night)
    for k, ids in enumerate(seen):
        assert ids == events, (k, len(ids), len(events))


def events_of(w, night: str) -> list[int]:
    """Event ids of a night, in order."""
    return [r[0] for r in w.db.execute("SELECT id FROM events WHERE night=? ORDER BY id", [night]).fetchall()]
