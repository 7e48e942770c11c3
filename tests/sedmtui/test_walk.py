"""The crash walk: every screen, every target of a night holding every degenerate case, every
bound key, at 160x50 and 80x24. Any exception in the console fails the test.

The night (:mod:`tests.sedmtui.degenerate`) adds to the fake night an all-NaN spectrum, missing
and truncated products, a cube of zeros, an empty spectrum, a zero-byte PNG, unparsable facts,
and object names and events holding Rich markup and terminal escape codes.

How it stays cheap (about 30 s a size, was about 2 min): one app session walks the whole night;
``.`` carries the target screen on to the next exposure (one product load each, not one per
key); every alias of every key is pressed on the first exposure, one key per action on the
others; keys that only leave the screen are pressed once; each key is processed and painted
at once instead of through ``Pilot.press``'s idle wait (:func:`press`).
"""

from __future__ import annotations

import unicodedata

import pytest
from textual import events
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
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


ROW_KEYS = {"night.open", "night.recover", "night.copy"}
"""Night-screen keys whose effect depends on the highlighted row (the others are walked once)."""

LEAVING = frozenset({"back", "escape", "step_target(1)", "step_target(-1)"})
"""Target-screen actions that leave the screen: walked once (they do not depend on the
exposure), except ``.`` which carries the walk on to the next exposure."""


def keys_of(screen, only: set[str] | None = None, *, every_alias: bool = True,
            skip_actions: frozenset[str] = frozenset()) -> list[str]:
    """Keys bound on ``screen`` now (its own, its focused widget's, the app's).

    ``every_alias=False`` keeps one key per action: ``left`` and ``h`` run the same action,
    so after one walk of every alias the later exposures get one key per action.
    """
    keys, seen = [], set()
    for k, b in screen.active_bindings.items():
        action = b.binding.action
        if k in SKIP_KEYS or action in skip_actions or (only is not None and b.binding.id not in only):
            continue
        if not every_alias and action in seen:
            continue
        seen.add(action)
        keys.append(k)
    return keys


async def press(pilot, key: str) -> None:
    """One key, processed and painted before the next.

    ``Pilot.press`` also waits for the process to look idle (two CPU-time samples of 20 ms
    each), about 65 ms a key; here the key's messages are processed and the screen is
    painted at once (a paint that raises fails the test here), 3-5 ms a key.
    """
    app = pilot.app
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
    except KeyError:
        char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(app)
    app._driver.send_message(event)
    await pilot._wait_for_screen()
    app.screen._on_timer_update()
    await pilot._wait_for_screen()


def no_crash(app) -> None:
    assert app._exception is None, app._exception
    assert app.return_code is None, "the console exited"


async def settle(pilot, app, home, reopen=None) -> None:
    """Back to ``home`` (closing modals, leaving inputs); ``reopen()`` if ``home`` was left."""
    for _ in range(8):
        no_crash(app)
        if isinstance(app.focused, Input):
            await press(pilot, "escape")
            continue
        if app.screen is home:
            return
        if home not in app.screen_stack:
            if reopen is None:
                raise AssertionError(f"left {home} for {app.screen}")
            await reopen()
            return
        await press(pilot, "n" if isinstance(app.screen, ConfirmScreen) else "escape")
    assert app.screen is home, f"stuck on {app.screen}"


async def press_all(pilot, app, home, reopen=None, keys: list[str] | None = None, **kw) -> None:
    """Press ``keys`` (default: every key bound on ``home``), settling back after each."""
    for key in keys_of(home, **kw) if keys is None else keys:
        if home not in app.screen_stack:
            home = await reopen()
        await press(pilot, key)
        await settle(pilot, app, home, reopen)
        if reopen is not None and app.screen is not home:
            home = app.screen


async def open_target(pilot, app, obs_id: str) -> TargetScreen:
    app.open_target(obs_id)
    return await target_shown(pilot, app, obs_id)


async def target_shown(pilot, app, obs_id: str) -> TargetScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen) and app.screen.obs_id == obs_id
                   and app.screen.loaded)
    return app.screen


async def walk_target(pilot, app, night, obs_id: str, *, first: bool) -> None:
    """Every action of the target screen on one exposure, in centroid mode and region mode.

    Keys that leave the screen are walked on the first exposure only; the walk stays on the
    screen otherwise (one product load per exposure, not one per key).
    """
    screen = app.screen

    async def reopen():
        if not isinstance(app.screen, NightScreen):
            await settle(pilot, app, night)
        return await open_target(pilot, app, obs_id)

    await press_all(pilot, app, screen, reopen, every_alias=first, skip_actions=LEAVING)
    screen = app.screen
    # the moves again, in the other mode than the one the walk ended in (region mode: the cursor)
    await press_all(pilot, app, screen, reopen, keys=["m", "left", "up", "right", "down", "space", "m"])
    if first:
        for key in ("comma", "escape", "q", "backspace"):  # previous exposure; back three ways
            await press(pilot, key)
            no_crash(app)
            assert isinstance(app.screen, (NightScreen, TargetScreen)) and app.screen is not screen
            await settle(pilot, app, night)
            screen = await open_target(pilot, app, obs_id)
    no_crash(app)


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
        # night screen: every row, its preview (wide terminals), every key on the first row and
        # the keys that depend on the row on every row
        for i, obs_id in enumerate(obs_ids):
            assert table.select(obs_id)
            if size[0] >= 136:
                pane = night.query_one(PreviewPane)
                await wait_for(pilot, lambda pane=pane, obs_id=obs_id: pane.obs_id == obs_id)
            no_crash(app)
            await press_all(pilot, app, night, only=None if i == 0 else ROW_KEYS - {"night.open"})
        # target screen: every exposure in turn, ``.`` (next exposure) carrying the walk on
        await settle(pilot, app, night)
        assert table.select(obs_ids[0])
        await press(pilot, "enter")
        await target_shown(pilot, app, obs_ids[0])
        for i, obs_id in enumerate(obs_ids):
            await walk_target(pilot, app, night, obs_id, first=i == 0)
            if i + 1 < len(obs_ids):
                await press(pilot, "full_stop")
                await target_shown(pilot, app, obs_ids[i + 1])
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
