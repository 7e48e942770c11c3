"""Issue 15 (engine side): nothing a file, a header, a request or a kill can do stops the night.

Each test plants one hostile or unlucky input and asserts the engine goes on and records the
input with a reason a person can act on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.config import WatchConfig
from engine.errors import EngineError, FrameError, LeaseError, RequestError
from engine.ingest.watcher import ignored_night_dirs, scan_raw
from engine.io.fitsio import expected_fits_size
from engine.io.inputs import Refusal, clean_text, parse_night, parse_raw_name
from engine.pipeline.engine import Engine
from engine.pipeline.ingest import Ingestor
from engine.state.db import open_writer
from engine.state.reader import StateReader
from engine.state.requests import claim_next, submit_request
from engine.state.writer import StateWriter
from tests.engine.reliability_helpers import (
    alive,
    card,
    descendants,
    engine_config,
    header_block,
    rows,
    science_cards,
    write_raw,
)

NIGHT = "20261124"


@pytest.fixture
def writer(tmp_path):
    w = StateWriter(open_writer(tmp_path / "sedm.db"))
    yield w
    w.db.close()


def ingest_all(writer, paths, *, stable_s=0.0, now=None):
    ing = Ingestor(writer, WatchConfig(stable_s=stable_s))
    ing.nominate(paths)
    return ing, ing.sweep(now=now)


def frame(writer, name):
    return writer.one("SELECT * FROM frames WHERE file=?", [name])


# ------------------------------------------------------------------------------------ 1. lock first
def test_engine_writes_survive_requests_filed_concurrently(tmp_path):
    """A console committing between the engine's read and write never kills the engine."""
    db_path = tmp_path / "sedm.db"
    w = StateWriter(open_writer(db_path))
    errors: list[BaseException] = []
    stop = threading.Event()
    filed = []

    def console():
        conn = sqlite3.connect(db_path, timeout=10)
        try:
            while not stop.is_set():
                filed.append(submit_request(conn, "report", night=NIGHT, user="obs"))
                time.sleep(0.005)  # ~200 requests/s, four times the 50/s
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            conn.close()

    t = threading.Thread(target=console)
    t.start()
    claimed = 0
    try:
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            with w.transaction():  # read, let the console commit, then write
                n = w.one("SELECT count(*) AS n FROM requests")["n"]
                time.sleep(0.002)
                w.event("engine", f"{n} requests seen")
            claimed += claim_next(w.db) is not None
            time.sleep(0.002)
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    assert claimed > 10 and len(filed) > 10, (claimed, len(filed))


# ------------------------------------------------------------------------------------ 2, 3, 6, 13: files
@pytest.mark.parametrize(
    ("name", "values", "reason"),
    [
        ("ifu20261124_03_00_01.fits", {"OBJECT": "'ZTF\x1b[31mbad\nx'"}, "header card OBJECT cannot be parsed"),
        ("ifu20261124_03_00_02.fits", {"JD": "NaN"}, "header card JD cannot be parsed"),
        ("ifu20261124_03_00_03.fits", {"EXPTIME": "-5"}, "EXPTIME = -5 s is impossible"),
        ("ifu20261124_03_00_04.fits", {"AIRMASS": "0"}, "AIRMASS = 0 is impossible"),
        ("ifu20261124_03_00_05.fits", {"EXPTIME": "0"}, "needs EXPTIME > 0"),
        ("ifu20261124_99_99_98.fits", {}, "impossible time in the file name"),
        ("ifu20261124_03_00_06.fits", {"EXPTIME": "'abc'"}, "EXPTIME='abc' is not a finite number"),
    ],
)
def test_bad_header_or_name_is_refused_with_a_reason(writer, tmp_path, name, values, reason):
    path = write_raw(tmp_path / "raw" / NIGHT / name, **values)
    ing, new = ingest_all(writer, [path])
    assert new == []
    row = frame(writer, name)
    assert row["state"] == "failed" and reason in row["error"], row["error"]
    assert row["next_retry"] is None  # refused for good: not retried
    assert ing.pending == 0


