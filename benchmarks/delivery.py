"""Benchmark delivery against its targets, on loopback stand-ins.

Usage::

    python benchmarks/delivery.py [--cycles 20] [--json OUT.json]

Measured:

* **latency**: an accepted extraction appears in the state -> its spectrum is stored on the
  SkyPortal stand-in (the engine's loop calling ``DeliveryService.step`` every 50 ms, as when
  idle), median and max over the night's spectra;
* **outage**: the time ``DeliveryService.step`` takes (what delivery adds to an engine loop
  iteration) while the destination holds every call, and while it refuses connections;
* **kill and restart**: ``sedmtui deliver run`` killed with SIGKILL at a random moment, N times,
  then a clean run: duplicates and lost spectra, annotations and statuses on the stand-in.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.delivery.service import DeliveryService
from engine.delivery.standins.base import Fault
from engine.delivery.standins.skyportal import SkyPortalStandin
from tests.engine.delivery.nightfake import (
    EXPOSURES,
    NIGHT,
    TOKEN,
    add_exposure,
    config_for,
    fake_night,
)
from tests.engine.delivery.test_cli_restart import env_for


def latency(tmp: Path) -> dict:
    portal = SkyPortalStandin(token=TOKEN)
    portal.start()
    try:
        config = config_for(tmp, portal.url)
        w = fake_night(config, exposures=[])
        svc = DeliveryService(config, w)
        out = []
        redux = Path(config.paths.redux_root)
        for i, (obs_id, name, q, req, snid) in enumerate(EXPOSURES):
            if q > 2 or not name.startswith("ZTF"):
                continue
            add_exposure(w, redux, NIGHT, obs_id, name, q, req, snid, seed=i)
            t0 = time.perf_counter()
            while not any(s["obj_id"] == name for s in portal.spectra.values()):
                svc.step([NIGHT], live=False)
                time.sleep(0.05)
            out.append(time.perf_counter() - t0)
        svc.close()
        return {"latency_s_median": statistics.median(out), "latency_s_max": max(out), "n": len(out)}
    finally:
        portal.stop()


def outage(tmp: Path) -> dict:
    portal = SkyPortalStandin(token=TOKEN)
    portal.start()
    portal.inject(Fault("GET", "/api/", "hold", delay_s=60.0, times=10**6))
    config = config_for(tmp / "hold", portal.url)
    config = dataclasses.replace(config, fritz=dataclasses.replace(config.fritz, timeout_s=60.0))
    w = fake_night(config)
    svc = DeliveryService(config, w)
    held = []
    for _ in range(40):
        t0 = time.perf_counter()
        svc.step([NIGHT], live=True)
        held.append(time.perf_counter() - t0)
        time.sleep(0.05)
    portal.release.set()
    svc.close(wait_s=5)
    url = portal.url
    portal.stop()
    config = config_for(tmp / "down", url)
    w = fake_night(config)
    svc = DeliveryService(config, w)
    down = []
    for _ in range(40):
        t0 = time.perf_counter()
        svc.step([NIGHT], live=True)
        down.append(time.perf_counter() - t0)
        time.sleep(0.05)
    svc.close()
    return {"step_ms_held_median": 1e3 * statistics.median(held), "step_ms_held_max": 1e3 * max(held),
            "step_ms_refused_median": 1e3 * statistics.median(down), "step_ms_refused_max": 1e3 * max(down)}


def many_exposures(n: int) -> list[tuple]:
    """``n`` acceptable ZTF exposures (1 minute apart), each with a request id and a SNID type."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [(f"03_{i:02d}_00", f"ZTF26{letters[i % 26] * 6}{letters[(i // 26) % 26]}", 0, 2000 + i, "Ia")
            for i in range(n)]


def kills(tmp: Path, cycles: int, n_exposures: int, engine: bool) -> dict:
    """SIGKILL the delivering process ``cycles`` times mid-delivery, then let it finish."""
    portal = SkyPortalStandin(token=TOKEN)
    portal.latency_s = (0.03, 0.1)  # slow around every call: kills land between a store and its record
    portal.start()
    try:
        config = config_for(tmp, portal.url)
        exposures = many_exposures(n_exposures)
        fake_night(config, exposures=exposures).release_lease()
        (tmp / "raw" / NIGHT).mkdir(parents=True, exist_ok=True)
        env = {**env_for(tmp, portal.url), "SEDMTUI_ENGINE_STAGES": "none", "SEDMTUI_ENGINE_WORKERS": "1",
               "SEDMTUI_DELIVERY_DRAIN_TIMEOUT_S": "60"}
        cmd = ([sys.executable, "-m", "sedmtui", "--batch", "--once", "--night", NIGHT] if engine else
               [sys.executable, "-m", "sedmtui", "deliver", "run", "--night", NIGHT, "--timeout", "60"])
        rng = random.Random(2026)
        window = (2.0, 3.5) if engine else (0.8, 1.6)  # the engine starts slower (lease, pool, watcher)
        killed = finished = 0
        for _ in range(cycles):
            proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(*window))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            else:
                finished += 1
            proc.wait()
        stored_before_final = len(portal.spectra)
        done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
        names = [s["obj_id"] for s in portal.spectra.values()]
        expected = {e[1] for e in exposures}
        import sqlite3

        with sqlite3.connect(config.paths.db_path) as conn:
            found = conn.execute("SELECT count(*) FROM events WHERE kind='delivery' AND (message LIKE "
                                 "'%found before sending%' OR message LIKE '%already%')").fetchone()[0]
        return {"process": "engine --batch --once" if engine else "deliver run", "cycles": cycles,
                "killed_mid_delivery": killed, "finished_before_kill": finished,
                "spectra_stored_before_final_run": stored_before_final, "final_exit": done.returncode,
                "spectra": len(names), "duplicates": len(names) - len(set(names)), "lost": len(expected - set(names)),
                "annotations": len(portal.annotations), "annotations_expected": 2 * len(expected),
                "status_posts": len(portal.statuses), "status_expected": len(expected),
                "calls_total": len(portal.calls),
                "found_already_there_after_a_restart": found}
    finally:
        portal.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--exposures", type=int, default=24, help="acceptable exposures of the killed night")
    ap.add_argument("--json")
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        res = {"latency": latency(tmp / "lat"), "outage": outage(tmp / "out")}
        res["kill_restart"] = [kills(tmp / "kill_engine", ns.cycles, 2 * ns.exposures, engine=True),
                               kills(tmp / "kill_run", ns.cycles, ns.exposures, engine=False)]
    print(json.dumps(res, indent=1))
    if ns.json:
        Path(ns.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
