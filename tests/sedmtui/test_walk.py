"""The crash walk: every screen, every target of a night holding every degenerate case, every
bound key, at 160x50 and 80x24. Any exception in the console fails the test.

The night (:mod:`tests.sedmtui.degenerate`) adds to the fake night an all-NaN spectrum, missing
and truncated products, a cube of zeros, an empty spectrum, a zero-byte PNG, unparsable facts,
and object names and events holding Rich markup and terminal escape codes.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input

from sedmtui.screens.confirm import ConfirmScreen
from sedmtui.screens.night import NightScreen
from sedmtui.screens.report import ReportScreen
from sedmtui.screens.target import TargetScreen
from sedmtui.widgets.preview import PreviewPane
from sedmtui.widgets.spectrum import SpectrumPlot
from sedmtui.widgets.targets import TargetTable
from tests.sedmtui.conftest import wait_for
from tests.sedmtui.degenerate import ESCAPES, HOSTILE, add_degenerate_cases

SKIP_KEYS = {"ctrl+q", "ctrl+c"}
"""Keys that end the app (the walk must keep it running)."""


@pytest.fixture
def bad_night(night):
    return add_degenerate_cases(night)


ROW_KEYS = {"night.open", "night.recover", "night.copy", "night.report", "night.view_report"}
"""Night-screen keys whose effect depends on the highlighted row (the others are walked once)."""


def keys_of(screen, only: set[str] | None = None) -> list[str]:
    """Every key bound on ``screen`` now (its own, its focused widget's, the app's)."""
    return [k for k, b in screen.active_bindings.items()
            if k not in SKIP_KEYS and (only is None or b.binding.id in only)]


def no_crash(app) -> None:
    assert app._exception is None, app._exception
    assert app.return_code is None, "the console exited"


async def settle(pilot, app, home, reopen=None) -> None:
    """Back to ``home`` (closing modals, leaving inputs); ``reopen()`` if ``home`` was left."""
    for _ in range(8):
        no_crash(app)
        if isinstance(app.focused, Input):
            await pilot.press("escape")
            continue
        if app.screen is home:
            return
        if home not in app.screen_stack:
            if reopen is None:
                raise AssertionError(f"left {home} for {app.screen}")
            home = await reopen()
            return
        await pilot.press("n" if isinstance(app.screen, ConfirmScreen) else "escape")
    assert app.screen is home, f"stuck on {app.screen}"


async def press_all(pilot, app, home, reopen=None, only: set[str] | None = None) -> None:
    """Press every key bound on ``home`` (or those of the ids ``only``), settling back after each."""
    for key in keys_of(home, only):
        if home not in app.screen_stack:
            home = await reopen()
        await pilot.press(key)
        await settle(pilot, app, home, reopen)
        if reopen is not None and app.screen is not home:
            home = app.screen


async def open_target(pilot, app, obs_id: str) -> TargetScreen:
    app.open_target(obs_id)
    await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen) and app.screen.obs_id == obs_id
                   and app.screen.loaded)
    return app.screen


@pytest.mark.parametrize("size", [(160, 50), (80, 24)], ids=["160x50", "80x24"])
async def test_every_key_on_every_screen_and_target(make_app, bad_night, size):
    app = make_app()
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        night = app.screen
        assert isinstance(night, NightScreen)
        table = night.query_one(TargetTable)
        obs_ids = sorted(app.targets)
        assert len(obs_ids) == 14
        for i, obs_id in enumerate(obs_ids):
            # night screen: the row, its preview (wide terminals), every key (on later rows the
            # keys that depend on the row)
            assert table.select(obs_id)
            if size[0] >= 136:
                pane = night.query_one(PreviewPane)
                await wait_for(pilot, lambda: pane.obs_id == obs_id)
            no_crash(app)
            await press_all(pilot, app, night, only=None if i == 0 else ROW_KEYS)
            assert table.select(obs_id)
            # target screen: every key, reopened whenever a key leaves it (back, next, previous)
            screen = await open_target(pilot, app, obs_id)

            async def reopen(obs_id=obs_id):
                if not isinstance(app.screen, NightScreen):
                    await settle(pilot, app, night)
                return await open_target(pilot, app, obs_id)

            await press_all(pilot, app, screen, reopen)
            await settle(pilot, app, night)
        # the report screen and its keys
        async def report():
            await settle(pilot, app, night)
            app.open_report(request=False)
            await wait_for(pilot, lambda: isinstance(app.screen, ReportScreen))
            return app.screen

        await press_all(pilot, app, await report(), report)
        no_crash(app)


async def test_all_nan_spectrum_says_why(make_app, bad_night):
    """The reproduced crash: a quality-3 target off the IFU has an all-NaN spectrum."""
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        night = app.screen
        night.query_one(TargetTable).select("03_19_00")
        pane = night.query_one(PreviewPane)
        await wait_for(pilot, lambda: pane.obs_id == "03_19_00" and pane._spectrum is not None)
        title = pane._spectrum.title_text()
        assert title.startswith("no finite flux: robot: all 2041 flux values are NaN")
        assert "outside the IFU" in title
        screen = await open_target(pilot, app, "03_19_00")
        await pilot.pause()
        assert screen.query_one(SpectrumPlot).title_text().startswith("no finite flux")
        no_crash(app)


async def test_missing_and_truncated_products_are_named(make_app, bad_night):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_target(pilot, app, "05_15_00")
        assert "cube missing" in str(screen.query_one("#map-pane").border_title)
        app.pop_screen()
        screen = await open_target(pilot, app, "05_20_00")
        assert "missing" in screen.query_one(SpectrumPlot).title_text()
        app.pop_screen()
        screen = await open_target(pilot, app, "05_25_00")
        errors = " ".join(screen.data.errors)
        assert errors.count("unreadable") >= 3, errors
        assert "unreadable" in str(screen.query_one("#map-pane").border_title)
        no_crash(app)


async def test_markup_and_escape_codes_are_shown_as_text(make_app, bad_night):
    """Issue 15 items 7/8: header values and event text are neither markup nor escape codes."""
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        night = app.screen
        table = night.query_one(TargetTable)
        assert table.cells["05_00_00"]["object"][0] == "ZTFbad[/nope]"
        assert table.cells["05_05_00"]["object"][0] == "[@click=app.quit]ZTFlink[/]"
        assert table.cells["05_10_00"]["object"][0] == "ZTFescred"
        table.select("05_05_00")
        await pilot.pause()
        svg = app.export_screenshot()
        assert "[@click=app.quit]ZTFlink[/]" in svg.replace("&#160;", " ")
        assert "\x1b" not in svg and "pwned" not in svg
        screen = await open_target(pilot, app, "05_10_00")
        assert "\x1b" not in app.export_screenshot()
        await pilot.press("y")  # copy: the notification holds the cleaned name
        await pilot.pause()
        assert screen is app.screen
        assert all(ESCAPES not in n.message for n in app._notifications)
        assert HOSTILE["05_10_00"] not in app.export_screenshot()
        no_crash(app)