def test_a_good_file_next_to_bad_ones_is_ingested(writer, tmp_path):
    good = write_raw(tmp_path / "raw" / NIGHT / "ifu20261124_04_00_00.fits")
    bad = write_raw(tmp_path / "raw" / NIGHT / "ifu20261124_04_00_01.fits", JD="NaN")
    _ing, new = ingest_all(writer, [good, bad])
    assert [r["file"] for r in new] == [good.name]
    assert frame(writer, good.name)["kind"] == "science"
    obs = writer.one("SELECT * FROM observations WHERE obs_id='04_00_00'")
    assert obs["airmass"] == 1.2 and obs["exptime"] == 300.0


def test_a_bad_weather_card_is_dropped_not_the_exposure(writer, tmp_path):
    path = write_raw(tmp_path / "raw" / NIGHT / "ifu20261124_04_10_00.fits", IN_HUM="NaN", BARPRESS="'n/a'")
    _ing, new = ingest_all(writer, [path])
    assert [r["file"] for r in new] == [path.name]
    kept = json.loads(frame(writer, path.name)["header_json"])
    assert "IN_HUM" not in kept and "BARPRESS" not in kept and kept["AIRMASS"] == 1.2


def test_impossible_time_with_a_jd_is_still_refused(writer, tmp_path):
    path = write_raw(tmp_path / "raw" / NIGHT / "ifu20261124_99_99_99.fits", JD="2461368.6")
    ingest_all(writer, [path])
    assert "99:99:99 is not a UT time" in frame(writer, path.name)["error"]


def test_negative_naxis_extension_is_refused_not_a_hang(tmp_path):
    ext = header_block([card("XTENSION", "'IMAGE   '"), card("BITPIX", "16"), card("NAXIS", "1"),
                        card("NAXIS1", "-2880"), card("PCOUNT", "0"), card("GCOUNT", "1")])
    path = write_raw(tmp_path / "raw" / NIGHT / "ifu20261124_03_10_00.fits", extra=ext + b"\0" * 2880)
    done = threading.Event()
    outcome = {}

    def run():
        try:
            expected_fits_size(path)
        except FrameError as exc:
            outcome["error"] = str(exc)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(5.0), "expected_fits_size hangs on a negative NAXIS1"
    assert "negative size keyword (NAXIS1 = -2880)" in outcome["error"]


@pytest.mark.parametrize("cards", [
    [card("BITPIX", "7")], [card("NAXIS", "1000")], [card("GCOUNT", "-1")], [card("NAXIS", "1"), card("NAXIS1", "x")],
])
def test_absurd_structural_keywords_are_refused(tmp_path, cards):
    base = [c for c in science_cards() if c[:8].strip() not in {c2[:8].strip() for c2 in cards}]
    path = write_raw(tmp_path / "ifu20261124_03_00_00.fits", cards=base + cards)
    with pytest.raises(FrameError) as info:
        expected_fits_size(path)
    assert not info.value.retryable


def test_non_fits_file_is_refused_once_not_retried(writer, tmp_path):
    path = tmp_path / "raw" / NIGHT / "ifu20261124_03_20_00.fits"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a fits file" * 192)
    ing, _ = ingest_all(writer, [path])
    for _ in range(3):  # rescans find it again
        ing.nominate([path])
        ing.sweep(now=time.time() + 10_000)
    row = frame(writer, path.name)
    assert row["attempts"] == 1 and "not a FITS file" in row["error"]
    events = writer.all("SELECT * FROM events WHERE kind='frame_failed' AND frame=?", [path.name])
    assert len(events) == 1
    # A restarted engine does not read it again either; a changed file is read again.
    ing2 = Ingestor(writer, WatchConfig(stable_s=0.0))
    ing2.nominate([path])
    assert ing2.pending == 0
    write_raw(path)
    ing2.nominate([path])
    assert [r["file"] for r in ing2.sweep()] == [path.name]


