"""The ledger's rules: a key is planned once; backoff; interrupted sends settled by what can be checked."""

from __future__ import annotations

from engine.delivery import ledger
from engine.delivery.ledger import Outcome, Planned
from engine.state.db import open_writer
from engine.state.writer import StateWriter


def writer(tmp_path) -> StateWriter:
    return StateWriter(open_writer(tmp_path / "sedm.db"))


def test_a_key_is_planned_once_and_dry_runs_do_not_block_real_sends(tmp_path):
    w = writer(tmp_path)
    p = Planned(key="email_report:20261124", night="20261124", destination="email", payload={"subject": "s"})
    assert ledger.add(w, p) is not None and ledger.add(w, p) is None
    assert ledger.add(w, p, dry_run=True) is not None  # recorded apart, as skipped
    assert [r["state"] for r in w.all("SELECT state FROM deliveries ORDER BY id")] == ["pending", "skipped"]


def test_backoff_then_give_up_and_refusals_fail_at_once(tmp_path):
    w = writer(tmp_path)
    rid = ledger.add(w, Planned(key="k", night="20261124", destination="fritz_spectrum"))
    row = lambda: dict(w.one("SELECT * FROM deliveries WHERE id=?", [rid]), payload={})
    policy = {"backoff_s": (5.0, 60.0), "max_attempts": 3}
    assert ledger.record(w, row(), Outcome("retry", "HTTP 503", retry_after_s=1.0), **policy) == "pending"
    assert "next in 5 s" in row()["last_error"] and ledger.due(w, limit=5) == []
    assert ledger.record(w, row(), Outcome("retry", "HTTP 503", retry_after_s=120.0), **policy) == "pending"
    assert "next in 120 s" in row()["last_error"]  # Retry-After longer than the backoff wins
    assert ledger.record(w, row(), Outcome("retry", "HTTP 503"), **policy) == "failed"
    assert row()["last_error"].startswith("gave up after 3 attempts")
    assert ledger.retry(w, ids=[rid]) == 1 and row()["state"] == "pending" and row()["attempts"] == 0


def test_interrupted_sends_are_settled_by_what_can_be_checked(tmp_path):
    w = writer(tmp_path)
    ids = {d: ledger.add(w, Planned(key=d, night="20261124", destination=d))
           for d in ("fritz_spectrum", "fritz_status", "email", "slack", "tns")}
    for rid in ids.values():
        ledger.mark_sending(w, rid)
    assert ledger.reconcile_interrupted(w) == 5
    state = {r["destination"]: r for r in w.all("SELECT * FROM deliveries")}
    assert state["fritz_spectrum"]["state"] == "pending" and state["fritz_status"]["state"] == "pending"
    for d in ("email", "slack", "tns"):
        assert state[d]["state"] == "failed" and "may have been delivered" in state[d]["last_error"]


def test_a_dependent_row_waits_for_its_dependency(tmp_path):
    w = writer(tmp_path)
    spec = ledger.add(w, Planned(key="s", night="20261124", destination="fritz_spectrum"))
    ledger.add(w, Planned(key="a", night="20261124", destination="fritz_annotation", depends_on_key="s"))
    assert [r["key"] for r in ledger.due(w, limit=5)] == ["s"]
    row = dict(w.one("SELECT * FROM deliveries WHERE id=?", [spec]), payload={})
    ledger.record(w, row, Outcome("sent", "stored", remote_id="101"), backoff_s=(1.0,), max_attempts=3)
    (ann,) = ledger.due(w, limit=5)
    assert ann["key"] == "a" and ann["dep_remote_id"] == "101"
