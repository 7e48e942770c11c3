"""The headless engine ingests and classifies every frame; bad files never stop it; a killed
engine restarted loses and repeats nothing."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from engine.config import load_config
from engine.pipeline.engine import Engine
from tests.conftest import MINI_NIGHT


def make_config(raw, redux, **engine):
    env = {"SEDMTUI_ENGINE_STAGES": "none", "SEDMTUI_ENGINE_WORKERS": "1", "SEDMTUI_WATCH_STABLE_S": "0.2"}
    env.update({f"SEDMTUI_ENGINE_{k.upper()}": str(v) for k, v in engine.items()})
    return load_config(None, env=env, overrides={"paths": {"raw_root": str(raw), "redux_root": str(redux)}})


def copy_raw(src, dst, keep=lambda name: True):
    for night_dir in src.iterdir():
        if night_dir.is_dir() and night_dir.name.isdigit():
            (dst / night_dir.name).mkdir(parents=True, exist_ok=True)
            for f in night_dir.glob("*.fits"):
                if keep(f.name):
                    shutil.copy2(f, dst / night_dir.name / f.name)


def frames(db):
    with sqlite3.connect(db) as c:
        return {r[0]: r[1:] for r in c.execute("SELECT file, kind, state, error, lamp FROM frames")}


def ingested_count(db):
    """Frames ingested so far (0 while the engine is still creating the database)."""
    try:
        return len([v for v in frames(db).values() if v[1] == "ingested"]) if db.exists() else 0
    except sqlite3.OperationalError:
        return 0


def test_once_classifies_every_frame_as_the_truth_says(mini_raw, mini_truth, tmp_path):
    cfg = make_config(mini_raw, tmp_path / "redux")
    assert Engine(cfg, night=MINI_NIGHT, once=True).run() == 0
    got = frames(cfg.paths.db_path)
    truth = {f["file"]: f for f in mini_truth["frames"]}
    assert set(got) == set(truth)
    for name, f in truth.items():
        assert got[name][0] == f["kind"], name
        assert got[name][1] == "ingested"
        if f["kind"] == "arc":
            assert got[name][3] == f["lamp"]
    with sqlite3.connect(cfg.paths.db_path) as c:
        obs = {r[0]: r[1] for r in c.execute("SELECT obs_id, kind FROM observations")}
        view = c.execute("SELECT count(*) FROM targets WHERE night=?", [MINI_NIGHT]).fetchone()[0]
    assert obs == {e["obs_id"]: e["kind"] for e in mini_truth["exposures"]}
    assert view == len(obs)


def test_corrupt_and_truncated_files_are_recorded_and_the_night_goes_on(mini_raw, tmp_path):
    raw = tmp_path / "raw"
    copy_raw(mini_raw, raw, keep=lambda n: not n.startswith("rc"))
    night = raw / MINI_NIGHT
    good = sorted(night.glob("ifu*_03_*.fits"))[0].read_bytes()
    (night / "ifu20261124_05_00_00.fits").write_bytes(good[: 2880 * 200])  # truncated
    (night / "ifu20261124_05_10_00.fits").write_bytes(b"not a fits file" * 500)  # corrupt
    cfg = make_config(raw, tmp_path / "redux")
    assert Engine(cfg, night=MINI_NIGHT, once=True).run() == 0
    got = frames(cfg.paths.db_path)
    assert got["ifu20261124_05_00_00.fits"][1] == "failed"
    assert "truncated" in got["ifu20261124_05_00_00.fits"][2]
    assert got["ifu20261124_05_10_00.fits"][1] == "failed"
    assert "not a FITS file" in got["ifu20261124_05_10_00.fits"][2]
    assert sum(1 for v in got.values() if v[1] == "ingested") == len(list(raw.glob("*/ifu*.fits"))) - 2
    # The truncated file is completed later: a new run ingests it.
    shutil.copy2(sorted(night.glob("ifu*_03_*.fits"))[0], night / "ifu20261124_05_00_00.fits")
    assert Engine(cfg, night=MINI_NIGHT, once=True).run() == 0
    assert frames(cfg.paths.db_path)["ifu20261124_05_00_00.fits"][1] == "ingested"


def test_killed_engine_restarts_without_losing_or_repeating(mini_raw, tmp_path):
    raw, redux = tmp_path / "raw", tmp_path / "redux"
    first = lambda n: n < "ifu20261124_03"  # noqa: E731 - calibrations and the previous day
    copy_raw(mini_raw, raw, keep=lambda n: n.startswith("ifu") and first(n))
    env = dict(os.environ, SEDMTUI_ENGINE_STAGES="none", SEDMTUI_ENGINE_WORKERS="1",
               SEDMTUI_WATCH_STABLE_S="0.2", SEDMTUI_ENGINE_LEASE_TIMEOUT_S="2")
    cmd = [sys.executable, "-m", "sedmtui", "--batch", "--night", MINI_NIGHT, "--raw-root", str(raw), "--redux-root", str(redux)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = redux / "sedm.db"
    expected = len(list(raw.glob("*/*.fits")))
    deadline = time.time() + 60
    while time.time() < deadline:
        if ingested_count(db) == expected:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(frames(db)) == expected
    copy_raw(mini_raw, raw, keep=lambda n: n.startswith("ifu") and not first(n))
    # The dead engine's lease is stale after lease_timeout_s: a new engine takes over.
    time.sleep(2.2)
    cfg = make_config(raw, redux, lease_timeout_s=2)
    assert Engine(cfg, night=MINI_NIGHT, once=True).run() == 0
    got = frames(db)
    assert len(got) == len(list(raw.glob("*/*.fits")))
    with sqlite3.connect(db) as c:
        per_file = c.execute("SELECT frame, count(*) FROM events WHERE kind='frame' GROUP BY frame").fetchall()
    assert all(n == 1 for _f, n in per_file), "a frame was ingested twice"


def test_second_engine_refuses_to_start(mini_raw, tmp_path):
    from engine.errors import LeaseError

    cfg = make_config(mini_raw, tmp_path / "redux")
    e1 = Engine(cfg, night=MINI_NIGHT, once=True)
    e1.start()
    try:
        with pytest.raises(LeaseError, match="another engine"):
            Engine(cfg, night=MINI_NIGHT, once=True).start()
    finally:
        e1.close()


def test_idle_engine_wakes_when_a_request_is_filed(tmp_path):
    """An idle engine sleeps ``idle_poll_s`` between iterations, but a request filed by another
    process (the console) wakes it at once: the wait watches ``PRAGMA data_version``."""
    import threading

    from engine.state.requests import submit_request

    (tmp_path / "raw").mkdir()
    cfg = make_config(tmp_path / "raw", tmp_path / "redux", idle_poll_s=60)
    engine = Engine(cfg, night=MINI_NIGHT, once=False)
    engine.start()

    def file_request():
        time.sleep(0.3)
        with sqlite3.connect(cfg.paths.db_path) as conn:
            submit_request(conn, "report", night=MINI_NIGHT, user="test")
        conn.close()

    try:
        t = threading.Thread(target=file_request)
        t.start()
        t0 = time.monotonic()
        engine._idle_wait(cfg.engine.idle_poll_s)
        waited = time.monotonic() - t0
        t.join()
    finally:
        engine.close()
    assert 0.3 <= waited < cfg.engine.idle_poll_s / 2  # woken by the commit, not by the timeout
