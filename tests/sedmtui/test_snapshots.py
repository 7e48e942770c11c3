"""SVG snapshots of the main screens (fake night, fixed clock, no cursor blink).

Regenerate deliberately with ``pytest tests/sedmtui/test_snapshots.py --snapshot-update`` after
reviewing ``snapshot_report.html``.
"""

from __future__ import annotations

import pytest

from sedmtui.screens.target import TargetScreen
from tests.sedmtui.conftest import wait_for
from tests.sedmtui.fakeengine import FakeEngine


@pytest.fixture(autouse=True)
def _no_blink(monkeypatch):
    from textual.widgets import Input

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None, raising=False)


async def _preview_loaded(pilot):
    app = pilot.app
    pane = app.screen.query_one("#preview")
    await wait_for(pilot, lambda: pane.obs_id is not None or not pane.display)
    await pilot.pause(0.1)


def test_night_screen_160x50(snap_compare, make_app):
    assert snap_compare(make_app(), terminal_size=(160, 50), run_before=_preview_loaded)


def test_night_screen_80x24(snap_compare, make_app):
    async def before(pilot):
        await pilot.press("down", "down", "down")
        await pilot.pause(0.1)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=before)


def test_target_screen_with_nudged_centroid(snap_compare, make_app):
    async def before(pilot):
        app = pilot.app
        app.open_target("04_21_30")
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen) and app.screen.data is not None)
        await pilot.press("l", "l", "K")
        await pilot.pause(0.1)

    assert snap_compare(make_app(), terminal_size=(160, 50), run_before=before)


def test_target_region_mode_80x24(snap_compare, make_app):
    async def before(pilot):
        app = pilot.app
        app.open_target("03_06_30")
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen) and app.screen.data is not None)
        await pilot.press("m", "right", "space", "left_square_bracket")
        await wait_for(pilot, lambda: app.screen.region_mode)
        await pilot.pause(0.3)  # the panels redraw after the mode change (slow on a loaded machine)

    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=before)


def test_accept_modal_after_reextraction(snap_compare, make_app, night):
    engine = FakeEngine(night)

    async def before(pilot):
        app = pilot.app
        engine.start()
        app.open_target("04_21_30")
        await wait_for(pilot, lambda: isinstance(app.screen, TargetScreen) and app.screen.data is not None)
        screen = app.screen
        await pilot.press("h", "enter")
        await wait_for(pilot, lambda: screen.data.candidate is not None)
        engine.stop()
        await wait_for(pilot, lambda: app.engine.get("status") == "stopped")
        await pilot.press("a")
        await pilot.pause(0.2)

    try:
        assert snap_compare(make_app(), terminal_size=(160, 50), run_before=before)
    finally:
        engine.stop()
