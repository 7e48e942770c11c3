"""``sedmtui deliver`` and ``sedmtui status``; kill -9 during delivery, restart: nothing twice, nothing lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from engine.cli import dispatch, run_engine_command
from engine.delivery.standins.skyportal import SkyPortalStandin

from .nightfake import NIGHT, TOKEN, config_for, fake_night
from .test_fritz import ACCEPTABLE


def env_for(tmp_path, url: str) -> dict:
    return {**os.environ, "SEDMTUI_CONFIG": "", "SEDMTUI_RAW_ROOT": str(tmp_path / "raw"),
            "SEDMTUI_REDUX_ROOT": str(tmp_path / "redux"), "SEDMTUI_DELIVERY_ENABLED": "1",
            "SEDMTUI_DELIVERY_BACKOFF_S": "0.05,0.1,0.2", "SEDMTUI_DELIVERY_MAX_AGE_DAYS": "100000",
            "SEDMTUI_FRITZ_BASE_URL": url, "SEDMTUI_FRITZ_TOKEN": TOKEN, "SEDMTUI_FRITZ_RECHECK_S": "0.3",
            "SEDMTUI_FRITZ_MIN_INTERVAL_S": "0", "SEDMTUI_FRITZ_UNCALIBRATED_HOLD_S": "0"}


def sedmtui(args: list[str], env: dict, monkeypatch, capsys) -> tuple[int, str]:
    for k, v in env.items():
        if k.startswith("SEDMTUI_"):
            monkeypatch.setenv(k, v)
    monkeypatch.delenv("SEDMTUI_CONFIG", raising=False)
    code = run_engine_command(*dispatch(args))
    return code, capsys.readouterr().out


@pytest.fixture
def portal():
    sp = SkyPortalStandin(token=TOKEN)
    sp.start()
    yield sp
    sp.stop()


def test_preview_run_status(tmp_path, portal, monkeypatch, capsys):
    config = config_for(tmp_path, portal.url)
    w = fake_night(config)
    w.release_lease()
    env = env_for(tmp_path, portal.url)
    code, out = sedmtui(["deliver", "preview", "--night", NIGHT], env, monkeypatch, capsys)
    assert code == 0 and "delivery on" in out and "10 new" in out and "ZTF26aaaaaaa" in out
    code, out = sedmtui(["deliver", "preview", "--night", NIGHT], {**env, "SEDMTUI_DELIVERY_ENABLED": "0"},
                        monkeypatch, capsys)
    assert "OFF" in out
    assert not portal.calls  # previews send nothing
    code, out = sedmtui(["deliver", "run", "--night", NIGHT, "--dry-run"], env, monkeypatch, capsys)
    assert code == 0 and "10 dry-run" in out and not portal.calls
    code, out = sedmtui(["deliver", "run", "--night", NIGHT], env, monkeypatch, capsys)
    assert code == 0 and "10 sent" in out and len(portal.spectra) == 3
    code, out = sedmtui(["deliver", "status", "--night", NIGHT], env, monkeypatch, capsys)
    assert "10 sent" in out and "fritz spectrum" in out and f"{portal.url}/source/ZTF26aaaaaaa" in out
    code, out = sedmtui(["status", "--night", NIGHT], env, monkeypatch, capsys)
    assert "deliveries: 10 sent" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("03:06:30"))
    assert " sent " in f"{line} "  # the dlv column from the ledger
    assert TOKEN not in out
    code, out = sedmtui(["--settings"], env, monkeypatch, capsys)
    assert "SEDMTUI_FRITZ_TOKEN" in out and TOKEN not in out


@pytest.mark.parametrize("process", ["engine", "deliver-run"])
def test_kill_during_delivery_then_restart_stores_nothing_twice(tmp_path, process):
    """kill -9 of the delivering process (the engine, or ``sedmtui deliver run``) at random moments;
    the stand-in is slow around each call so kills land between a stored spectrum and its record.
    Then a clean run: every spectrum, annotation and status exactly once."""
    portal = SkyPortalStandin(token=TOKEN)
    portal.latency_s = (0.02, 0.08)
    portal.start()
    try:
        config = config_for(tmp_path, portal.url)
        fake_night(config).release_lease()
        (tmp_path / "raw" / NIGHT).mkdir(parents=True)
        env = {**env_for(tmp_path, portal.url), "SEDMTUI_ENGINE_STAGES": "none", "SEDMTUI_ENGINE_WORKERS": "1"}
        if process == "engine":
            cmd, window = [sys.executable, "-m", "sedmtui", "--batch", "--once", "--night", NIGHT], (1.8, 3.0)
        else:
            cmd, window = [sys.executable, "-m", "sedmtui", "deliver", "run", "--night", NIGHT], (0.6, 1.6)
        rng = random.Random(18)
        kills = 0
        for _ in range(4):
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(*window))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert kills >= 1
        assert sorted(s["obj_id"] for s in portal.spectra.values()) == sorted(ACCEPTABLE)  # 0 duplicates, 0 lost
        assert len(portal.annotations) == 5
        assert sorted(portal.followup) == [1001, 1002] and len(portal.statuses) == 2
    finally:
        portal.stop()
