"""Issue 15 figures: a live engine under hostile inputs, a request flood and kill -9.

Run (not collected by pytest)::

    python -m tests.engine.reliability_figures --raw RAW_ROOT_OF_A_MINI_NIGHT [--seconds 60] [--rate 50]
        [--kills 5] [--json OUT.json]

What it does, in a scratch directory:

1. copies the night and plants hostile inputs (unparsable cards, impossible times, a
   ``20261399`` directory, a negative ``NAXIS1``, a non-FITS file, ``EXPTIME = -5``,
   ``AIRMASS = 0``), then starts ``sedmtui --batch`` in watch mode with a *relative*
   ``--raw-root`` and two workers;
2. files requests at ``--rate`` per second for ``--seconds`` (valid, refused and malformed
   ones, some written straight into the table, some with terminal escapes) while the engine
   reduces, and writes one raw file slowly (pauses longer than ``stable_s``);
3. reports: engine errors, requests answered, each hostile input's recorded reason, escape
   bytes in events, frames ingested twice, the slow file's ingest latency, whether watch mode
   calibrated the partial set;
4. ``--kills`` times: starts the engine, ``kill -9`` at a random moment, counts orphaned
   processes 3 s later and times the restart until the new engine holds the lease;
5. with ``--compare``: lets the killed run finish the night, reduces the same raw data
   undisturbed (``--once``) and compares the products (data arrays, spectrum columns) and
   the rows (exposures, current extractions, calibration).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.engine.reliability_helpers import alive, card, descendants, header_block, write_raw

NIGHT = "20261124"
REPO = Path(__file__).resolve().parents[2]


def q(db: Path, sql: str, params=()) -> list[tuple]:
    for _ in range(50):
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as c:
                return c.execute(sql, list(params)).fetchall()
        except sqlite3.OperationalError:
            time.sleep(0.1)
    return []


def plant_hostile(raw: Path) -> dict[str, str]:
    """Write the hostile files; ``{file: what it is}``."""
    night = raw / NIGHT
    planted = {
        "ifu20261124_09_00_01.fits": ("OBJECT with ESC and newline", {"OBJECT": "'ZTF\x1b[31mbad\nx'"}),
        "ifu20261124_09_00_02.fits": ("JD = NaN", {"JD": "NaN"}),
        "ifu20261124_09_00_03.fits": ("EXPTIME = -5", {"EXPTIME": "-5"}),
        "ifu20261124_09_00_04.fits": ("AIRMASS = 0", {"AIRMASS": "0"}),
        "ifu20261124_99_99_98.fits": ("impossible time in the name", {}),
        "ifu20261124_09_00_05.fits": ("OBJECT with markup", {"OBJECT": "'ZTFbad[/nope]'"}),
    }
    out = {}
    for name, (what, values) in planted.items():
        write_raw(night / name, **values)
        out[name] = what
    ext = header_block([card("XTENSION", "'IMAGE   '"), card("BITPIX", "16"), card("NAXIS", "1"),
                        card("NAXIS1", "-2880"), card("PCOUNT", "0"), card("GCOUNT", "1")])
    write_raw(night / "ifu20261124_09_00_06.fits", extra=ext + b"\0" * 2880)
    out["ifu20261124_09_00_06.fits"] = "extension with NAXIS1 = -2880"
    (night / "ifu20261124_09_00_07.fits").write_bytes(b"not a fits file" * 192)
    out["ifu20261124_09_00_07.fits"] = "not FITS"
    write_raw(raw / "20261399" / "ifu20261399_03_00_00.fits")
    return out


def start_engine(work: Path, log) -> subprocess.Popen:
    env = dict(os.environ, SEDMTUI_ENGINE_WORKERS="2", SEDMTUI_WATCH_STABLE_S="1.0", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "sedmtui", "--batch", "--raw-root", "raw", "--redux-root", "redux"]
    return subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_lease(db: Path, pid: int, timeout: float = 60.0) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if db.exists() and q(db, "SELECT 1 FROM engine WHERE status='running' AND owner LIKE ?", [f"%:{pid}"]):
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def flood(db: Path, seconds: float, rate: float, stats: dict) -> None:
    """File requests at ``rate``/s: a mix a console, a script and a hostile client would send."""
    from engine.errors import RequestError
    from engine.state.requests import submit_request

    conn = sqlite3.connect(db, timeout=10)
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < seconds:
        i += 1
        kind = i % 6
        try:
            if kind == 0:
                submit_request(conn, "report", night=NIGHT, user="flood")
            elif kind == 1:
                submit_request(conn, "recover", night=NIGHT, target="23_59_59", user="flood")
            elif kind == 2:
                submit_request(conn, "reextract", night=NIGHT, target="03_00_00",
                               params={"centroid": [float("nan"), 0.0]}, user="flood")
            elif kind == 3:
                submit_request(conn, "reextract", night=NIGHT, target="03_00_00",
                               params={"region": {"include": "abc"}}, user="flood")
            elif kind == 4:
                with conn:
                    conn.execute("INSERT INTO requests (created, user, kind, night, target, params_json, status) "
                                 "VALUES ('t', 'hostile', 'reextract', ?, ?, '{not json', 'pending')",
                                 [NIGHT, "03_00_00"])
            else:
                with conn:
                    conn.execute("INSERT INTO requests (created, user, kind, night, target, params_json, status) "
                                 "VALUES ('t', 'hostile', 'recover', ?, ?, '{}', 'pending')",
                                 [NIGHT, "\x1b]0;pwned\x07\x1b[2J"])
            stats["filed"] += 1
        except RequestError:
            stats["refused_at_filing"] += 1
        except sqlite3.Error as exc:
            stats["filing_errors"].append(str(exc))
        next_t = t0 + i / rate
        time.sleep(max(0.0, next_t - time.monotonic()))
    conn.close()


def slow_write(src: Path, dst: Path, pause_s: float, result: dict) -> None:
    data = src.read_bytes()
    chunk = max(2880, len(data) // 4 // 2880 * 2880)
    with open(dst, "wb") as fh:
        for i in range(0, len(data), chunk):
            fh.write(data[i : i + chunk])
            fh.flush()
            if i + chunk < len(data):
                time.sleep(pause_s)
    result["completed"] = time.time()


def live_run(raw_src: Path, work: Path, seconds: float, rate: float) -> dict:
    raw = work / "raw"
    shutil.copytree(raw_src, raw, ignore=shutil.ignore_patterns("truth.json"))
    hostile = plant_hostile(raw)
    db = work / "redux" / "sedm.db"
    log = open(work / "engine.log", "w")
    proc = start_engine(work, log)
    figures: dict = {"hostile": {}}
    if wait_lease(db, proc.pid, 120) is None:
        raise SystemExit("engine did not start; see engine.log")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not q(db, "SELECT 1 FROM events WHERE message LIKE 'watching %'"):
        time.sleep(0.1)  # the pool is up and the watcher runs: the slow file is seen while written
    stats = {"filed": 0, "refused_at_filing": 0, "filing_errors": []}
    slow = {}
    science = sorted((raw / NIGHT).glob("ifu20261124_0[3-5]*.fits"))[0]
    slow_name = "ifu20261124_08_59_59.fits"
    threads = [threading.Thread(target=flood, args=(db, seconds, rate, stats)),
               threading.Thread(target=slow_write, args=(science, raw / NIGHT / slow_name, 1.5, slow))]
    t_start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and q(db, "SELECT count(*) FROM requests WHERE status IN ('pending','running')")[0][0]:
        time.sleep(0.5)
    alive = proc.poll() is None
    figures["engine_alive_after_flood"] = alive
    statuses = dict(q(db, "SELECT status, count(*) FROM requests GROUP BY status"))
    figures["requests"] = {"filed": stats["filed"], "refused_at_filing": stats["refused_at_filing"],
                           "filing_errors": len(stats["filing_errors"]), "by_status": statuses,
                           "rate_per_s": round(stats["filed"] / seconds + stats["refused_at_filing"] / seconds, 1)}
    for name, what in hostile.items():
        row = q(db, "SELECT state, error FROM frames WHERE file=?", [name])
        figures["hostile"][f"{name} ({what})"] = row[0] if row else None
    figures["hostile"]["20261399/ (not a date)"] = q(db, "SELECT message FROM events WHERE message LIKE 'ignoring raw%'")
    figures["night_rows"] = [r[0] for r in q(db, "SELECT night FROM nights")]
    figures["escape_bytes_in_events"] = q(db, "SELECT count(*) FROM events WHERE instr(message, char(27)) > 0 "
                                              "OR instr(message, char(7)) > 0")[0][0]
    files = q(db, "SELECT count(*), count(DISTINCT night || file) FROM frames")[0]
    figures["frames_rows_vs_distinct_files"] = files
    ev = q(db, "SELECT ts FROM events WHERE kind='frame' AND frame=?", [slow_name])
    if ev and "completed" in slow:
        import datetime as dt

        t_ing = dt.datetime.strptime(ev[0][0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=dt.UTC)
        figures["slow_file_latency_s"] = round(t_ing.timestamp() - slow["completed"], 2)
    cal = q(db, "SELECT message FROM events WHERE kind='calibration' AND message LIKE 'calibration of % started%'")
    figures["watch_mode_calibration_started"] = cal[0][0] if cal else None
    status = subprocess.run([sys.executable, "-m", "sedmtui", "status", "--redux-root", "redux"], cwd=work,
                            capture_output=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    figures["escape_bytes_in_status"] = status.stdout.count(b"\x1b") + status.stdout.count(b"\x07")
    figures["status_exit"] = status.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    text = (work / "engine.log").read_text(errors="replace")
    figures["engine_log_database_is_locked"] = text.count("database is locked")
    figures["engine_log_tracebacks"] = text.count("Traceback")
    figures["elapsed_s"] = round(time.time() - t_start, 1)
    return figures


def kill_campaign(work: Path, kills: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    db = work / "redux" / "sedm.db"
    out = {"kills": 0, "orphans": 0, "restart_s": []}
    log = open(work / "kills.log", "w")
    proc = start_engine(work, log)
    wait_lease(db, proc.pid, 120)
    for _ in range(kills):
        time.sleep(rng.uniform(0.5, 12.0))
        procs = descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        out["kills"] += 1
        time.sleep(3.0)
        out["orphans"] += sum(alive(p) for p in procs)
        for p in procs:  # leave nothing behind even if the fix failed
            if alive(p):
                os.kill(p, signal.SIGKILL)
        t0 = time.monotonic()
        proc = start_engine(work, log)
        got = wait_lease(db, proc.pid, 120)
        out["restart_s"].append(None if got is None else round(time.monotonic() - t0, 2))
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)
    log.close()
    text = (work / "kills.log").read_text(errors="replace")
    out["refused_restarts"] = text.count("holds the state database")
    return out


def wait_night_done(db: Path, timeout_s: float) -> bool:
    """Wait until the night's calibration and every exposure are finished and no request waits."""
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        cal = q(db, "SELECT count(*) FROM calibrations WHERE night=? AND status IN ('ok','fallback','failed')", [NIGHT])
        open_obs = q(db, "SELECT count(*) FROM observations WHERE night=? AND state IN ('waiting','reducing')", [NIGHT])
        reqs = q(db, "SELECT count(*) FROM requests WHERE status IN ('pending','running')")
        if cal and cal[0][0] and open_obs and open_obs[0][0] == 0 and reqs and reqs[0][0] == 0:
            return True
        time.sleep(2.0)
    return False


