"""Archive reprocessing throughput: nights per hour for 1 and 2 Dask workers, the scheduler's
overhead per task, and each worker's peak memory.

``python benchmarks/reprocess.py --nights 2 --workers 1 2 [--repeat 1] [--raw RAW] [--json OUT]``

* takes ``--nights`` mini nights from ``--raw``, synthesising the missing ones (seeds 11, 12, ...; kept);
* for each worker count, reduces them all with ``sedmtui reprocess`` on a local cluster of that
  many single-threaded worker processes, into a fresh reduction root, ``--repeat`` times;
* prints, per worker count, the median wall time, nights and exposures per hour, the worker
  time per exposure task, what the client sees beyond it (submitted -> recorded minus the
  task's wall time, which includes waiting for a free worker), the result's way back (the
  recipe returned -> recorded by the client), the round trip of an empty task through the
  scheduler (200 in a row: the scheduler's own cost per task), and the largest peak resident
  memory of a worker process;
* and the speed-up of the largest worker count over 1 worker.

The figures depend on the machine's load: run it on a quiet machine, or quote medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import load_config  # noqa: E402
from engine.reprocess.cluster import connect  # noqa: E402
from engine.reprocess.progress import Progress  # noqa: E402
from engine.reprocess.runner import Reprocessor  # noqa: E402
from engine.reprocess.worker import noop  # noqa: E402


def synthesise(raw: Path, n: int, first: str = "20261110") -> list[str]:
    """``n`` mini nights: those already in ``raw`` (a ``truth.json``), then new ones two days apart
    (seeds 11, 12, ...), written once."""
    from engine.synth.night import write_night

    nights = sorted(d.name for d in raw.iterdir() if (d / "truth.json").exists())[:n]
    d0 = dt.datetime.strptime(first, "%Y%m%d")
    i = 0
    while len(nights) < n:
        night = (d0 + dt.timedelta(days=2 * i)).strftime("%Y%m%d")
        if night not in nights:
            t0 = time.perf_counter()
            write_night(raw, night, mini=True, seed=11 + i, workers=2)
            print(f"synthesised {night} in {time.perf_counter() - t0:.0f} s", flush=True)
            nights.append(night)
        i += 1
    return sorted(nights)


def scheduler_round_trip(client, n: int = 200) -> float:
    """Median time of an empty task, submitted and waited for one at a time [s]."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        client.submit(noop, key=f"noop-{i}-{time.time_ns()}", pure=False).result()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def one_run(raw: Path, nights: list[str], workers: int, templates: str) -> dict:
    """Reduce every night once on ``workers`` local worker processes; the run's figures."""
    redux = Path(tempfile.mkdtemp(prefix=f"reprocess-{workers}w-"))
    env = {"SEDMTUI_ENGINE_WORKERS": str(workers)}
    if templates:
        env["SEDMTUI_CLASSIFY_TEMPLATES_DIR"] = templates
    config = load_config(None, env=env, overrides={"paths": {"raw_root": str(raw), "redux_root": str(redux)}})
    conn = connect(local_workers=workers, templates_dir=templates)
    try:
        conn.client.wait_for_workers(workers)
        noop_s = scheduler_round_trip(conn.client)
        t0 = time.perf_counter()
        rep = Reprocessor(config, nights, conn.client, progress=Progress(open(os.devnull, "w"), tty=False))  # noqa: SIM115
        rep.run()
        wall = time.perf_counter() - t0
    finally:
        conn.close()
        shutil.rmtree(redux, ignore_errors=True)
    tasks = rep.task_figures
    exposures = [t for t in tasks if t["key"].startswith("science:")]
    overhead = [t["latency_s"] - t["wall_s"] for t in exposures]
    back = [t["return_s"] for t in exposures if "return_s" in t]
    peak: dict[str, float] = {}
    for t in tasks:
        peak[t["worker"]] = max(peak.get(t["worker"], 0.0), t["peak_rss_mb"])
    done = sum(s.done for s in rep.statuses)
    failed = sum(s.failed for s in rep.statuses)
    return {"workers": workers, "wall_s": round(wall, 1), "nights": len(nights), "exposures_done": done,
            "exposures_failed": failed, "nights_per_hour": round(len(nights) / wall * 3600, 2),
            "exposures_per_hour": round((done + failed) / wall * 3600, 1),
            "exposure_task_wall_s_median": round(statistics.median(t["wall_s"] for t in exposures), 2) if exposures else None,
            "overhead_s_median": round(statistics.median(overhead), 3) if overhead else None,
            "return_s_median": round(statistics.median(back), 3) if back else None,
            "noop_round_trip_s_median": round(noop_s, 4), "peak_rss_mb_per_worker": peak,
            "peak_rss_mb_max": max(peak.values()) if peak else None}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and optionally write the figures."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nights", type=int, default=2)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--raw", type=Path, default=Path("bench-reprocess/raw"))
    p.add_argument("--templates", default=os.environ.get("SEDMTUI_CLASSIFY_TEMPLATES_DIR", ""))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    args.raw.mkdir(parents=True, exist_ok=True)
    nights = synthesise(args.raw.resolve(), args.nights)
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    out: dict = {"nights": nights, "load_average_start": os.getloadavg(), "runs": []}
    medians = {}
    for w in args.workers:
        runs = []
        for r in range(args.repeat):
            fig = one_run(args.raw.resolve(), nights, w, args.templates)
            runs.append(fig)
            print(f"{w} worker(s), run {r + 1}: {json.dumps(fig)}", flush=True)
        out["runs"].extend(runs)
        med = {k: statistics.median(f[k] for f in runs) for k in ("wall_s", "nights_per_hour", "exposures_per_hour")
               if all(f[k] is not None for f in runs)}
        for k in ("exposure_task_wall_s_median", "overhead_s_median", "return_s_median", "noop_round_trip_s_median",
                  "peak_rss_mb_max"):
            vals = [f[k] for f in runs if f[k] is not None]
            med[k] = statistics.median(vals) if vals else None
        medians[w] = med
        print(f"{w} worker(s), median of {len(runs)}: {med['nights_per_hour']:.1f} nights/h, "
              f"{med['exposures_per_hour']:.0f} exposures/h, {med['exposure_task_wall_s_median']} s per exposure task, "
              f"submitted -> recorded beyond the task {med['overhead_s_median']} s (queueing included), result "
              f"-> recorded {med['return_s_median']} s, empty task round trip {med['noop_round_trip_s_median']} s, "
              f"peak {med['peak_rss_mb_max']} MB per worker", flush=True)
    if len(medians) > 1 and min(medians) in medians:
        lo, hi = min(medians), max(medians)
        out["speedup"] = round(medians[hi]["nights_per_hour"] / medians[lo]["nights_per_hour"], 2)
        print(f"speed-up {hi} vs {lo} worker(s): {out['speedup']}x")
    out["medians"] = medians
    out["load_average_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
