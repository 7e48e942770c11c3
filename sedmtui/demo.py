"""``sedmtui --demo``: a synthetic night reduced live by a background engine, in the console.

1. Synthesise a night into ``--demo-dir/source`` (mini by default, ``--demo-full`` for ~25
   targets; kept and reused by later runs).
2. Replay it into ``--demo-dir/raw`` in time order (:mod:`sedmtui.feeder`): calibrations first,
   then one exposure every couple of seconds.
3. Run the engine as subprocesses on ``--demo-dir/redux``: ``sedmtui --batch --once`` limited to
   the calibration stage (the mini night has a *partial* calibration set, which the live
   engine would otherwise wait on), then a live ``sedmtui --batch`` that reduces exposures as
   they arrive and serves the console's requests.
4. Open the console on it. The engines are stopped when the console exits.

Without a terminal (stdout not a TTY) it runs headless: feed everything, ``--once``, print the
targets table and the night report, exit 0. Engine output goes to ``--demo-dir/engine.log``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sedmtui.feeder import Feeder, feed_plan, place

DEMO_NIGHT = "20261124"
"""UT night of the synthetic demo night (any date works)."""
REPO = Path(__file__).resolve().parents[1]


def demo_environment(environ: dict | None = None) -> dict[str, str]:
    """Environment of the engine subprocesses: SNID templates default to ``../shared/snid-templates-2.0``."""
    env = dict(os.environ if environ is None else environ)
    if not env.get("SEDMTUI_CLASSIFY_TEMPLATES_DIR"):
        cand = REPO.parent / "shared" / "snid-templates-2.0"
        if cand.is_dir():
            env["SEDMTUI_CLASSIFY_TEMPLATES_DIR"] = str(cand)
    env.pop("SEDMTUI_CONFIG", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def ensure_source(demo_dir: Path, night: str, full: bool, echo) -> Path:
    """The synthetic raw night (made once, reused)."""
    from engine.synth import SYNTH_FORMAT

    source = demo_dir / ("source-full" if full else "source-mini")
    done = source / ".done"
    if not (done.exists() and done.read_text().strip() == f"format {SYNTH_FORMAT}"):
        from engine.synth.night import write_night

        echo(f"synthesising a {'full' if full else 'mini'} SEDM night {night} into {source} (once)…")
        t0 = time.perf_counter()
        shutil.rmtree(source, ignore_errors=True)
        write_night(source, night, mini=not full, seed=1)
        done.write_text(f"format {SYNTH_FORMAT}")
        echo(f"  done in {time.perf_counter() - t0:.0f} s")
    return source


def engine_command(raw: Path, redux: Path, night: str, *, once: bool) -> list[str]:
    """The ``sedmtui --batch`` command line of the demo engine."""
    cmd = [sys.executable, "-m", "sedmtui", "--batch", "--night", night, "--raw-root", str(raw),
           "--redux-root", str(redux)]
    return cmd + (["--once"] if once else [])


class EngineProcess:
    """A ``sedmtui --batch`` subprocess whose output goes to a log file."""

    def __init__(self, cmd: list[str], env: dict, log: Path) -> None:
        self.log = open(log, "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)

    def wait(self, timeout: float | None = None) -> int | None:
        """Exit status, or None if still running after ``timeout``."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGINT (a clean engine stop), then SIGKILL after ``timeout``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            if self.wait(timeout) is None:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait_for_database(db: Path, timeout: float = 60.0) -> bool:
    """Wait until the engine created the database and its schema."""
    from engine.errors import SchemaError
    from engine.state.db import check_schema, connect

    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if db.exists():
            try:
                conn = connect(db)
                try:
                    check_schema(conn, require_current=True)
                    return True
                finally:
                    conn.close()
            except (SchemaError, Exception):  # noqa: BLE001 - still being created
                pass
        time.sleep(0.2)
    return False


def prepare(demo_dir: Path, source: Path) -> tuple[Path, Path]:
    """Fresh ``raw`` (with the reference catalogue) and ``redux`` directories."""
    raw, redux = demo_dir / "raw", demo_dir / "redux"
    for d in (raw, redux):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for f in (source / "catalog").glob("*"):
        place(f, raw / "catalog" / f.name)
    return raw, redux