def product_digest(night_dir: Path) -> dict[str, str]:
    """``{file: digest}`` of a night's products: FITS data arrays and tables (except PROVENANCE,
    which names the run's directory), spectrum text columns; other files by name only."""
    import hashlib

    import numpy as np
    from astropy.io import fits

    out = {}
    for p in sorted(night_dir.iterdir()):
        if p.name.startswith(".") or p.name.startswith("report") or not p.is_file():
            continue
        h = hashlib.sha256()
        if p.suffix == ".fits":
            with fits.open(p, memmap=False) as hdul:
                for hdu in hdul:
                    # PROVENANCE names the run's own paths (and hashes of files that hold them).
                    if hdu.data is not None and hdu.name != "PROVENANCE":
                        h.update(np.ascontiguousarray(hdu.data).tobytes() if not isinstance(hdu, fits.BinTableHDU)
                                 else str(hdu.data.tolist()).encode())
        elif p.suffix == ".txt":
            h.update("\n".join(ln for ln in p.read_text().splitlines() if not ln.startswith("#")).encode())
        out[p.name] = h.hexdigest()[:16]
    return out


def state_digest(db: Path) -> dict:
    """The night's rows that must not depend on kills: exposures and current extractions."""
    obs = q(db, "SELECT obs_id, state, kind FROM observations WHERE night=? ORDER BY obs_id", [NIGHT])
    ext = q(db, """SELECT o.obs_id, e.tag, e.quality, round(e.centroid_x, 4), round(e.centroid_y, 4), e.spec_fits
                   FROM observations o JOIN extractions e ON e.id = o.current_extraction_id
                   WHERE o.night=? ORDER BY o.obs_id""", [NIGHT])
    cal = q(db, "SELECT status, level FROM calibrations WHERE night=? AND status IN ('ok','fallback','failed')", [NIGHT])
    dup = q(db, "SELECT count(*) - count(DISTINCT observation_id || tag) FROM extractions WHERE night=?", [NIGHT])
    return {"observations": obs, "current_extractions": ext, "calibration": cal, "duplicate_extractions": dup[0][0]}


