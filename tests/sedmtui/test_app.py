"""Pilot tests of the console: state on screen, live deltas, and the request rows written."""

from __future__ import annotations

import os
import sqlite3

import pytest

from sedmtui.screens.confirm import ConfirmScreen
from sedmtui.screens.night import NightScreen
from sedmtui.screens.target import TargetScreen
from sedmtui.widgets.targets import TargetTable
from tests.sedmtui.conftest import wait_for
from tests.sedmtui.fakeengine import FakeEngine, request_rows


def table(app) -> TargetTable:
    return app.screen_stack[1].query_one(TargetTable) if len(app.screen_stack) > 1 else app.screen.query_one(TargetTable)


def night_screen(app) -> NightScreen:
    return next(s for s in app.screen_stack if isinstance(s, NightScreen))


async def open_target(pilot, app, obs_id: str) -> TargetScreen:
    app.open_target(obs_id)
    await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen) and app.screen.data is not None)
    return app.screen


async def test_night_table_lists_every_exposure_with_quality_colours(make_app):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        t = night_screen(app).query_one(TargetTable)
        assert t.row_count == 6
        assert t.cells["04_21_30"]["q"] == ("5", "warn")
        assert t.cells["03_19_00"]["q"] == ("3", "bad")
        assert t.cells["03_06_30"]["q"] == ("0", "ok")
        assert t.cells["04_39_00"]["state"] == ("cube 30%", "busy")
        assert "λ 0.31 Å" in app.header().plain and "UT 09:41" in app.header().plain


async def test_live_event_updates_cells_without_clearing(make_app, night, monkeypatch):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        t = night_screen(app).query_one(TargetTable)
        cleared = []
        monkeypatch.setattr(t, "clear", lambda *a, **k: cleared.append(1))
        conn = sqlite3.connect(night.db)
        with conn:
            conn.execute("UPDATE observations SET stage='PSF fit', progress=0.8 WHERE obs_id='04_39_00'")
            conn.execute("INSERT INTO events (ts, night, kind, obs_id, message, payload_json) VALUES "
                         "('2026-11-24T09:41:00.000Z', '20261124', 'progress', '04_39_00', 'PSF fit', '{}')")
        conn.close()
        await wait_for(pilot, lambda: t.cells["04_39_00"]["state"][0] == "PSF fit 80%")
        assert not cleared


async def test_a_preview_answered_while_the_app_exits_is_dropped(make_app):
    """A thread's product load can finish after quitting removed the widgets: no crash then,
    but the same missing widget while the app runs is still an error."""
    from textual.css.query import NoMatches

    from sedmtui.messages import TargetLoaded
    from sedmtui.widgets.preview import PreviewPane

    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        screen = night_screen(app)
        await screen.query_one(PreviewPane).remove()
        late = TargetLoaded("04_21_30", None, "preview", screen._preview_seq)
        with pytest.raises(NoMatches):
            app.on_target_loaded(late)
        app.exit()
        app.on_target_loaded(late)


async def test_new_exposure_appears_as_a_new_row(make_app, night):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        conn = sqlite3.connect(night.db)
        with conn:
            conn.execute("INSERT INTO observations (night, obs_id, object, kind, state, stage) VALUES "
                         "('20261124', '05_10_00', 'ZTF26fffffff', 'science', 'waiting', 'waiting for calibration')")
            conn.execute("INSERT INTO events (ts, night, kind, obs_id, message) VALUES "
                         "('2026-11-24T09:41:00.000Z', '20261124', 'observation', '05_10_00', 'new')")
        conn.close()
        t = night_screen(app).query_one(TargetTable)
        await wait_for(pilot, lambda: "05_10_00" in t.cells)
        assert t.row_count == 7


async def test_filter_sort_and_first_last(make_app):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        t = night_screen(app).query_one(TargetTable)
        await pilot.press("slash", *"Q5")
        await pilot.press("enter")
        assert list(t.cells) == ["04_21_30"]
        await pilot.press("slash", "ctrl+u", "exclamation_mark", *"ZTF")
        await pilot.press("enter")
        assert list(t.cells) == ["03_02_00"]
        await pilot.press("escape")
        assert t.row_count == 6
        await pilot.press("s")  # quality, worst first
        assert t.selected_key() is not None
        await pilot.press("G")
        assert t.cursor_row == 5
        await pilot.press("g")
        assert t.cursor_row == 0


