"""Console fixtures: a deterministic fake night (built once per session, copied per test), a
console App factory with a fixed clock, and the mini synthetic night reduced by the real
engine (once per session, for the tmux end-to-end test and the real-product readers)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MINI_NIGHT, REPO, _once, templates_dir
from tests.sedmtui.fakenight import FakeNight, build_fake_night, copy_night

FIXED_NOW = dt.datetime(2026, 11, 24, 9, 41, 12, tzinfo=dt.UTC)


def fixed_clock() -> dt.datetime:
    """The clock of every console test (snapshots show UT 09:41)."""
    return FIXED_NOW


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch, tmp_path):
    """No developer config leaks in: no $SEDMTUI_CONFIG, no ./sedmtui.toml."""
    monkeypatch.delenv("SEDMTUI_CONFIG", raising=False)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    if Path("sedmtui.toml").exists():
        monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def fake_night_src(tmp_path_factory) -> FakeNight:
    """The fake night, written once per session (do not modify: copy it with ``night``)."""
    root = _once(tmp_path_factory, "sedmtui-fake-night", build_fake_night)
    return FakeNight(root=root, redux=root / "redux", raw=root / "raw", db=root / "redux" / "sedm.db")


@pytest.fixture
def night(fake_night_src, tmp_path) -> FakeNight:
    """A private copy of the fake night (its database may be written)."""
    return copy_night(fake_night_src, tmp_path / "night")


@pytest.fixture
def make_app(night):
    """``make_app(**kw)`` -> a NightApp on the test's night copy, fixed clock, fast polling."""
    from sedmtui.app import NightApp
    from sedmtui.settings import ConsoleSettings

    def make(**kw):
        kw.setdefault("settings", ConsoleSettings(poll_s=0.05))
        return NightApp(db_path=night.db, night=night.night, redux_root=night.redux, clock=fixed_clock, **kw)

    return make


async def wait_for(pilot, predicate, timeout: float = 10.0, step: float = 0.02) -> None:
    """Pause the pilot until ``predicate()`` is true (thread workers and the tail run meanwhile)."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if predicate():
            return
        await pilot.pause(step)
    raise AssertionError(f"condition not met within {timeout} s: {predicate}")


# --------------------------------------------------------------------------------------------- real engine
def engine_env() -> dict:
    """Environment for engine subprocesses (templates found as in the main conftest)."""
    env = dict(os.environ)
    env.pop("SEDMTUI_CONFIG", None)
    tdir = templates_dir()
    if tdir is not None:
        env["SEDMTUI_CLASSIFY_TEMPLATES_DIR"] = str(tdir)
    return env


@pytest.fixture(scope="session")
def reduced_mini(tmp_path_factory, mini_raw) -> Path:
    """Reduction root of the mini night reduced once by ``sedmtui --batch --once`` (do not modify)."""

    def build(out: Path) -> None:
        cmd = [sys.executable, "-m", "sedmtui", "--batch", "--night", MINI_NIGHT, "--once", "--raw-root", str(mini_raw),
               "--redux-root", str(out)]
        with open(out / "engine.log", "w") as log:
            subprocess.run(cmd, env=engine_env(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=True,
                           timeout=900)

    return _once(tmp_path_factory, "sedmtui-reduced-mini", build)