def test_slowly_written_file_is_ingested_within_stable_s_of_completion(writer, tmp_path):
    """The retry back-off (5, 30, 120 s) must not delay a file that is still growing."""
    stable_s = 0.3
    path = tmp_path / "raw" / NIGHT / "ifu20261124_03_30_00.fits"
    path.parent.mkdir(parents=True)
    full = header_block(science_cards(NAXIS="2", NAXIS1="64", NAXIS2="90")) + b"\0" * (64 * 90 * 2)
    ing = Ingestor(writer, WatchConfig(stable_s=stable_s))
    with open(path, "wb") as fh:
        for i in range(0, len(full) - 2880, 2880):
            fh.write(full[i : i + 2880])
            fh.flush()
            ing.nominate([path])
            time.sleep(stable_s + 0.1)  # the writer pauses: the partial file looks stable
            ing.sweep()
        fh.write(full[len(full) - 2880 :])
    completed = time.monotonic()
    assert frame(writer, path.name)["state"] == "failed"  # tried while truncated
    while time.monotonic() - completed < 10 and not ing.sweep():
        time.sleep(0.05)
    latency = time.monotonic() - completed
    assert frame(writer, path.name)["state"] == "ingested"
    assert latency <= stable_s + 1.0, latency


# ------------------------------------------------------------------------------------ 4. night dirs
def test_a_directory_that_is_not_a_date_is_ignored_with_a_reason(tmp_path):
    raw = tmp_path / "raw"
    write_raw(raw / "20261399" / "ifu20261399_03_00_00.fits")
    write_raw(raw / NIGHT / "ifu20261124_03_00_00.fits")
    assert [p.parent.name for p in scan_raw(raw)] == [NIGHT]
    assert "not a date" in ignored_night_dirs(raw)["20261399"]
    assert isinstance(parse_night("20261399"), Refusal)
    cfg = engine_config(raw, tmp_path / "redux")
    engine = Engine(cfg)
    engine.start()
    try:
        for _ in range(3):
            engine.step()
            time.sleep(0.25)
    finally:
        engine.close()
    db = cfg.paths.db_path
    assert [r["night"] for r in rows(db, "SELECT night FROM nights")] == [NIGHT]
    assert rows(db, "SELECT count(*) AS n FROM events WHERE message LIKE 'ignoring raw directory 20261399%'")[0]["n"] == 1
    with pytest.raises(EngineError, match="not a date"):
        Engine(cfg, night="20261399", once=True)


# ------------------------------------------------------------------------------------ 5, 8, 13: requests
def test_malformed_stored_request_fails_with_a_reason_and_the_engine_goes_on(tmp_path):
    (tmp_path / "raw").mkdir()
    cfg = engine_config(tmp_path / "raw", tmp_path / "redux")
    engine = Engine(cfg, night=NIGHT, once=True)
    engine.start()
    conn = sqlite3.connect(cfg.paths.db_path)
    with conn:
        for params_json, target in (("{not json", "03_00_00"), ('{"centroid": [NaN, 1]}', "03_00_00"),
                                    ("[1, 2]", "03_00_00"), ("{}", "\x1b]0;pwned\x07\x1b[2J")):
            conn.execute("INSERT INTO requests (created, user, kind, night, target, params_json, status) "
                         "VALUES ('t', '\x1b[31mevil', 'reextract', ?, ?, ?, 'pending')", [NIGHT, target, params_json])
    try:
        engine._serve_requests()
    finally:
        engine.close()
    reqs = rows(cfg.paths.db_path, "SELECT * FROM requests ORDER BY id")
    assert [r["status"] for r in reqs] == ["failed"] * 4
    assert "not valid JSON" in reqs[0]["error"]
    assert "NaN is not allowed" in reqs[1]["error"]
    assert "must be a JSON object" in reqs[2]["error"]
    assert "is not an exposure id" in reqs[3]["error"]
    events = rows(cfg.paths.db_path, "SELECT message, obs_id FROM events")
    assert not any("\x1b" in (e["message"] or "") + (e["obs_id"] or "") for e in events)
    assert all("\x1b" not in r["error"] for r in reqs)
    # A restart does not crash on them (they are failed, not pending).
    engine = Engine(cfg, night=NIGHT, once=True)
    assert engine.run() == 0