async def test_pause_buffers_events_and_counts_them(make_app, night):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await pilot.press("p")
        assert app.paused
        conn = sqlite3.connect(night.db)
        with conn:
            conn.execute("UPDATE observations SET stage='PSF fit', progress=0.8 WHERE obs_id='04_39_00'")
            for _ in range(3):
                conn.execute("INSERT INTO events (ts, night, kind, obs_id, message) VALUES "
                             "('2026-11-24T09:41:00.000Z', '20261124', 'progress', '04_39_00', 'x')")
        conn.close()
        await wait_for(pilot, lambda: sum(len(d.events) for d in app.pending) == 3)
        assert "paused · 3 new" in app.header().plain
        t = night_screen(app).query_one(TargetTable)
        assert t.cells["04_39_00"]["state"][0] == "cube 30%"
        await pilot.press("p")
        assert t.cells["04_39_00"]["state"][0] == "PSF fit 80%"


async def test_target_screen_nudge_region_and_reextract_request(make_app, night):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_target(pilot, app, "04_21_30")
        from sedmtui.edits import hex_step

        g = screen.edit.guess
        await pilot.press("right", "l", "shift+up")
        x, y = screen.edit.centroid
        (dx, dy), (fx, fy) = hex_step("right"), hex_step("up", fine=True)
        assert x == pytest.approx(g[0] + 2 * dx + fx, abs=1e-3) and y == pytest.approx(g[1] + 2 * dy + fy, abs=1e-3)
        await pilot.press("m", "space", "right_square_bracket", "t")
        assert screen.region_mode and len(screen.edit.excluded) == 1
        assert screen.edit.radius == pytest.approx(11.0) and screen.edit.lstep == 2
        await pilot.press("enter")
        rows = request_rows(night.db)
        assert [r["kind"] for r in rows] == ["reextract"]
        p = rows[0]["params"]
        assert p["centroid"] == [round(x, 4), round(y, 4)] and p["lstep"] == 2
        assert p["region"] == {"radius": 11.0, "exclude": sorted(screen.edit.excluded)}
        assert rows[0]["target"] == "04_21_30" and rows[0]["status"] == "pending"


async def test_reextract_accept_flow_with_engine(make_app, night):
    app = make_app()
    with FakeEngine(night):
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await open_target(pilot, app, "04_21_30")
            await pilot.press("l", "enter")
            await wait_for(pilot, lambda: screen.data.candidate is not None)
            assert screen.data.candidate.row["status"] == "candidate"
            plot = screen.query_one("#spectrum")
            assert [t.label.split()[0] for t in plot.traces] == ["robot", screen.data.candidate.row["tag"]]
            assert screen.check_action("accept", ()) is True
            await pilot.press("a")
            assert isinstance(app.screen, ConfirmScreen)
            body = str(app.screen.body)
            assert "becomes the current extraction" in body and "superseded" in body
            await pilot.press("y")
            await wait_for(pilot, lambda: screen.data.candidate is None and screen.data.current.row["tag"] != "robot")
            kinds = [(r["kind"], r["status"]) for r in request_rows(night.db)]
            assert kinds == [("reextract", "done"), ("accept", "done")]
            assert night_screen(app).query_one(TargetTable).cells["04_21_30"]["q"] == ("1", "ok")


async def test_reject_and_refused_request(make_app, night):
    app = make_app()
    with FakeEngine(night):
        async with app.run_test(size=(160, 50)) as pilot:
            screen = await open_target(pilot, app, "04_21_30")
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.data.candidate is not None)
            spec = night.night_dir / screen.data.candidate.row["spec_fits"]
            assert spec.exists()
            await pilot.press("x")
            assert "deletes the files" in str(app.screen.body)
            await pilot.press("y")
            await wait_for(pilot, lambda: screen.data.candidate is None)
            assert not spec.exists()
            # a centroid far outside the IFU: the engine refuses; the console shows why
            screen.edit = screen.edit.set_centroid(40.0, 0.0)
            await pilot.press("enter")
            await wait_for(pilot, lambda: screen.request["status"] == "failed")
            assert "outside the IFU" in screen.request["text"]


