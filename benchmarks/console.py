"""Benchmark the night console against its targets, with the real ``sedmtui`` process in tmux.

Usage::

    python benchmarks/console.py --json OUT.json [--redux REDUX --raw RAW] [--repeat N]

Without ``--redux`` a mini synthetic night is synthesised and reduced first (about a minute).
The reduced night is never modified: every measurement runs on a copy (products hard-linked,
database copied). Measured:

* **first frame**: ``tmux new-session`` -> the target table on screen (``capture-pane`` polled
  every 5 ms), median of N;
* **nudge**: CPU per centroid nudge in-process (Pilot; press + repaint, minus the same for an
  unbound key) and bytes sent to the terminal per nudge (``tmux pipe-pane``, truecolor);
* **event latency**: a row + event committed by another process -> visible in the real console;
* **re-extraction**: ``enter`` -> the new spectrum on screen against a live ``sedmtui --batch``,
  split into the engine's share (request created -> finished, from the request row) and the
  console's (finished -> on screen);
* **idle**: bytes sent in 10 s by an idle console (night screen and target screen) while the
  live engine heartbeats;
* **hand-set centroid** (``--manual``): re-extractions of the neighbour case (``04_39_00`` of the
  mini night, seed 1) with the centroid given by hand: on the target's true position, and on
  empty sky next to it (``redex 04_39_00 1 1``, the issue's case): how far the fit moved and
  the quality it got.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
NIGHT = "20261124"
Q5 = "04_21_30"
EXE = Path(sys.executable).with_name("sedmtui")


def engine_env() -> dict:
    env = dict(os.environ)
    env.pop("SEDMTUI_CONFIG", None)
    tdir = env.get("SEDMTUI_CLASSIFY_TEMPLATES_DIR") or str(REPO.parent / "shared" / "snid-templates-2.0")
    if Path(tdir).is_dir():
        env["SEDMTUI_CLASSIFY_TEMPLATES_DIR"] = tdir
    return env


def build_night(work: Path) -> tuple[Path, Path]:
    raw, redux = work / "raw", work / "redux"
    print("synthesising and reducing a mini night (about a minute)…", flush=True)
    subprocess.run([str(EXE), "synth", str(raw), "--night", NIGHT, "--mini", "--seed", "1"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([str(EXE), "--batch", "--night", NIGHT, "--once", "--raw-root", str(raw), "--redux-root",
                    str(redux)], check=True, env=engine_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return raw, redux


def copy_redux(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, copy_function=os.link, ignore=shutil.ignore_patterns("sedm.db*"))
    s, d = sqlite3.connect(src / "sedm.db"), sqlite3.connect(dst / "sedm.db")
    s.backup(d)
    s.close()
    d.close()
    return dst


class Tmux:
    """A detached tmux session running the real console."""

    def __init__(self, name: str, redux: Path, raw: Path, size=(160, 50), colors: str = "truecolor") -> None:
        self.name = name
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
        self.t0 = time.perf_counter()
        cmd = (f"env TERM=xterm-256color COLORTERM=truecolor {EXE} --redux-root {redux} --raw-root {raw} "
               f"--night {NIGHT} --colors {colors}")
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", str(size[0]), "-y", str(size[1]), cmd],
                       check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True).stdout

    def wait_for(self, text: str, timeout: float = 60.0, step: float = 0.005) -> float:
        t_end = time.perf_counter() + timeout
        while time.perf_counter() < t_end:
            if text in self.screen():
                return time.perf_counter()
            time.sleep(step)
        raise TimeoutError(f"{text!r} not on screen:\n{self.screen()}")

    def keys(self, *keys: str, gap: float = 0.05) -> None:
        for k in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, k], check=True)
            time.sleep(gap)

    def pipe(self, path: Path | None) -> None:
        """Copy what the console sends to the terminal into ``path`` (None stops)."""
        args = ["tmux", "pipe-pane", "-t", self.name]
        subprocess.run(args + ([f"cat >> {path}"] if path else []), check=True)

    def kill(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def open_target(s: Tmux) -> None:
    s.keys("/", *Q5, "Enter")
    s.wait_for(f"{Q5} ZTF")
    for _ in range(6):  # a loaded machine: the first enter can reach the filter box before it lets go
        time.sleep(0.3)
        s.keys("Enter")
        try:
            s.wait_for("spectrum: ", timeout=10)
            break
        except TimeoutError:
            continue
    else:
        s.wait_for("spectrum: ", timeout=1)
    time.sleep(1.0)


# --------------------------------------------------------------------------------------------- measurements
def first_frame(redux: Path, raw: Path, n: int) -> dict:
    times = []
    for i in range(n):
        s = Tmux(f"bench-ff-{i}", redux, raw)
        t1 = s.wait_for("03:06:30")
        times.append(t1 - s.t0)
        s.kill()
        time.sleep(0.3)
    return {"median_s": statistics.median(times), "max_s": max(times), "runs_s": times}


def nudge_bytes(redux: Path, raw: Path, work: Path, n: int = 10) -> dict:
    s = Tmux("bench-nudge", redux, raw)
    s.wait_for("03:06:30")
    open_target(s)
    out = {}
    for key, label in (("l", "nudge"), ("L", "fine_nudge")):
        s.keys(key)
        time.sleep(0.5)
        f = work / f"nudge-{label}.bin"
        f.unlink(missing_ok=True)
        s.pipe(f)
        time.sleep(0.3)
        for _ in range(n):
            s.keys(key, gap=0.3)
        time.sleep(0.5)
        s.pipe(None)
        time.sleep(0.2)
        out[f"{label}_bytes"] = (f.stat().st_size if f.exists() else 0) / n
    s.kill()
    return out


def nudge_cpu(redux: Path, n: int = 40) -> dict:
    """Process CPU per nudge, in-process (Pilot), minus an unbound key's cost."""
    from sedmtui.app import NightApp
    from sedmtui.screens.target import TargetScreen
    from sedmtui.settings import ConsoleSettings

    async def run() -> dict:
        app = NightApp(db_path=redux / "sedm.db", night=NIGHT, redux_root=redux, settings=ConsoleSettings())
        async with app.run_test(size=(160, 50)) as pilot:
            app.open_target(Q5)
            while not (isinstance(app.screen, TargetScreen) and app.screen.data is not None):
                await pilot.pause(0.05)
            await pilot.pause(0.5)

            async def cost(key: str) -> float:
                for _ in range(5):
                    await pilot.press(key)
                    await pilot.pause()
                c0 = time.process_time()
                for _ in range(n):
                    await pilot.press(key)
                    await pilot.pause()
                return (time.process_time() - c0) / n

            base = await cost("f12")
            nudge = await cost("l")
            fine = await cost("L")
            return {"nudge_cpu_ms": 1e3 * (nudge - base), "fine_nudge_cpu_ms": 1e3 * (fine - base),
                    "pilot_baseline_cpu_ms": 1e3 * base}

    return asyncio.run(run())