def compare_with_undisturbed(work: Path, timeout_s: float) -> dict:
    """Finish the killed run, reduce the same raw data undisturbed (--once), compare both."""
    db = work / "redux" / "sedm.db"
    log = open(work / "finish.log", "w")
    proc = start_engine(work, log)
    done = wait_night_done(db, timeout_s)
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)
    log.close()
    ref = work / "reference"
    env = dict(os.environ, SEDMTUI_ENGINE_WORKERS="2", PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-m", "sedmtui", "--batch", "--once", "--night", NIGHT, "--raw-root", "raw",
                    "--redux-root", str(ref)], cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=timeout_s)
    killed_p, ref_p = product_digest(work / "redux" / NIGHT), product_digest(ref / NIGHT)
    killed_s, ref_s = state_digest(db), state_digest(ref / "sedm.db")
    parts = [n for n in (work / "redux" / NIGHT).iterdir() if n.name.endswith(".part")]
    return {
        "killed_run_finished": done,
        "products": len(ref_p),
        "products_equal": killed_p == ref_p,
        "products_differing": sorted(set(killed_p.items()) ^ set(ref_p.items()))[:10],
        "rows_equal": killed_s == ref_s,
        "rows": {k: (killed_s[k], ref_s[k]) for k in killed_s if killed_s[k] != ref_s[k]},
        "half_written_files": len(parts),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--raw", required=True, type=Path, help="raw root holding the mini night 20261124")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--compare", action="store_true",
                   help="after the kills, finish the night and compare products and rows with an undisturbed run")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed to finish each reduction")
    ns = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sedm-reliab-"))
    try:
        figures = live_run(ns.raw.resolve(), work, ns.seconds, ns.rate)
        if ns.kills:
            figures["kill9"] = kill_campaign(work, ns.kills)
        if ns.compare:
            figures["kill9_vs_undisturbed"] = compare_with_undisturbed(work, ns.timeout)
    finally:
        if not ns.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"scratch: {work}")
    text = json.dumps(figures, indent=1, default=str)
    print(text)
    if ns.json:
        ns.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