async def test_recover_from_night_screen(make_app, night):
    app = make_app()
    with FakeEngine(night):
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            t = night_screen(app).query_one(TargetTable)
            t.select("04_21_30")
            await pilot.press("r")
            assert isinstance(app.screen, ConfirmScreen) and "5 → 1" in app.screen.title_text
            await pilot.press("y")
            await wait_for(pilot, lambda: t.cells["04_21_30"]["q"] == ("1", "ok"))
            assert [r["kind"] for r in request_rows(night.db)] == ["recover"]


async def test_readonly_hides_write_keys_and_writes_nothing(make_app, night):
    app = make_app(readonly=True)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        keys = {b.binding.action for b in app.screen.active_bindings.values()}
        assert "recover" not in keys and "request_report" not in keys
        screen = await open_target(pilot, app, "04_21_30")
        keys = {b.binding.action for b in screen.active_bindings.values()}
        assert not {"reextract", "accept", "reject", "recover"} & keys
        await pilot.press("l", "enter", "r")
        assert request_rows(night.db) == []
        assert app.reader.conn.execute("PRAGMA query_only").fetchone() is not None
        with pytest.raises(sqlite3.OperationalError):
            app.reader.conn.execute("INSERT INTO requests (created, kind) VALUES ('x', 'report')")


async def test_report_screen_files_request_and_shows_report(make_app, night):
    app = make_app()
    with FakeEngine(night):
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            await pilot.press("R")
            await wait_for(pilot, lambda: (night.night_dir / "report.txt").exists())
            await wait_for(pilot, lambda: "report written" in str(app.screen.query_one("#report-status").render()))
            assert "ZTF26ccccccc" in str(app.screen.query_one("#report-text").render())
            await pilot.press("c", *"clear night", "enter", "F")
            assert isinstance(app.screen, ConfirmScreen) and "clear night" in str(app.screen.body)
            await pilot.press("y")
            await wait_for(pilot, lambda: (night.night_dir / "report_final.txt").exists())
            rows = request_rows(night.db)
            assert [(r["kind"], r["params"]["comment"]) for r in rows] == [("report", None),
                                                                            ("final_report", "clear night")]


async def test_help_lists_live_keys_with_ids(make_app):
    from sedmtui.screens.help import HelpScreen, live_keys

    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        ids = {k[2] for k in live_keys(app.screen)}
        assert {"night.filter", "night.report", "app.pause"} <= ids
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, NightScreen)


async def test_keymap_override_from_settings(make_app):
    from sedmtui.settings import ConsoleSettings

    app = make_app(settings=ConsoleSettings(poll_s=0.05, keymap={"night.sort": "o"}))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        t = night_screen(app).query_one(TargetTable)
        await pilot.press("o")
        assert t.sort_index == 1


async def test_command_palette_goes_to_target(make_app):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await pilot.press("colon", *"ccccc")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        assert app.screen.obs_id == "04_21_30"


async def test_copy_uses_osc52(make_app, monkeypatch):
    app = make_app()
    copied = []
    async with app.run_test(size=(160, 50)) as pilot:
        monkeypatch.setattr(app, "copy_to_clipboard", copied.append)
        await pilot.pause()
        await pilot.press("y")
        assert copied == ["STD-BD+25d4655"]


