"""``sedmtui reprocess`` on a real cluster: ``dask scheduler`` + two ``dask worker`` processes on
127.0.0.1, two nights (the mini night and a neighbour whose dome flat is corrupt).

The client is killed (SIGKILL) once a few exposures are recorded and run again with the same
arguments: nothing recorded is redone, nothing is lost. The mini night's products and state rows
equal those of ``sedmtui --batch --night 20261124 --once`` (the shared ``mini_reduced`` root);
the neighbour borrows the mini night's calibration and says so. Then a rerun in-process on
``LocalCluster(processes=False)`` keeps everything, and a changed setting sends it all back.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import pytest

from benchmarks.compare_nights import Comparison
from tests.conftest import MINI_NIGHT, REPO, _once, copy_reduced
from tests.engine.reprocess.conftest import NEIGHBOUR, dask_cluster, engine_env

pytestmark = pytest.mark.slow

KEYS = {"calibrations": ("night", "status"), "observations": ("night", "obs_id"),
        "extractions": ("night", "obs_id", "tag", "status"), "classifications": ("night", "obs_id", "classifier"),
        "frames": ("night", "file"), "nights": ("night",)}
"""State tables compared row by row, matched by these columns (row ids differ between the runs)."""
IDS = {"id", "observation_id", "extraction_id", "frame_id", "current_extraction_id", "calib_id", "request_id"}


def _rows(db: Path, table: str, nights: tuple[str, ...]) -> dict:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    marks = ",".join("?" * len(nights))
    rows = [dict(r) for r in con.execute(f"SELECT * FROM {table} WHERE night IN ({marks})", nights)]
    con.close()
    return {tuple(r[k] for k in KEYS[table]): {k: v for k, v in r.items() if k not in IDS} for r in rows}


def _ledger(db: Path) -> dict[str, dict]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    except sqlite3.OperationalError:  # not created yet
        return {}
    con.row_factory = sqlite3.Row
    try:
        return {r["key"]: dict(r) for r in con.execute("SELECT * FROM reprocess")}
    except sqlite3.OperationalError:  # not migrated yet
        return {}
    finally:
        con.close()


def _command(raw: Path, redux: Path, nights_file: Path, scheduler: str) -> list[str]:
    return [sys.executable, "-m", "sedmtui", "reprocess", "--nights-file", str(nights_file), "--scheduler", scheduler,
            "--raw-root", str(raw), "--redux-root", str(redux)]


@pytest.fixture(scope="module")
def reprocessed(tmp_path_factory, batch_raw) -> dict:
    """Run, kill after 3 recorded exposures, run again -- once per session, whichever xdist
    worker gets there first; returns what the tests look at."""
    d = _once(tmp_path_factory, "reprocessed", lambda out: _kill_and_resume(out, batch_raw))
    result = json.loads((d / "result.json").read_text())
    return {**result, "redux": d / "redux", "raw": batch_raw}


def _kill_and_resume(d: Path, batch_raw: Path) -> None:
    redux = d / "redux"
    nights_file = d / "nights.txt"
    nights_file.write_text(f"{MINI_NIGHT}\n{NEIGHBOUR}\n")
    env = engine_env()
    with dask_cluster(d / "dask") as address:
        from distributed import Client

        from engine.reprocess.worker import worker_threads

        with Client(address) as client:
            threads = list(client.run(worker_threads).values())
            nthreads = list(client.nthreads().values())
        cmd = _command(batch_raw, redux, nights_file, address)
        first = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, stdout=open(d / "first.log", "w"),  # noqa: SIM115
                                 stderr=subprocess.STDOUT)
        try:
            while True:
                done = [r for r in _ledger(redux / "sedm.db").values() if r["status"] == "done" and r["kind"] == "exposure"]
                if len(done) >= 3 or first.poll() is not None:
                    break
                time.sleep(0.5)
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        before = _ledger(redux / "sedm.db")
        second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    (d / "result.json").write_text(json.dumps({
        "first_returncode": first.returncode, "first_log": (d / "first.log").read_text()[-3000:],
        "before": before, "after": _ledger(redux / "sedm.db"), "threads": threads, "nthreads": nthreads,
        "second": {"returncode": second.returncode, "stdout": second.stdout, "stderr": second.stderr[-3000:]}}))


def test_a_killed_client_resumes_without_redoing_or_losing_anything(reprocessed):
    assert reprocessed["first_returncode"] == -signal.SIGKILL, f"the first run ended by itself:\n{reprocessed['first_log']}"
    second = Namespace(**reprocessed["second"])
    assert second.returncode in (0, 1), second.stdout + second.stderr
    before, after = reprocessed["before"], reprocessed["after"]
    done_before = {k for k, r in before.items() if r["status"] == "done"}
    assert len([k for k in done_before if k.startswith("science:")]) >= 3
    for key in done_before:
        assert after[key]["attempts"] == 1 and after[key]["run_id"] == before[key]["run_id"], f"{key} was redone"
    assert all(r["status"] in ("done", "failed") for r in after.values()), after
    con = sqlite3.connect(reprocessed["redux"] / "sedm.db")
    states = dict(con.execute("SELECT state, count(*) FROM observations GROUP BY state").fetchall())
    twice = con.execute("SELECT night, obs_id, count(*) FROM extractions WHERE tag='robot' GROUP BY night, obs_id "
                        "HAVING count(*) > 1").fetchall()
    con.close()
    assert set(states) <= {"done", "failed"} and not twice, (states, twice)
    assert "kept from earlier runs" in second.stdout and "dashboard:" in second.stdout
    assert f"{NEIGHBOUR}  fallback <- {MINI_NIGHT}" in second.stdout.replace("   ", "  ") or \
        f"fallback <- {MINI_NIGHT}" in second.stdout


def test_workers_run_one_blas_thread(reprocessed):
    for threads in reprocessed["threads"]:
        assert set(threads.values()) == {"1"}, threads
    assert set(reprocessed["nthreads"]) == {1}


def test_the_mini_night_equals_the_live_engines(reprocessed, mini_reduced, mini_raw):
    redux, raw = reprocessed["redux"], reprocessed["raw"]

    class SameRaw(Comparison):
        def same_text(self, x, y) -> bool:
            if isinstance(x, str) and isinstance(y, str):
                x = x.replace(str(raw.resolve()), str(mini_raw.resolve()))
            return super().same_text(x, y)

    cmp = SameRaw(redux, mini_reduced, {}, False)
    cmp.products(MINI_NIGHT)
    assert not cmp.diffs, "\n".join(cmp.diffs[:30])
    assert cmp.counts["files"] > 20
    nights = (MINI_NIGHT, str(int(MINI_NIGHT) - 1))
    diffs = []
    for table in KEYS:
        mine, live = _rows(redux / "sedm.db", table, nights), _rows(mini_reduced / "sedm.db", table, nights)
        assert mine.keys() == live.keys(), (table, sorted(mine.keys() ^ live.keys()))
        for key, row in mine.items():
            for col, value in row.items():
                if col in ("created", "updated", "wall_s", "mtime", "path", "raw_dir", "redux_dir", "next_retry"):
                    continue
                a, b = _value(value), _value(live[key][col])
                if not cmp.same_text(json.dumps(a, default=str), json.dumps(b, default=str)):
                    diffs.append(f"{table} {key} {col}: {str(a)[:200]} vs {str(b)[:200]}")
    assert not diffs, "\n".join(diffs[:40])


def _value(v):
    """A state value with its JSON parsed and the clocks and durations in it left out."""
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return _no_clocks(json.loads(v))
        except ValueError:
            return v
    return v


def _no_clocks(v):
    if isinstance(v, dict):
        return {k: _no_clocks(x) for k, x in v.items() if k not in ("timing", "wall_s") and not k.endswith("_s")}
    if isinstance(v, list):
        return [_no_clocks(x) for x in v]
    return v


def test_the_corrupt_night_borrows_its_neighbours_calibration_and_says_so(reprocessed):
    con = sqlite3.connect(reprocessed["redux"] / "sedm.db")
    rows = con.execute("SELECT status, source_night, error FROM calibrations WHERE night=? ORDER BY id", [NEIGHBOUR]).fetchall()
    events = [m for (m,) in con.execute("SELECT message FROM events WHERE night=? AND kind='calibration'", [NEIGHBOUR])]
    used = {r for (r,) in con.execute("SELECT json_extract(facts_json, '$.calibration_night') FROM extractions "
                                      "WHERE night=?", [NEIGHBOUR])}
    con.close()
    assert rows[0][0] == "error" and rows[-1][:2] == ("fallback", MINI_NIGHT), rows
    assert any(f"uses the calibration of {MINI_NIGHT} (fallback)" in m for m in events), events
    assert used == {MINI_NIGHT}, used
    ledger = reprocessed["after"][f"calibration:{NEIGHBOUR}"]
    assert ledger["status"] == "failed" and ledger["attempts"] == 1, ledger


def test_a_rerun_keeps_everything_and_a_changed_setting_redoes_it(reprocessed, tmp_path):
    from distributed import Client, LocalCluster

    from engine.reprocess.progress import Progress
    from engine.reprocess.runner import Reprocessor
    from tests.conftest import engine_config

    redux = copy_reduced(reprocessed["redux"], tmp_path / "redux", link=True)
    nights = [MINI_NIGHT, NEIGHBOUR]
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        cfg = engine_config(reprocessed["raw"], redux, SEDMTUI_ENGINE_WORKERS=2)
        out = tmp_path / "out.txt"
        with open(out, "w") as fh:
            rep = Reprocessor(cfg, nights, client, progress=Progress(fh, tty=False))
            assert rep.run() in (0, 1)
        assert rep.task_figures == [], "nothing to redo"
        assert rep.kept["exposures_redone"] == 0 and rep.kept["calibrations_redone"] == 0, rep.kept
        assert rep.kept["exposures_kept"] >= 10, rep.kept
        changed = engine_config(reprocessed["raw"], redux, SEDMTUI_ENGINE_WORKERS=2, SEDMTUI_SCIENCE_FIT_RADIUS=3.5)
        rep = Reprocessor(changed, nights, client, progress=Progress(io_null(), tty=False))
        try:
            rep.start()
        finally:
            rep.close()
        assert rep.kept["exposures_kept"] == 0 and rep.kept["calibrations_redone"] == 2, rep.kept


def io_null():
    import io

    return io.StringIO()
