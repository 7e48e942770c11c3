"""``sedmtui serve``: the console in a real headless browser (Chromium from Debian, driven by
Playwright), read-only by default, on localhost only.

The web terminal draws on a canvas, so the test reads what the console sends to the browser
(the websocket frames the page receives: the console's screen updates) rather than the DOM.
Skipped, with the reason, when Chromium or Playwright is unavailable (``make test`` tries to
install Chromium from Debian).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from sedmtui.serve import console_command, is_loopback


def test_the_web_console_is_read_only_unless_asked_and_local_only():
    ns = argparse.Namespace(db="/x/sedm.db", night="20261124", config=None, raw_root=None, redux_root=None,
                            write=False)
    cmd = console_command(ns, python="python")
    assert cmd.endswith("--db /x/sedm.db --night 20261124 --readonly --colors truecolor")
    assert "--readonly" not in console_command(argparse.Namespace(**{**vars(ns), "write": True}), python="python")
    assert is_loopback("localhost") and is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    out = subprocess.run([sys.executable, "-m", "sedmtui", "serve", "--host", "0.0.0.0"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 2 and "not a loopback address" in out.stderr


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(night):
    port = free_port()
    env = dict(os.environ, SEDMTUI_SCREENSHOT_DIR=str(night.root))
    proc = subprocess.Popen([sys.executable, "-m", "sedmtui", "serve", "--db", str(night.db), "--night", night.night,
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        for _ in range(600):  # the server prints its address, then listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
                time.sleep(0.1)
        yield f"http://localhost:{port}"
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def test_a_browser_sees_the_night_and_opens_a_target(served):
    path = chromium()
    if path is None:
        pytest.skip("no Chromium on this machine (make test installs it from Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    frames: list[str] = []

    def seen(text: str, timeout: float = 60.0) -> bool:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if any(text in f for f in frames):
                return True
            page.wait_for_timeout(100)
        return False

    def on_frame(payload) -> None:
        frames.append(payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload))

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
            page.goto(served)
            start = page.locator("#start")
            if start.is_visible():
                start.click()
            assert seen("ZTF26ccccccc"), "the night table never reached the browser"
            assert seen("[read-only]"), "the web console is not read-only"
            page.locator("#terminal").click()
            page.keyboard.press("ArrowDown")
            page.keyboard.press("Enter")  # opens the highlighted exposure
            assert seen("centroid mode"), "the target screen never opened"
        finally:
            browser.close()