async def test_narrow_terminal_drops_preview_and_columns(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        s = night_screen(app)
        assert not s.query_one("#preview").display
        assert [c.key for c in s.query_one(TargetTable).columns_shown] == ["ut", "object", "state", "q", "new", "type",
                                                                           "z", "s2n"]


async def test_narrow_table_marks_a_pending_reextraction(make_app, night):
    app = make_app()
    with FakeEngine(night):
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_target(pilot, app, "04_21_30")
            await pilot.press("l", "enter")
            await wait_for(pilot, lambda: screen.data.candidate is not None)
            cells = night_screen(app).query_one(TargetTable).cells["04_21_30"]
            await wait_for(pilot, lambda: night_screen(app).query_one(TargetTable).cells["04_21_30"]["new"] == ("+1", "warn"))
            await pilot.press("escape", "escape")
            assert isinstance(app.screen, NightScreen)
            line = next(ln for ln in app.export_screenshot().split("\n") if "04:21:30" in ln)
            assert "+1" in line, cells


async def test_small_terminal_shows_one_panel_at_a_time(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_target(pilot, app, "04_21_30")
        await pilot.pause()
        shown = lambda: [k for k in ("map-pane", "psf-pane", "guider", "spectrum", "facts")
                         if screen.query_one(f"#{k}").display and screen.query_one(f"#{k}").parent.display
                         and screen.query_one(f"#{k}").region.area]
        assert screen.solo and shown() == ["map-pane"]
        assert "map 1/5" in str(screen.query_one("#title").render())
        seen = []
        for _ in range(5):
            await pilot.press("v")
            await pilot.pause()
            seen += shown()
        assert seen == ["psf-pane", "guider", "spectrum", "facts", "map-pane"]
        await pilot.press("4")
        await pilot.pause()
        assert shown() == ["spectrum"] and screen.query_one("#spectrum").size.height >= 15
        await pilot.press("l")  # an edit brings the map forward
        await pilot.pause()
        assert shown() == ["map-pane"] and screen.edit.centroid is not None


async def test_f_maximises_one_panel_on_a_large_terminal(make_app):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_target(pilot, app, "04_21_30")
        assert not screen.solo
        await pilot.press("4")
        await pilot.pause()
        assert screen.solo and not screen.query_one("#top").display and screen.query_one("#spectrum").size.height > 40
        await pilot.press("f")
        await pilot.pause()
        assert not screen.solo and screen.query_one("#top").display


async def test_mouse_click_sets_centroid(make_app):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_target(pilot, app, "04_21_30")
        m = screen.query_one("#map")
        await pilot.pause()  # the layout settles once the panels have their data
        await pilot.wait_for_scheduled_animations()
        col, row = m.size.width // 2, m.size.height // 2
        await pilot.click(m, offset=(col, row))
        await wait_for(pilot, lambda: screen.edit.centroid is not None)
        x, y, _ = m.spaxel_at(col, row)
        assert screen.edit.centroid == pytest.approx((x, y), abs=1e-3)
        assert abs(x - m.view.cx) < 2.0 and abs(y - m.view.cy) < 2.0


async def test_keys_before_products_load_do_not_crash(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.open_target("04_21_30")
        await pilot.press("m", "space", "right_square_bracket", "w", "z", "l", "enter", "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, (TargetScreen, NightScreen)))
        await pilot.pause(0.3)
        assert app.is_running


async def test_readout_follows_the_centroid_and_the_region_cursor_in_the_redex_frame(make_app):
    """Issue 17 item 2: one position in the frame ``redex X Y`` takes, arrows along x and y."""
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_target(pilot, app, "04_21_30")
        await pilot.pause()
        x0, y0 = screen.edit.position
        await pilot.press("l", "k")
        await pilot.pause()
        assert screen.edit.centroid == pytest.approx((x0 + 1.0, y0 + 1.0), abs=1e-3)
        readout = str(screen.query_one("#readout").render())
        assert f"centroid {x0 + 1:+.2f} {y0 + 1:+.2f}" in readout and "S/N" in readout
        assert "y│" in str(screen.query_one("#y-axis").render()) and "x→" in str(screen.query_one("#x-axis").render())
        await pilot.press("m")
        start = screen.data.cube.xy[screen.cursor].copy()
        await pilot.press("right")
        moved = screen.data.cube.xy[screen.cursor] - start
        assert moved[0] > 0.5 and abs(moved[1]) < abs(moved[0])  # along x, to the next spaxel that way
        assert f"cursor {start[0] + moved[0]:+.2f}" in str(screen.query_one("#readout").render())


async def test_palette_verbs_target_and_night(make_app, night):
    """Issue 17 item 8: ``:target 04_21_30`` and ``:night 20261123`` with completion."""
    with sqlite3.connect(night.db) as conn:
        conn.execute("INSERT INTO nights (night) VALUES ('20261123')")
        conn.execute("INSERT INTO observations (night, obs_id, object, kind, state, stage) VALUES "
                     "('20261123', '05_00_00', 'ZTF26older', 'science', 'waiting', 'waiting')")
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        await pilot.press("colon", *":target 04_21")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen))
        assert app.screen.obs_id == "04_21_30"
        await pilot.press("colon", *":night 20261123")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.night == "20261123" and isinstance(app.screen, NightScreen))
        assert list(app.targets) == ["05_00_00"] and len(app.screen_stack) == 2
        await wait_for(pilot, lambda: "05:00:00" in app.export_screenshot())
        assert "20261123" in str(app.header()) or "2026-11-23" in str(app.header())


def _bind_read_only(src, mnt) -> str | None:
    """Bind-mount ``src`` read-only at ``mnt``; the reason when this machine cannot."""
    import subprocess

    if os.geteuid() != 0:
        return "needs root to mount"
    mnt.mkdir(parents=True, exist_ok=True)
    for cmd in (["mount", "--bind", str(src), str(mnt)], ["mount", "-o", "remount,bind,ro", str(mnt)]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["umount", str(mnt)], capture_output=True)
            return f"{' '.join(cmd[:2])} failed: {r.stderr.strip()[:120]}"
    return None


@pytest.mark.parametrize("with_wal", [False, True])
async def test_a_readonly_console_over_a_read_only_mount(night, tmp_path, with_wal):
    """Issue 15: a console over the night's database on a read-only mount (a PI's NFS export, a
    backup). With the engine stopped cleanly (no -wal/-shm), and with a copy taken while an
    engine wrote (-wal and -shm present, frozen): the console opens, lists every exposure,
    opens a target, and nothing is written (the mount would refuse it; no error surfaces)."""
    import shutil
    import subprocess

    from sedmtui.app import NightApp
    from sedmtui.settings import ConsoleSettings
    from tests.sedmtui.conftest import fixed_clock

    src = tmp_path / "export"
    shutil.copytree(night.redux, src)
    if with_wal:
        conn = sqlite3.connect(src / "sedm.db")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        with conn:
            conn.execute("UPDATE observations SET state='done', stage='done' WHERE obs_id='04_39_00'")
        holder = src / "held"
        holder.mkdir()
        for name in ("sedm.db", "sedm.db-wal", "sedm.db-shm"):
            shutil.copy2(src / name, holder / name)  # the files as they are while the writer holds them
        conn.close()
        for name in ("sedm.db", "sedm.db-wal", "sedm.db-shm"):
            shutil.copy2(holder / name, src / name)
        assert (src / "sedm.db-wal").stat().st_size > 0
    mnt = tmp_path / "ro"
    why = _bind_read_only(src, mnt)
    if why:
        pytest.skip(why)
    try:
        before = sorted((p.name, p.stat().st_size) for p in mnt.iterdir())
        app = NightApp(db_path=mnt / "sedm.db", night=night.night, redux_root=mnt, clock=fixed_clock,
                       settings=ConsoleSettings(poll_s=0.05), readonly=True)
        async with app.run_test(size=(160, 50)) as pilot:
            await pilot.pause()
            t = night_screen(app).query_one(TargetTable)
            assert t.row_count == 6
            if with_wal:  # the committed change in the -wal is read
                assert t.cells["04_39_00"]["state"] == ("done", None)
            screen = await open_target(pilot, app, "03_06_30")
            assert screen.data.cube is not None and not screen.data.errors
        assert sorted((p.name, p.stat().st_size) for p in mnt.iterdir()) == before
    finally:  # a file the app's cache still maps keeps the mount busy: detach it lazily then
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