@pytest.mark.parametrize(("params", "match"), [
    ({"centroid": [float("nan"), 1.0]}, "centroid must be two numbers"),
    ({"centroid": [float("inf"), 1.0]}, "centroid must be two numbers"),
    ({"region": {"include": "abc"}}, "must be a list of spaxel ids"),
    ({"region": {"exclude": [1, "x"]}}, "must be a list of spaxel ids"),
    ({"region": {"radius": -1}}, "region radius"),
    ({"region": {}}, "region must be"),
    ({"lstep": True}, "lstep"),
    ({"pad": "x" * 10_000_000}, "at most 16384 are accepted"),
])
def test_bad_request_params_are_refused_when_filed(tmp_path, params, match):
    open_writer(tmp_path / "sedm.db").close()
    conn = sqlite3.connect(tmp_path / "sedm.db")
    with pytest.raises(RequestError, match=match):
        submit_request(conn, "reextract", night=NIGHT, target="03_00_00", params=params)
    assert conn.execute("SELECT count(*) FROM requests").fetchone()[0] == 0


@pytest.mark.parametrize(("night", "target"), [(NIGHT, "\x1b]0;x\x07"), (NIGHT, "25_00_00"), ("20261399", "03_00_00")])
def test_bad_request_target_or_night_is_refused_when_filed(tmp_path, night, target):
    open_writer(tmp_path / "sedm.db").close()
    conn = sqlite3.connect(tmp_path / "sedm.db")
    with pytest.raises(RequestError) as info:
        submit_request(conn, "recover", night=night, target=target)
    assert "\x1b" not in str(info.value)


def test_clean_text_neutralises_terminal_escapes():
    hostile = "ZTF\x1b]0;title\x07\x1b[2J\x9b31m\u202etxt\r\nnext\x00"
    out = clean_text(hostile)
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or 0x202A <= ord(c) <= 0x202E for c in out)
    assert out.startswith("ZTF?]0;title??[2J?31m?txt") and "next" in out
    assert clean_text("a\nb", keep_newlines=True) == "a\nb"
    assert clean_text("x" * 50, max_len=10) == "x" * 9 + "…"


def test_status_prints_no_escape_codes(tmp_path, capsys):
    from engine.cli import sub_parser
    from engine.commands import run_status

    db = tmp_path / "redux" / "sedm.db"
    w = StateWriter(open_writer(db))
    w.ensure_night(NIGHT, "raw", "redux")
    w.insert("observations", {"night": NIGHT, "obs_id": "03_00_00", "object": "ZTF\x1b]0;pwn\x07\x1b[2Jx",
                              "kind": "science", "state": "failed", "error": "boom \x1b[31mred"})
    w.insert("requests", {"created": "t", "kind": "recover", "night": NIGHT, "target": "\x1b[2J", "status": "pending"})
    w.db.close()
    ns = sub_parser("status").parse_args(["--db", str(db), "--redux-root", str(tmp_path / "redux")])
    assert run_status(ns) == 0
    out = capsys.readouterr().out
    assert "ZTF?]0;pwn??[2Jx" in out and "\x1b" not in out and "\x07" not in out


