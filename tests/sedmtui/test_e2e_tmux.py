"""End to end: the real ``sedmtui`` console in tmux against a live engine (``sedmtui --batch``).

The mini synthetic night, reduced once per session, is copied; a live engine serves it; the
console opens the quality-5 exposure, nudges the centroid, asks for a re-extraction, waits
for it, accepts it, and the test checks the new ``spec_auto_redo…`` file and the DB row.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MINI_NIGHT, REPO, copy_reduced
from tests.sedmtui.conftest import engine_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

Q5 = "04_21_30"


class Tmux:
    """One detached tmux session running a command."""

    def __init__(self, name: str, command: str, size=(160, 50)) -> None:
        self.name = name
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]), command],
                       check=True)
        # A detached session's window can start at tmux's default 80x24 (the client-less size);
        # set the size the test is written for explicitly.
        subprocess.run(["tmux", "resize-window", "-t", name, "-x", str(size[0]), "-y", str(size[1])],
                       capture_output=True)
        self.size = size

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return out.stdout

    def keys(self, *keys: str) -> None:
        for k in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, k], check=True)
            time.sleep(0.05)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not on screen after {timeout} s:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def wait_engine_alive(db: Path, timeout: float = 60.0) -> None:
    from engine.state.reader import StateReader

    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        try:
            r = StateReader(db)
            alive = r.engine_status()["alive"]
            r.close()
            if alive:
                return
        except Exception:  # noqa: BLE001 - engine still starting
            pass
        time.sleep(0.2)
    raise AssertionError("the engine did not come up")


def test_console_reextracts_and_accepts_against_a_live_engine(reduced_mini, mini_raw, tmp_path):
    redux = copy_reduced(reduced_mini, tmp_path / "redux", link=True)
    log = open(tmp_path / "engine.log", "w")
    engine = subprocess.Popen([sys.executable, "-m", "sedmtui", "--batch", "--night", MINI_NIGHT, "--raw-root",
                               str(mini_raw), "--redux-root", str(redux)], env=engine_env(), cwd=REPO, stdout=log,
                              stderr=subprocess.STDOUT)
    session = None
    try:
        wait_engine_alive(redux / "sedm.db")
        exe = Path(sys.executable).with_name("sedmtui")
        session = Tmux(f"sedmtui-e2e-{tmp_path.name[-12:]}",
                       f"stty cols 160 rows 50; env TERM=xterm-256color COLORTERM=truecolor {exe} --redux-root {redux} "
                       f"--raw-root {mini_raw} --night {MINI_NIGHT}")
        session.wait_for("ZTF26", timeout=30)
        session.wait_for("engine ●")
        session.keys("/", *Q5, "Enter")
        session.wait_for(f"{Q5} ZTF")
        session.keys("Enter")
        session.wait_for("[centroid mode]")
        session.wait_for("spectrum: robot")
        session.keys("l")
        session.wait_for("→ (")
        session.keys("Enter")
        session.wait_for("ready: a accept", timeout=180)
        session.keys("a")
        session.wait_for("becomes the current extraction")
        session.keys("y")
        session.wait_for("is now the current one", timeout=60)
        conn = sqlite3.connect(redux / "sedm.db")
        tag, status, spec = conn.execute(
            """SELECT e.tag, e.status, e.spec_fits FROM extractions e JOIN observations o
               ON o.current_extraction_id = e.id WHERE o.obs_id=?""", [Q5]).fetchone()
        reqs = conn.execute("SELECT kind, status FROM requests ORDER BY id").fetchall()
        conn.close()
        assert tag.startswith("redo") and status == "current"
        assert spec.startswith(f"spec_auto_{tag}_lstep1__") and (redux / MINI_NIGHT / spec).exists()
        assert reqs == [("reextract", "done"), ("accept", "done")]
        session.keys("q", "q")
        session.wait_for("Quit the console?")
        session.keys("y")
    finally:
        if session is not None:
            session.kill()
        engine.send_signal(signal.SIGINT)
        try:
            engine.wait(30)
        except subprocess.TimeoutExpired:
            engine.kill()
        log.close()
