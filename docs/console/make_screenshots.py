"""Make the README's console screenshots (SVG, from Textual) at 160x50 and 80x24.

Usage::

    python docs/console/make_screenshots.py [OUT_DIR]   # default: docs/console

The night is the test suite's deterministic fake night (:mod:`tests.sedmtui.fakenight`) with
the clock fixed at UT 09:41, so the pictures change only when the console does.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")

SHOTS = (
    ("night", (), "the night: every exposure, its quality and what the engine is doing"),
    ("target", ("enter",), "a quality-5 target: map in the redex frame, PSF, guider, facts, spectrum"),
    ("region", ("enter", "m", "right", "space"), "region mode: the cursor, one spaxel excluded"),
    ("report", ("v",), "the night report"),
)
"""``(name, keys pressed on the night screen with the Q5 target highlighted, caption)``."""


async def shoot(night, out: Path, size: tuple[int, int]) -> list[Path]:
    from sedmtui.app import NightApp
    from sedmtui.screens.night import NightScreen
    from sedmtui.screens.report import ReportScreen
    from sedmtui.screens.target import TargetScreen
    from sedmtui.settings import ConsoleSettings
    from sedmtui.widgets.targets import TargetTable
    from tests.sedmtui.conftest import fixed_clock

    saved = []
    for name, keys, _caption in SHOTS:
        app = NightApp(db_path=night.db, night=night.night, redux_root=night.redux, clock=fixed_clock,
                       settings=ConsoleSettings(poll_s=0.05))
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            app.screen.query_one(TargetTable).select("04_21_30")
            await pilot.pause(0.8)
            for key in keys:
                await pilot.press(key)
                await pilot.pause(0.1)
            for _ in range(100):  # the thread that reads the products
                screen = app.screen
                if isinstance(screen, (NightScreen, ReportScreen)) or (
                        isinstance(screen, TargetScreen) and screen.loaded):
                    break
                await pilot.pause(0.05)
            await pilot.pause(0.5)
            path = out / f"{name}-{size[0]}x{size[1]}.svg"
            path.write_text(app.export_screenshot(title=f"sedmtui: {name} ({size[0]}x{size[1]})"))
            saved.append(path)
    return saved


def write_night_report(night) -> None:
    """``report.txt`` as the engine writes it on a report request."""
    import sqlite3

    from engine.report import write_report

    conn = sqlite3.connect(night.db)
    conn.row_factory = sqlite3.Row

    def query(sql, params=()):
        return [dict(r) for r in conn.execute(sql, params).fetchall()]

    write_report(query, night.night, str(night.redux / night.night))
    conn.close()


def main() -> int:
    from tests.sedmtui.fakenight import FakeNight, build_fake_night

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "night"
        root.mkdir()
        build_fake_night(root)
        night = FakeNight(root=root, redux=root / "redux", raw=root / "raw", db=root / "redux" / "sedm.db")
        write_night_report(night)
        for size in ((160, 50), (80, 24)):
            for path in asyncio.run(shoot(night, out, size)):
                print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
