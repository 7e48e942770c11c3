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