def run_headless(source: Path, raw: Path, redux: Path, night: str, env: dict, log: Path) -> int:
    """No terminal: feed everything, reduce with ``--once``, print the targets and the report."""
    steps = feed_plan(source, night)
    feeder = Feeder(source, raw, steps)
    for step in steps:
        feeder.place_step(step)
    print(f"fed {sum(len(s.files) for s in steps)} raw frames into {raw}; reducing (log: {log})…", flush=True)
    t0 = time.perf_counter()
    rc = EngineProcess(engine_command(raw, redux, night, once=True), env, log).wait()
    print(f"engine --once finished with status {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
    if rc != 0:
        return rc or 1
    from engine.state.db import connect
    from engine.state.requests import submit_request

    conn = connect(redux / "sedm.db")
    submit_request(conn, "report", night=night, params={"comment": "sedmtui --demo (synthetic night)"}, user="demo")
    conn.close()
    rc = EngineProcess(engine_command(raw, redux, night, once=True), env, log).wait()
    from engine.commands import run_status

    run_status(argparse.Namespace(config=None, raw_root=str(raw), redux_root=str(redux), db=None, night=night,
                                  workers=None))
    report = redux / night / "report.txt"
    if report.exists():
        print("\n" + report.read_text(), end="")
    return 0 if rc == 0 else rc


def run_live(source: Path, raw: Path, redux: Path, night: str, env: dict, log: Path, ns) -> int:
    """Feed the night progressively, run the engine in the background, open the console."""
    steps = feed_plan(source, night)
    feeder = Feeder(source, raw, steps, interval_s=2.0)
    feeder.place_step(steps[0])
    env_cal = dict(env, SEDMTUI_ENGINE_STAGES="calibration")
    engines = [EngineProcess(engine_command(raw, redux, night, once=True), env_cal, log)]
    if not wait_for_database(redux / "sedm.db"):
        for e in engines:
            e.stop()
        print(f"sedmtui: the demo engine did not start (see {log})", file=sys.stderr)
        return 2
    stop = threading.Event()

    def controller() -> None:
        while engines[0].wait(0.5) is None:
            if stop.is_set():
                return
        if not stop.is_set():
            engines.append(EngineProcess(engine_command(raw, redux, night, once=False), env, log))
            feeder.start(1)

    threading.Thread(target=controller, name="demo-engine", daemon=True).start()
    try:
        from sedmtui.launch import run_console

        ns = argparse.Namespace(**{**vars(ns), "redux_root": str(redux), "raw_root": str(raw), "db": None,
                                   "night": night, "config": None})
        return run_console(ns)
    finally:
        stop.set()
        feeder.stop()
        for e in engines:
            e.stop()


def run_demo(ns: argparse.Namespace) -> int:
    """``sedmtui --demo``."""
    demo_dir = Path(ns.demo_dir).resolve()
    demo_dir.mkdir(parents=True, exist_ok=True)
    night = getattr(ns, "night", None) or DEMO_NIGHT
    tty = sys.stdout.isatty()
    echo = (lambda m: print(m, flush=True))
    source = ensure_source(demo_dir, night, bool(getattr(ns, "demo_full", False)), echo)
    raw, redux = prepare(demo_dir, source)
    env = demo_environment()
    if not env.get("SEDMTUI_CLASSIFY_TEMPLATES_DIR"):
        echo("note: no SNID templates (../shared/snid-templates-2.0 not found, SEDMTUI_CLASSIFY_TEMPLATES_DIR "
             "not set): the spectra will not be classified")
    log = demo_dir / "engine.log"
    log.write_text("")
    os.environ.pop("SEDMTUI_CONFIG", None)
    if not tty:
        return run_headless(source, raw, redux, night, env, log)
    return run_live(source, raw, redux, night, env, log, ns)


__all__ = ["EngineProcess", "demo_environment", "engine_command", "feed_plan", "run_demo"]
