"""Deliveries in the console: the ``dlv`` column from the engine's ledger (live), the failure on the
reason line and the target's facts, ``D`` retrying the night's failed rows (one request naming
them), the report screen's deliveries panel, and nothing of it in a read-only console."""

from __future__ import annotations

import sqlite3

from sedmtui.data import facts as data_facts
from sedmtui.screens.confirm import ConfirmScreen
from sedmtui.screens.night import NightScreen
from sedmtui.widgets.targets import TargetTable
from tests.sedmtui.conftest import wait_for
from tests.sedmtui.fakeengine import request_rows

ERROR = "HTTP 400: followup_request_id 77 not found\x1b[2J"
URL = "https://fritz.example/source/ZTF26ccccccc"


def _ledger(db, night: str) -> dict[str, int]:
    """A sent spectrum and a failed status for 03:06:30, a pending spectrum for 04:21:30, a dry run."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    ext = {r["obs_id"]: r["extraction_id"] for r in conn.execute("SELECT obs_id, extraction_id FROM targets")}
    ids = {}
    with conn:
        for key, obs, dest, state, extra in (
                ("s1", "03_06_30", "fritz_spectrum", "sent", {"remote_id": "123", "remote_url": URL, "attempts": 1}),
                ("s2", "03_06_30", "fritz_status", "failed", {"last_error": ERROR, "attempts": 3}),
                ("s3", "04_21_30", "fritz_spectrum", "pending", {}),
                ("s4", "03_19_00", "fritz_spectrum", "sent", {"dry_run": 1})):
            cols = {"key": key, "night": night, "obs_id": obs, "extraction_id": ext.get(obs), "destination": dest,
                    "state": state, "created": "2026-11-24T09:00:00", **extra}
            cur = conn.execute(f"INSERT INTO deliveries ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                               list(cols.values()))
            ids[key] = cur.lastrowid
    conn.close()
    return ids


def _screen(app) -> NightScreen:
    return next(s for s in app.screen_stack if isinstance(s, NightScreen))


async def test_the_dlv_column_follows_the_ledger_live(make_app, night):
    ids = _ledger(night.db, night.night)
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        t = _screen(app).query_one(TargetTable)
        assert t.cells["03_06_30"]["dlv"] == ("✗", "bad")
        assert t.cells["04_21_30"]["dlv"] == ("…", "busy")
        assert t.cells["03_19_00"]["dlv"] == ("·", "dim")  # a dry run delivers nothing
        t.select("03_06_30")
        await pilot.pause()
        reason = str(_screen(app).query_one("#reason").render())
        assert "delivery fritz status: HTTP 400: followup_request_id 77 not found" in reason and "D retries" in reason
        assert "\x1b" not in reason
        conn = sqlite3.connect(night.db)
        with conn:  # the engine's retry succeeded; its event names no exposure
            conn.execute("UPDATE deliveries SET state='sent', last_error=NULL WHERE id=?", [ids["s2"]])
            conn.execute("INSERT INTO events (ts, night, kind, message, payload_json) VALUES "
                         "('2026-11-24T09:41:05.000Z', ?, 'delivery', '1 failed delivery queued again', '{}')",
                         [night.night])
        conn.close()
        await wait_for(pilot, lambda: t.cells["03_06_30"]["dlv"] == ("✓", "ok"))


async def test_d_retries_the_nights_failed_deliveries_after_naming_them(make_app, night):
    ids = _ledger(night.db, night.night)
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await pilot.press("D")
        assert isinstance(app.screen, ConfirmScreen)
        assert "Retry 1 failed delivery?" in app.screen.title_text
        body = str(app.screen.body)
        assert f"#{ids['s2']} 03:06:30 fritz status: HTTP 400" in body and "\x1b" not in body
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(request_rows(night.db)))
        rows = request_rows(night.db)
        assert [(r["kind"], r["params"]) for r in rows] == [("deliver_retry", {"ids": [ids["s2"]]})]


async def test_d_with_nothing_failed_files_nothing(make_app, night):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await pilot.press("D")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert request_rows(night.db) == []


async def test_target_facts_and_report_screen_show_where_each_delivery_went(make_app, night):
    _ledger(night.db, night.night)
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        app.open_target("03_06_30")
        await wait_for(pilot, lambda: getattr(app.screen, "data", None) is not None)
        facts = " | ".join(f"{label}: {value}" for label, value, _ in data_facts(app.screen.data))
        assert "fritz spectrum" in facts and URL in facts
        assert "failed after 3 tries" in facts and "followup_request_id 77" in facts
        await pilot.press("escape")
        await pilot.press("v")
        await wait_for(pilot, lambda: app.screen.query("#report-deliveries"))
        panel = str(app.screen.query_one("#report-deliveries").render())
        assert "deliveries: 1 sent · 1 pending · 1 failed · 1 dry-run" in panel
        assert "D on the night screen retries" in panel and "\x1b" not in panel


async def test_readonly_console_has_no_retry_key(make_app, night):
    _ledger(night.db, night.night)
    app = make_app(readonly=True)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        keys = {b.binding.action for b in app.screen.active_bindings.values()}
        assert "retry_delivery" not in keys
        await pilot.press("D")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert request_rows(night.db) == []


def test_tns_names_are_read_as_observers_type_them():
    from sedmtui.screens.tns import tns_name

    assert tns_name("SN 2026abc") == tns_name("AT2026ABC") == tns_name(" 2026abc ") == "2026abc"
    assert tns_name("ZTF26abc") is None and tns_name("26abc") is None and tns_name("") is None


async def test_t_on_a_target_files_a_tns_report_with_the_snid_type(make_app, night):
    from sedmtui.screens.tns import TnsScreen, suggested_type

    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        app.open_target("03_06_30")
        await wait_for(pilot, lambda: getattr(app.screen, "data", None) is not None)
        expected_type = suggested_type(app.targets["03_06_30"]) or None
        await pilot.press("T")
        assert isinstance(app.screen, TnsScreen)
        await pilot.press(*"ZTF26abc", "enter")  # not a TNS name: said, and nothing filed
        assert "not a TNS name" in str(app.screen.query_one("#tns-error").render())
        app.screen.query_one("#tns-name").value = "SN 2026ABC"
        app.screen.query_one("#tns-name").focus()
        await pilot.press("enter", "enter")
        await wait_for(pilot, lambda: bool(request_rows(night.db)))
        rows = request_rows(night.db)
        assert [(r["kind"], r["target"], r["params"]) for r in rows] == [
            ("tns_report", "03_06_30", {"tns_name": "2026abc", "type": expected_type})]
        assert "TNS report of 03_06_30" in app.screen.request["text"]
        app.open_target("03_19_00")  # quality 3: refused here, no dialog
        await wait_for(pilot, lambda: getattr(app.screen, "obs_id", None) == "03_19_00")
        await pilot.press("T")
        await pilot.pause()
        assert not isinstance(app.screen, TnsScreen) and len(request_rows(night.db)) == 1