# ------------------------------------------------------------------------------------ 9. lease and workers
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lease_of_a_dead_engine_on_this_host_is_taken_over_at_once(tmp_path):
    db = tmp_path / "sedm.db"
    w = StateWriter(open_writer(db))
    w.owner = f"{socket.gethostname()}:{_dead_pid()}"
    w.acquire_lease(timeout_s=30)  # the "dead" engine's lease, heartbeat fresh
    w2 = StateWriter(open_writer(db))
    w2.acquire_lease(timeout_s=30)
    events = rows(db, "SELECT message FROM events WHERE message LIKE 'lease taken over%'")
    assert len(events) == 1 and "no such process" in events[0]["message"]
    # A live holder (this host, a process that exists) and a holder on another host are respected.
    for owner in (f"{socket.gethostname()}:{os.getppid()}", f"other-host:{_dead_pid()}"):
        with sqlite3.connect(db) as c:
            c.execute("UPDATE engine SET owner=?, heartbeat=?, status='running'", [owner, time.time()])
        with pytest.raises(LeaseError, match="another engine"):
            StateWriter(open_writer(db)).acquire_lease(timeout_s=30)


def _is_forkserver(pid: int) -> bool:
    try:
        return b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG")
@pytest.mark.parametrize("when", ["fork server preloading", "workers running"])
def test_kill_9_of_the_engine_takes_its_workers_and_a_restart_is_immediate(tmp_path, when):
    raw, redux = tmp_path / "raw", tmp_path / "redux"
    raw.mkdir()
    env = dict(os.environ, SEDMTUI_ENGINE_STAGES="none", SEDMTUI_ENGINE_WORKERS="2", SEDMTUI_WATCH_STABLE_S="0.2")
    cmd = [sys.executable, "-m", "sedmtui", "--batch", "--raw-root", str(raw), "--redux-root", str(redux)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        workers: set[int] = set()
        if when == "fork server preloading":
            while time.time() < deadline and not any(_is_forkserver(p) for p in workers):
                time.sleep(0.02)
                workers = descendants(proc.pid)
            assert any(_is_forkserver(p) for p in workers), workers
        else:
            while time.time() < deadline and len(workers) < 3:  # fork server + 2 workers
                time.sleep(0.2)
                workers = descendants(proc.pid)
            assert len(workers) >= 3, workers
            while time.time() < deadline and not rows(redux / "sedm.db", "SELECT 1 FROM engine WHERE status='running'"):
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = time.monotonic()
    while time.monotonic() - killed < 2 and any(alive(p) for p in workers):
        time.sleep(0.1)
    orphans = [(p, Path(f"/proc/{p}/cmdline").read_bytes()[:80]) for p in workers if alive(p)]
    for p, _cmd in orphans:  # leave nothing behind if the test fails
        os.kill(p, signal.SIGKILL)
    assert not orphans, f"orphaned processes: {orphans}"
    cfg = engine_config(raw, redux)
    t0 = time.monotonic()
    engine = Engine(cfg)
    engine.start()  # no 30 s wait for the dead engine's lease
    engine.close()
    assert time.monotonic() - t0 < 5


# ------------------------------------------------------------------------------------ 10. raw root spelling
def test_relative_raw_root_ingests_each_file_once(tmp_path, monkeypatch):
    for hh in ("03", "04", "05"):
        write_raw(tmp_path / "raw" / NIGHT / f"ifu{NIGHT}_{hh}_00_00.fits")
    monkeypatch.chdir(tmp_path)
    cfg_rel = engine_config("raw", "redux")
    engine = Engine(cfg_rel)
    engine.start()
    try:
        for _ in range(4):
            engine.step()
            time.sleep(0.25)
        engine._last_rescan = 0.0  # a rescan on top of the watcher's events
        engine.step()
    finally:
        engine.close()
    assert Engine(engine_config(tmp_path / "raw", tmp_path / "redux"), night=NIGHT, once=True).run() == 0
    got = rows(tmp_path / "redux" / "sedm.db", "SELECT path FROM frames")
    assert len(got) == 3 and all(Path(r["path"]).is_absolute() for r in got)


# ------------------------------------------------------------------------------------ 11. watch mode
def _calibration_frames(writer, night, *, science):
    names = [("dome", None, "19_00_00"), ("arc", "Hg", "19_10_00"), ("arc", "Cd", "19_20_00"),
             ("arc", "Xe", "19_30_00"), ("bias", None, "19_40_00")]
    if science:
        names.append(("science", None, "03_00_00"))
    for kind, lamp, obs in names:
        writer.insert("frames", {"night": night, "file": f"ifu{night}_{obs}.fits", "path": f"/r/{night}/ifu{night}_{obs}.fits",
                                 "kind": kind, "lamp": lamp, "adcspeed": 2.0, "state": "ingested", "obs_id": obs})


def _view(writer, night, *, today, once=False):
    from engine.config import load_config
    from engine.pipeline.stage import EngineView

    return EngineView(config=load_config(None, env={}), writer=writer, nights={night}, running=set(), once=once,
                      ingest_idle=True, now_ut_hour=20.0, today=today)


@pytest.mark.parametrize(("today", "science", "ready"), [
    ("20261207", False, True),   # the night is over
    (NIGHT, True, True),         # tonight, exposures have begun: the calibrations are all there
    (NIGHT, False, False),       # tonight, afternoon: wait, and say why
])
def test_watch_mode_calibrates_a_partial_set_when_no_more_can_come(writer, today, science, ready):
    from engine.pipeline.calibration import CalibrationStage

    _calibration_frames(writer, NIGHT, science=science)
    stage = CalibrationStage()
    jobs = stage.plan(_view(writer, NIGHT, today=today))
    assert bool(jobs) == ready
    if ready:
        assert jobs[0].context["level"] == "partial"
    else:
        stage.plan(_view(writer, NIGHT, today=today))
        events = writer.all("SELECT message FROM events WHERE kind='calibration'")
        assert len(events) == 1 and "waiting: partial set" in events[0]["message"]
        assert "once the night's exposures begin" in events[0]["message"]


# ------------------------------------------------------------------------------------ 12. read-only files
def test_readonly_reader_creates_no_side_files_and_follows_a_later_engine(tmp_path):
    db = tmp_path / "sedm.db"
    w = StateWriter(open_writer(db))
    w.event("engine", "first")
    w.db.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sedm.db"]
    reader = StateReader(db, readonly=True)
    assert [e.message for e in reader.events_after(0)] == ["first"]
    version = reader.data_version()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sedm.db"]
    w = StateWriter(open_writer(db))
    w.event("engine", "second")
    assert reader.data_version() != version
    assert [e.message for e in reader.events_after(0)] == ["first", "second"]
    w.db.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_status_on_a_database_another_user_owns_read_only():
    """0444 database in a 0555 directory, no -shm: `sedmtui status` as another user reads it and
    creates nothing."""
    import shutil
    import tempfile

    tmp_path = Path(tempfile.mkdtemp(prefix="sedm-ro-", dir="/tmp"))
    d = tmp_path / "redux"
    w = StateWriter(open_writer(d / "sedm.db"))
    w.ensure_night(NIGHT, "raw", str(d))
    w.db.close()
    os.chmod(d / "sedm.db", 0o444)
    os.chmod(d, 0o555)
    os.chmod(tmp_path, 0o755)
    # everything imported before dropping to the other user: it cannot read root's Python install
    code = ("import os, sys, pwd, locale, gettext, shutil, sqlite_utils, encodings.idna; from sedmtui.__main__ import main; "
            "import engine.commands, engine.config, "
            "engine.state.reader, engine.cli; os.setgid(65534); os.setuid(65534); "
            "sys.argv = ['sedmtui', 'status', '--db', sys.argv[1], '--redux-root', sys.argv[2]]; sys.exit(main())")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(d / "sedm.db"), str(d)], capture_output=True, text=True,
                             timeout=60, cwd=Path(__file__).resolve().parents[2])
    finally:
        os.chmod(d, 0o755)
    files = sorted(p.name for p in d.iterdir())
    shutil.rmtree(tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and f"night {NIGHT}" in out.stdout
    assert files == ["sedm.db"]


def test_status_on_a_corrupt_database_says_so(tmp_path, capsys):
    from engine.cli import sub_parser
    from engine.commands import run_status

    db = tmp_path / "sedm.db"
    db.write_bytes(b"this is not a database" * 100)
    ns = sub_parser("status").parse_args(["--db", str(db), "--redux-root", str(tmp_path)])
    with pytest.raises(SystemExit) as info:
        run_status(ns)
    assert info.value.code == 2
    assert "cannot read the state database" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ 13. restart events
def test_exposures_reset_at_restart_get_an_event(tmp_path):
    (tmp_path / "raw").mkdir()
    cfg = engine_config(tmp_path / "raw", tmp_path / "redux")
    w = StateWriter(open_writer(cfg.paths.db_path))
    w.insert("observations", {"night": NIGHT, "obs_id": "03_00_00", "object": "ZTF26abc", "kind": "science",
                              "state": "reducing"})
    w.db.close()
    engine = Engine(cfg, night=NIGHT, once=True)
    engine.start()
    engine.close()
    db = cfg.paths.db_path
    assert rows(db, "SELECT state FROM observations")[0]["state"] == "waiting"
    ev = rows(db, "SELECT * FROM events WHERE kind='observation' AND obs_id='03_00_00'")
    assert len(ev) == 1 and "interrupted" in ev[0]["message"] and json.loads(ev[0]["payload_json"])["requeued"]


def test_raw_name_parser_accepts_real_times_only():
    good = parse_raw_name("ifu20261124_23_59_59.fits")
    assert good.obs_id == "23_59_59" and abs(good.jd - 2461369.499988) < 1e-5
    for bad in ("ifu20261124_24_00_00.fits", "ifu20261131_03_00_00.fits", "rc20261124_03_60_61.fits", "x.fits", None, 5):
        assert isinstance(parse_raw_name(bad), Refusal) and parse_raw_name(bad).reason


# ------------------------------------------------------------------------------------ doctor
def test_doctor_finds_stuck_rows_orphans_missing_products_and_foreign_side_files(tmp_path, capsys):
    from engine.cli import sub_parser
    from engine.commands import run_doctor

    redux = tmp_path / "redux"
    w = StateWriter(open_writer(redux / "sedm.db"))
    w.owner = f"{socket.gethostname()}:{_dead_pid()}"
    w.acquire_lease(timeout_s=30)
    w.ensure_night(NIGHT, "raw", str(redux / NIGHT))
    oid = w.insert("observations", {"night": NIGHT, "obs_id": "03_00_00", "object": "ZTF26abc", "kind": "science",
                                    "state": "reducing", "cube_file": "e3d_missing.fits"})
    w.insert("extractions", {"observation_id": oid, "night": NIGHT, "obs_id": "03_00_00", "tag": "robot",
                             "status": "current", "spec_fits": "spec_missing.fits"})
    w.insert("requests", {"created": "2020-01-01T00:00:00.000Z", "kind": "report", "night": NIGHT, "status": "pending"})
    w.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (redux / NIGHT).mkdir(parents=True, exist_ok=True)
    (redux / NIGHT / ".spec_x.fits.4242.part").write_bytes(b"x")
    if os.geteuid() == 0:
        os.chown(f"{redux / 'sedm.db'}-shm", 65534, 65534)  # a reader of another user created it
    ns = sub_parser("doctor").parse_args(["--redux-root", str(redux), "--night", NIGHT])
    code = run_doctor(ns)
    out = capsys.readouterr().out
    w.db.close()
    assert code == 1
    assert "lease holder" in out and "is gone" in out
    assert "1 exposure(s) left 'reducing'" in out  # the holder is gone: nobody will finish it
    assert "request(s) pending for more than" in out and "start it" in out
    assert "orphaned temporary file" in out and ".spec_x.fits.4242.part" in out
    assert "2 of 2 product(s) missing" in out
    if os.geteuid() == 0:
        assert "different owners" in out and "attempt to write a readonly database" in out


def test_doctor_reads_the_delivery_ledger(tmp_path, capsys):
    from engine.cli import sub_parser
    from engine.commands import run_doctor
    from engine.state.doctor import check_deliveries
    from engine.state.reader import StateReader

    redux = tmp_path / "redux"
    w = StateWriter(open_writer(redux / "sedm.db"))
    w.ensure_night(NIGHT, "raw", str(redux / NIGHT))
    for i, (state, dest, err) in enumerate((("sent", "fritz_spectrum", None),
                                            ("failed", "fritz_status", "Fritz refused the status (HTTP 400): bad id\x1b[2J"),
                                            ("sending", "email", None), ("pending", "slack", None))):
        w.insert("deliveries", {"key": f"k{i}", "night": NIGHT, "obs_id": "03_00_00", "destination": dest,
                                "state": state, "last_error": err, "attempts": 1, "created": "2026-11-24T09:00:00"})
    w.insert("deliveries", {"key": "dry", "night": NIGHT, "destination": "email", "state": "failed", "dry_run": 1})
    w.db.close()
    ns = sub_parser("doctor").parse_args(["--redux-root", str(redux), "--night", NIGHT])
    run_doctor(ns)
    out = capsys.readouterr().out
    assert "1 delivery failed (newest: #2 fritz status 03_00_00: Fritz refused the status (HTTP 400): bad id" in out
    assert "\x1b" not in out and "sedmtui deliver retry" in out
    assert "1 delivery left 'sending' by a stopped engine" in out and "never sent twice" in out
    assert "1 delivery pending with no engine" in out
    reader = StateReader(redux / "sedm.db", readonly=True)
    try:
        assert check_deliveries(reader, True, "20261125")[0].what == "no delivery in the ledger for 20261125"
        overdue = check_deliveries(reader, True, NIGHT, now=1e12)
        assert any("due for more than" in f.what for f in overdue)
        assert not any("left 'sending'" in f.what for f in overdue)  # a live engine settles those
    finally:
        reader.close()


def test_a_restarted_watch_engine_reopens_nights_with_work_left(tmp_path):
    """After a kill, a watch-mode engine ingests nothing new: the nights the dead engine left
    unfinished must be opened anyway, or their exposures wait forever."""
    (tmp_path / "raw").mkdir()
    cfg = engine_config(tmp_path / "raw", tmp_path / "redux")
    w = StateWriter(open_writer(cfg.paths.db_path))
    for night, status in ((NIGHT, "ok"), ("20261125", "running"), ("20261120", "ok")):
        w.ensure_night(night, "raw", "redux")
        w.update_night(night, calib_status=status)
    w.insert("observations", {"night": NIGHT, "obs_id": "03_00_00", "object": "x", "kind": "science", "state": "reducing"})
    w.insert("observations", {"night": "20261120", "obs_id": "03_00_00", "object": "x", "kind": "science", "state": "done"})
    w.db.close()
    engine = Engine(cfg)
    engine.start()
    try:
        assert engine.nights == {NIGHT, "20261125"}
    finally:
        engine.close()


def test_an_iteration_that_finds_the_database_locked_is_retried_not_fatal(tmp_path, monkeypatch):
    (tmp_path / "raw").mkdir()
    cfg = engine_config(tmp_path / "raw", tmp_path / "redux")
    engine = Engine(cfg, night=NIGHT, once=True)
    real_step, calls = engine.step, []

    def flaky_step():
        calls.append(1)
        if len(calls) <= 2:
            with engine.writer.transaction():  # a claimed request, then the lock is lost
                engine.db.execute("INSERT INTO requests (created, kind, night, status, params_json) "
                                  "VALUES ('t', 'report', ?, 'running', '{}')", [NIGHT])
            raise sqlite3.OperationalError("database is locked")
        return real_step()

    monkeypatch.setattr(engine, "step", flaky_step)
    monkeypatch.setattr(engine.stop_event, "wait", lambda timeout=None: False)
    assert engine.run() == 0
    assert len(calls) >= 3
    assert {r["status"] for r in rows(cfg.paths.db_path, "SELECT status FROM requests")} <= {"done", "failed"}
