"""Pilot tests of the small defects of issue 17 (keys, screenshot, read-only report, wording)."""

from __future__ import annotations

from textual.widgets import Input

from sedmtui.screens.confirm import ConfirmScreen
from sedmtui.screens.report import ReportScreen
from sedmtui.screens.target import TargetScreen
from tests.sedmtui.conftest import wait_for


async def _target(pilot, app, obs_id: str) -> TargetScreen:
    app.open_target(obs_id)
    await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen) and app.screen.obs_id == obs_id
                   and app.screen.loaded)
    return app.screen


async def test_full_stop_and_comma_step_through_exposures(make_app):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await _target(pilot, app, "03_06_30")
        await pilot.press("full_stop")
        await _target(pilot, app, "03_19_00")
        await pilot.press("comma")
        await _target(pilot, app, "03_06_30")
        assert sum(isinstance(s, TargetScreen) for s in app.screen_stack) == 1


async def test_screenshot_is_saved_and_says_where(make_app, tmp_path, monkeypatch):
    monkeypatch.setenv("SEDMTUI_SCREENSHOT_DIR", str(tmp_path))
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.deliver_screenshot()
        await pilot.pause()
        saved = list(tmp_path.glob("*.svg"))
        assert len(saved) == 1 and saved[0].stat().st_size > 1000
        messages = [n.message for n in app._notifications]
        assert any(str(saved[0]) in m for m in messages) and not any("Failed" in m for m in messages)


async def test_readonly_report_screen_offers_no_write(make_app):
    app = make_app(readonly=True)
    async with app.run_test(size=(160, 50)) as pilot:
        app.open_report(request=False)
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen) and app.screen.query("#report-text"))
        await pilot.pause()
        screen = app.screen
        keys = {b.binding.id for b in screen.active_bindings.values() if b.enabled and screen.check_action(
            b.binding.action, ())}
        assert not keys & {"report.regenerate", "report.final", "report.comment"}
        assert screen.query_one("#comment", Input).disabled
        text = str(screen.query_one("#report-text").render())
        assert "R asks" not in text and "send" not in text.lower()


async def test_final_report_confirmation_does_not_claim_to_send(make_app):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        app.open_report(request=False)
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen) and app.screen.query("#report-text"))
        await pilot.pause()
        await pilot.press("F")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        modal = app.screen
        title = modal.title_text.plain
        body = modal.body.plain
        assert title == "Write the final report?"
        assert "Nothing is sent" in body and "Send" not in title
        await pilot.press("n")


async def test_final_report_confirmation_lists_what_is_undecided(make_app):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        app.open_report(request=False)
        await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen) and app.screen.query("#report-text"))
        await pilot.pause()
        await pilot.press("F")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        body = app.screen.body.plain
        assert "1 quality 5 (fixable: recover or re-extract): 04_21_30" in body
        assert "1 quality 3/4: 03_19_00" in body and "2 not reduced yet: 04_39_00, 04_51_30" in body


def test_accept_warns_when_the_classification_would_be_lost():
    from sedmtui.data import ExtractionData, TargetData
    from sedmtui.review import accept_text

    cur = ExtractionData(row={"tag": "robot", "quality": 0}, classification={"type": "Ia", "subtype": "norm"},
                         spectrum=None, psf=None)
    cand = ExtractionData(row={"tag": "redo104512", "quality": 0, "spec_fits": "s.fits",
                               "facts_json": '{"classification": "no SNID template directory configured"}'},
                          classification=None, spectrum=None, psf=None)
    data = TargetData(target={"obs_id": "04_21_30", "object": "ZTF26x"}, observation={}, cube=None, current=cur,
                      candidate=cand, guider=None)
    _title, body = accept_text(data)
    assert body.startswith("⚠ robot is classified (Ia-norm), redo104512 is not (no SNID template directory "
                           "configured)")
    cand.classification = {"type": "Ia", "subtype": "norm"}
    assert "⚠" not in accept_text(data)[1]


async def test_sort_column_shows_an_arrow(make_app):
    from sedmtui.widgets.targets import TargetTable

    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(TargetTable)
        labels = lambda: {str(k.value): c.label.plain for k, c in table.columns.items()}  # noqa: E731
        assert labels()["ut"] == "UT▲"
        await pilot.press("s")
        assert labels()["q"] == "Q▼" and labels()["ut"] == "UT"
        assert table.ordered_rows[0].key.value == "04_21_30"


async def test_palette_verbs_ask_first(make_app):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        for verb, title in ((":q", "Quit the console?"), (":final", "Write the final report?"),
                            (":recover", "Recover quality 5 → 1?")):
            await pilot.press("colon", *verb)
            await pilot.pause(0.3)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert app.screen.title_text.plain == title
            await pilot.press("n")
            await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
            if isinstance(app.screen, ReportScreen):
                await pilot.press("escape")
        assert app.return_code is None