def event_latency(redux: Path, raw: Path, n: int) -> dict:
    s = Tmux("bench-event", redux, raw)
    s.wait_for("03:06:30")
    time.sleep(1.0)
    lat = []
    conn = sqlite3.connect(redux / "sedm.db", timeout=10)
    for i in range(n):
        obs_id, name = f"06_{i:02d}_00", f"ZTF26bench{i:02d}"
        with conn:
            conn.execute("INSERT INTO observations (night, obs_id, object, kind, state, stage) VALUES (?, ?, ?, "
                         "'science', 'waiting', 'waiting for calibration')", [NIGHT, obs_id, name])
            conn.execute("INSERT INTO events (ts, night, kind, obs_id, message) VALUES (?, ?, 'observation', ?, ?)",
                         [dt.datetime.now(dt.UTC).isoformat(), NIGHT, obs_id, f"{name}: new"])
        t0 = time.perf_counter()
        lat.append(s.wait_for(name, timeout=10) - t0)
        time.sleep(0.3)
    conn.close()
    s.kill()
    return {"median_s": statistics.median(lat), "max_s": max(lat), "runs_s": lat}


def _iso(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def reextraction(redux: Path, raw: Path, n: int) -> dict:
    s = Tmux("bench-redex", redux, raw)
    s.wait_for("engine ●", timeout=60)
    open_target(s)
    runs = []
    for i in range(n):
        s.keys("l" if i % 2 == 0 else "h")
        time.sleep(0.5)
        t_press = time.time()
        t0 = time.perf_counter()
        s.keys("Enter")
        t1 = s.wait_for("ready: a accept", timeout=300, step=0.01)
        shown = time.time() - (time.perf_counter() - t1)
        conn = sqlite3.connect(redux / "sedm.db")
        created, claimed, finished = conn.execute(
            "SELECT created, claimed_at, finished_at FROM requests WHERE kind='reextract' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        conn.close()
        runs.append({"total_s": t1 - t0, "engine_s": _iso(finished) - _iso(created),
                     "engine_queue_s": _iso(claimed) - _iso(created), "console_s": shown - _iso(finished),
                     "file_request_s": _iso(created) - t_press})
        s.keys("x")
        s.wait_for("Reject ")
        s.keys("y")
        s.wait_for("file(s) removed", timeout=60)
    s.kill()
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return {"median": med, "runs": runs}


def idle_bytes(redux: Path, raw: Path, work: Path, seconds: float = 10.0, minute: bool = True) -> dict:
    s = Tmux("bench-idle", redux, raw)
    s.wait_for("03:06:30")
    out = {}
    for label in ("night", "target"):
        if label == "target":
            open_target(s)
        time.sleep(2.0)
        now = dt.datetime.now()
        if now.second > 60 - seconds - 3:  # keep the minute tick of the clock out of the window
            time.sleep(61 - now.second)
        f = work / f"idle-{label}.bin"
        f.unlink(missing_ok=True)
        s.pipe(f)
        time.sleep(seconds)
        s.pipe(None)
        time.sleep(0.2)
        out[f"{label}_bytes_{seconds:.0f}s"] = f.stat().st_size if f.exists() else 0
    if not minute:
        s.kill()
        return out
    # the clock: one header repaint per minute
    f = work / "idle-minute.bin"
    f.unlink(missing_ok=True)
    s.keys("escape")
    time.sleep(1.0)
    s.pipe(f)
    time.sleep(61.0)
    s.pipe(None)
    out["night_bytes_per_minute"] = f.stat().st_size if f.exists() else 0
    s.kill()
    return out


def manual_centroid(redux: Path, raw: Path) -> dict:
    """Hand-set centroids on the neighbour case, served by ``sedmtui --batch --once``."""
    from engine.state.db import connect
    from engine.state.requests import submit_request

    truth = json.loads((raw / NIGHT / "truth.json").read_text())
    exp = next(e for e in truth["exposures"] if e["obs_id"] == "04_39_00")
    tx, ty = exp["position"]
    cases = {"on the target": ([round(tx, 2), round(ty, 2)], 0.5), "redex 1 1 (default radius)": ([1.0, 1.0], None),
             "redex 1 1, radius 0.5": ([1.0, 1.0], 0.5)}
    conn = connect(redux / "sedm.db")
    for (centroid, radius) in cases.values():
        params = {"centroid": centroid, "region": None, "lstep": 1}
        if radius is not None:
            params["centroid_radius"] = radius
        submit_request(conn, "reextract", night=NIGHT, target="04_39_00", params=params)
    conn.close()
    subprocess.run([str(EXE), "--batch", "--night", NIGHT, "--once", "--raw-root", str(raw), "--redux-root", str(redux)],
                   env=engine_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    db = sqlite3.connect(redux / "sedm.db")
    rows = db.execute("SELECT guess_x, guess_y, centroid_x, centroid_y, quality, quality_reason, facts_json FROM extractions "
                      "WHERE obs_id='04_39_00' AND srcpos='manual' ORDER BY id").fetchall()
    db.close()
    out = {"truth": [tx, ty]}
    for gx, gy, cx, cy, q, reason, facts in rows:
        f = json.loads(facts or "{}")
        label = next((k for k, (c, r) in cases.items() if c == [round(gx, 2), round(gy, 2)]
                      and (r or 2.0) == f.get("centroid_radius")), f"({gx}, {gy})")
        out[label] = {"hand_set": [gx, gy], "fitted": [cx, cy], "moved": f.get("centroid_moved"),
                      "allowed": f.get("centroid_radius"), "quality": q, "reason": reason}
    return out


class LiveEngine:
    def __init__(self, redux: Path, raw: Path, log: Path) -> None:
        self.log = open(log, "w")
        self.proc = subprocess.Popen([str(EXE), "--batch", "--night", NIGHT, "--raw-root", str(raw), "--redux-root",
                                      str(redux)], env=engine_env(), stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redux", help="a reduced mini night's reduction root (not modified)")
    ap.add_argument("--raw", help="its raw root")
    ap.add_argument("--json", required=True, help="output JSON")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-minute", action="store_true", help="skip the 61 s clock-tick measurement")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (terminal byte captures)")
    ap.add_argument("--manual", action="store_true", help="also measure hand-set centroids on the neighbour case")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is needed", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="sedmtui-bench-"))
    # keep one session alive: the tmux server exits with its last session, racing the next one
    subprocess.run(["tmux", "kill-session", "-t", "bench-keeper"], capture_output=True)  # left by an interrupted run
    subprocess.run(["tmux", "new-session", "-d", "-s", "bench-keeper", "sleep 7200"], check=True)
    if args.redux:
        raw, redux_src = Path(args.raw), Path(args.redux)
    else:
        raw, redux_src = build_night(work)
    out: dict = {"date": dt.datetime.now(dt.UTC).isoformat(), "cpus": os.cpu_count(),
                 "load_avg_start": os.getloadavg()}
    print("first frame…", flush=True)
    out["first_frame"] = first_frame(copy_redux(redux_src, work / "r-ff"), raw, args.repeat)
    print("nudge…", flush=True)
    out["nudge"] = {**nudge_cpu(copy_redux(redux_src, work / "r-cpu")),
                    **nudge_bytes(copy_redux(redux_src, work / "r-nb"), raw, work)}
    print("event latency…", flush=True)
    out["event_latency"] = event_latency(copy_redux(redux_src, work / "r-ev"), raw, 2 * args.repeat)
    live = copy_redux(redux_src, work / "r-live")
    engine = LiveEngine(live, raw, work / "engine.log")
    try:
        print("re-extraction (live engine)…", flush=True)
        out["reextraction"] = reextraction(live, raw, max(2, args.repeat // 2))
        print("idle…", flush=True)
        out["idle"] = idle_bytes(live, raw, work, minute=not args.skip_minute)
    finally:
        engine.stop()
    if args.manual:
        print("hand-set centroid…", flush=True)
        out["manual_centroid"] = manual_centroid(copy_redux(redux_src, work / "r-manual"), raw)
        for label, r in out["manual_centroid"].items():
            if isinstance(r, dict):
                print(f"hand-set centroid {label:<28} fit moved {r['moved']} (allowed {r['allowed']}) -> Q{r['quality']}")
    out["load_avg_end"] = os.getloadavg()
    Path(args.json).write_text(json.dumps(out, indent=1))
    ff, nd, ev, rx, idle = (out["first_frame"], out["nudge"], out["event_latency"], out["reextraction"]["median"],
                            out["idle"])
    print(f"first frame (tmux, real process)     {ff['median_s']:.3f} s median, {ff['max_s']:.3f} s max  (target 0.5)")
    print(f"nudge CPU                            {nd['nudge_cpu_ms']:.1f} ms (¼ nudge {nd['fine_nudge_cpu_ms']:.1f} ms)"
          "  (target 10)")
    print(f"nudge bytes to the terminal          {nd['nudge_bytes']:.0f} B (¼ nudge {nd['fine_nudge_bytes']:.0f} B)"
          "  (target 4096)")
    print(f"event commit -> on screen            {ev['median_s']:.3f} s median, {ev['max_s']:.3f} s max  (target 1)")
    print(f"re-extraction enter -> new spectrum  {rx['total_s']:.2f} s: engine {rx['engine_s']:.2f} s "
          f"(queue {rx['engine_queue_s']:.2f} s), console {rx['console_s']:.2f} s  (target 1.5, engine allowing)")
    print(f"idle console                         night {idle['night_bytes_10s']} B / 10 s, target screen "
          f"{idle['target_bytes_10s']} B / 10 s, {idle.get('night_bytes_per_minute', '-')} B per minute (clock)  (target 0)")
    if args.keep:
        print(f"work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["tmux", "kill-session", "-t", "bench-keeper"], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
