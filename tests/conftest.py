"""Shared fixtures: synthetic nights generated once per test session (shared by xdist workers)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MINI_NIGHT = "20261124"


def _shared_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.getbasetemp()
    root = base.parent if base.name.startswith("popen-gw") else base
    d = root / "shared"
    d.mkdir(exist_ok=True)
    return d


def _once(tmp_path_factory, name: str, build) -> Path:
    """Build ``name`` once per session, whichever xdist worker gets there first."""
    d = _shared_dir(tmp_path_factory)
    target = d / name
    with open(d / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".done").exists():
            target.mkdir(exist_ok=True)
            build(target)
            (target / ".done").write_text("ok")
    return target


@pytest.fixture(scope="session")
def mini_raw(tmp_path_factory) -> Path:
    """Raw root holding the mini synthetic night (seed 1, Andor camera, the nominal instrument).

    The regression tests of calibration and science hold this night to tight tolerances; the
    wide instrument draws (the synthesiser's default) are exercised by ``wide_raw`` and the
    sweep benchmark (``benchmarks/sweep.py``).
    """
    from engine.synth.night import write_night

    return _once(tmp_path_factory, "mini-raw",
                 lambda d: write_night(d, MINI_NIGHT, mini=True, seed=1, workers=2, priors="nominal"))


@pytest.fixture(scope="session")
def wide_raw(tmp_path_factory) -> Path:
    """Raw root holding a mini night of a wide instrument draw (seed 1: pitch 40.3 px, the
    densest lattice the priors allow, dispersion x0.94 of nominal, a law of another form)."""
    from engine.synth.night import write_night

    return _once(tmp_path_factory, "wide-raw",
                 lambda d: write_night(d, MINI_NIGHT, mini=True, seed=1, workers=2, priors="wide"))


@pytest.fixture(scope="session")
def mini_truth(mini_raw) -> dict:
    """The mini night's truth.json."""
    return json.loads((mini_raw / MINI_NIGHT / "truth.json").read_text())


def templates_dir() -> Path | None:
    """SNID templates: $SEDMTUI_CLASSIFY_TEMPLATES_DIR or ../shared/snid-templates-2.0 beside the repo."""
    env = os.environ.get("SEDMTUI_CLASSIFY_TEMPLATES_DIR")
    for cand in (env, REPO.parent / "shared" / "snid-templates-2.0"):
        if cand and Path(cand).is_dir():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def mini_calibration(tmp_path_factory, mini_raw) -> Path:
    """The mini night's calibration products (run once per session)."""

    def build(out: Path) -> None:
        import sys

        sys.path.insert(0, str(REPO / "benchmarks"))
        from calibration import select_frames

        from engine.pipeline.recipes.calibration import calibrate_night
        from engine.pipeline.tasks import CalibrationFrames, CalibrationTask

        frames = CalibrationFrames.from_lists(select_frames(mini_raw, MINI_NIGHT))
        calibrate_night(CalibrationTask(MINI_NIGHT, frames, str(out)))

    return _once(tmp_path_factory, "mini-cal", build)


def engine_config(raw: Path, redux: Path, **env):
    """A configuration for tests (templates from the shared directory when present)."""
    from engine.config import load_config

    base = {"SEDMTUI_ENGINE_WORKERS": "1", "SEDMTUI_WATCH_STABLE_S": "0.2"}
    tdir = templates_dir()
    if tdir is not None:
        base["SEDMTUI_CLASSIFY_TEMPLATES_DIR"] = str(tdir)
    base.update({k: str(v) for k, v in env.items()})
    return load_config(None, env=base, overrides={"paths": {"raw_root": str(raw), "redux_root": str(redux)}})


@pytest.fixture(scope="session")
def mini_reduced(tmp_path_factory, mini_raw) -> Path:
    """The mini night reduced end to end by the engine (``--once``); returns the redux root."""

    def build(out: Path) -> None:
        from engine.pipeline.engine import Engine

        cfg = engine_config(mini_raw, out, SEDMTUI_ENGINE_WORKERS=2)
        Engine(cfg, night=MINI_NIGHT, once=True).run()

    return _once(tmp_path_factory, "mini-reduced", build)


def copy_reduced(src: Path, dst: Path, ignore: tuple[str, ...] = (), link: bool = False) -> Path:
    """A private copy of a shared reduction root.

    The database is copied with SQLite's backup API (never file by file: another test may hold
    the shared database open, so its ``-wal``/``-shm`` files come and go); products are copied,
    or hard-linked with ``link`` when the test only reads them.
    """
    shutil.copytree(src, dst, copy_function=os.link if link else shutil.copy2,
                    ignore=shutil.ignore_patterns("sedm.db*", ".done", *ignore))
    with sqlite3.connect(src / "sedm.db") as s, sqlite3.connect(dst / "sedm.db") as d:
        s.backup(d)
    s.close()
    d.close()
    return dst


@pytest.fixture(scope="session", autouse=True)
def template_cache_dir(tmp_path_factory):
    """Keep the SNID template array cache of every test (and the engines they start) out of ~/.cache."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("template-cache")
    mp.setenv("SEDMTUI_CLASSIFY_CACHE_DIR", str(path))
    yield path
    mp.undo()
