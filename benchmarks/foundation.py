"""Benchmark the foundation: synthetic-night speed, ingest latency and state-tail latency.

    python benchmarks/foundation.py --json OUT.json [--skip-full] [--readers 1 4 8]

Writes::

    {"synth": {"mini": {"wall_s", "peak_rss_mb", "n_files"}, "full": {...}},
     "ingest": {"stable_s=2.0": {"n", "median_s", "p95_s", "max_s"}, "stable_s=0.5": {...}},
     "tail": {"readers=4": {"n_events", "median_ms", "p95_ms", "max_ms", "reader_cpu_pct"}, ...}}

Synth: ``sedmtui synth`` in a subprocess; peak RSS from ``wait4``.

Ingest latency: a headless engine (``--batch``, ``SEDMTUI_ENGINE_STAGES=none``) watches an
empty raw root; the benchmark writes the frames of a mini night into it one at a time, each
in two chunks 0.2 s apart as a camera would, and records the time from the file's close to
its ``frames`` row (with its planned kind) being visible to a reader polling every 20 ms. The
file is complete only once its size and mtime have been stable for ``watch.stable_s``, so
that setting is the floor of the latency; both the default and a short value are measured.

Tail latency: this process holds the writer lease and commits one event every 50 ms for
10 s; N reader processes each poll ``PRAGMA data_version`` every 100 ms (the console's tail
period) and fetch ``events_after``. Latency = time the reader has the event minus the time
the writer committed it (both ``time.time()`` on this machine).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.state.db import open_writer  # noqa: E402
from engine.state.reader import StateReader  # noqa: E402
from engine.state.writer import StateWriter  # noqa: E402

NIGHT = "20261124"
CLI = [sys.executable, "-m", "sedmtui"]


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """Run ``cmd``; wall time [s] and the child's peak RSS [MB]."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024.0


def bench_synth(work: Path, *, full: bool) -> dict:
    out = {}
    for label, extra in [("mini", ["--mini"])] + ([("full", [])] if full else []):
        root = work / f"synth-{label}"
        wall, rss = run_measured(CLI + ["synth", str(root), "--night", NIGHT, "--seed", "3", *extra])
        n = sum(1 for p in root.rglob("*.fits"))
        out[label] = {"wall_s": round(wall, 2), "peak_rss_mb": round(rss, 1), "n_files": n}
        print(f"synth {label}: {wall:.1f} s, {rss:.0f} MB, {n} files", flush=True)
    return out


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def bench_ingest(work: Path, source: Path, stable_s: float, n_frames: int) -> dict:
    """Write frames into a watched raw root and time each until its row is visible."""
    raw = work / f"raw-{stable_s}"
    (raw / NIGHT).mkdir(parents=True)
    redux = work / f"redux-{stable_s}"
    db_path = redux / "sedm.db"
    env = dict(os.environ, SEDMTUI_ENGINE_STAGES="none", SEDMTUI_WATCH_STABLE_S=str(stable_s),
               SEDMTUI_WATCH_SWEEP_S="0.1", SEDMTUI_WATCH_FORCE_POLLING="false")
    engine = subprocess.Popen(CLI + ["--batch", "--raw-root", str(raw), "--redux-root", str(redux), "--db", str(db_path),
                                     "--night", NIGHT], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        while not db_path.exists():
            if engine.poll() is not None:
                raise SystemExit(f"the engine exited with status {engine.returncode} before creating {db_path}")
            time.sleep(0.05)
        time.sleep(1.0)
        reader = StateReader(db_path, readonly=True)
        files = sorted((source / NIGHT).glob("ifu*.fits"))[:n_frames]
        latencies = []
        for path in files:
            data = path.read_bytes()
            dest = raw / NIGHT / path.name
            with open(dest, "wb") as fh:
                fh.write(data[: len(data) // 2])
                fh.flush()
                time.sleep(0.2)
                fh.write(data[len(data) // 2:])
            t_complete = time.time()
            while True:
                rows = reader.query("SELECT kind FROM frames WHERE file = ? AND kind IS NOT NULL", [path.name])
                if rows:
                    latencies.append(time.time() - t_complete)
                    break
                if time.time() - t_complete > 60 or engine.poll() is not None:
                    raise SystemExit(f"{path.name} never appeared in the frames table")
                time.sleep(0.02)
        reader.close()
    finally:
        engine.terminate()
        engine.wait(timeout=30)
    result = {"n": len(latencies), "median_s": round(statistics.median(latencies), 3),
              "p95_s": round(_percentile(latencies, 0.95), 3), "max_s": round(max(latencies), 3)}
    print(f"ingest stable_s={stable_s}: {result}", flush=True)
    return result


def _reader_process(db_path: str, poll_s: float, duration_s: float, queue) -> None:
    reader = StateReader(db_path, readonly=True)
    last_version = reader.data_version()
    last_id = reader.max_event_id()
    latencies = []
    cpu0 = time.process_time()
    t_end = time.time() + duration_s
    while time.time() < t_end:
        version = reader.data_version()
        if version != last_version:
            last_version = version
            now = time.time()
            for event in reader.events_after(last_id):
                last_id = event.id
                if event.kind == "bench":
                    latencies.append(now - float(event.payload["t"]))
        time.sleep(poll_s)
    queue.put((latencies, (time.process_time() - cpu0) / duration_s))
    reader.close()


def bench_tail(work: Path, n_readers: int, duration_s: float = 10.0, period_s: float = 0.05,
               poll_s: float = 0.1) -> dict:
    db_path = work / f"tail-{n_readers}.db"
    writer = StateWriter(open_writer(db_path))
    writer.acquire_lease(30.0)

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_reader_process, args=(str(db_path), poll_s, duration_s + 1.0, queue))
             for _ in range(n_readers)]
    for p in procs:
        p.start()
    time.sleep(1.0)
    t_end = time.time() + duration_s
    n = 0
    while time.time() < t_end:
        with writer.transaction():
            writer.event("bench", f"event {n}", payload={"t": time.time()})
        n += 1
        time.sleep(period_s)
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    writer.release_lease()
    lat = [x * 1000.0 for r, _ in results for x in r]
    cpu = statistics.mean(c for _, c in results) * 100.0
    out = {"n_events": n, "n_seen": len(lat), "median_ms": round(statistics.median(lat), 1),
           "p95_ms": round(_percentile(lat, 0.95), 1), "max_ms": round(max(lat), 1),
           "reader_cpu_pct": round(cpu, 2)}
    print(f"tail readers={n_readers}: {out}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True, help="where to write the figures")
    ap.add_argument("--skip-full", action="store_true", help="do not synthesise a full night")
    ap.add_argument("--readers", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--frames", type=int, default=12, help="frames written in the ingest test")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sedmtui-bench-"))
    try:
        figures = {"synth": bench_synth(work, full=not args.skip_full)}
        figures["ingest"] = {f"stable_s={s}": bench_ingest(work, work / "synth-mini", s, args.frames) for s in (2.0, 0.5)}
        figures["tail"] = {f"readers={n}": bench_tail(work, n) for n in args.readers}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
