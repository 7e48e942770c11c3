"""Reprocessing pieces without a cluster of processes: fallback choice, SLURM from the [cluster]
table, progress and summary, the CLI's nights, and a batch on ``LocalCluster(processes=False)``."""

from __future__ import annotations

import io
from argparse import Namespace

import pytest

from engine.errors import ConfigError
from engine.pipeline.stage import EngineView
from engine.reprocess.cli import batch_nights
from engine.reprocess.cluster import SlurmSettings
from engine.reprocess.ledger import Ledger
from engine.reprocess.progress import NightStatus, Progress, summary_table
from engine.reprocess.stages import BatchCalibrationStage
from engine.state.db import open_writer
from engine.state.writer import StateWriter
from tests.conftest import engine_config


@pytest.fixture
def writer(tmp_path):
    db = open_writer(tmp_path / "sedm.db")
    yield StateWriter(db)
    db.close()


def _view(writer, tmp_path, nights):
    cfg = engine_config(tmp_path / "raw", tmp_path / "redux")
    return EngineView(config=cfg, writer=writer, nights=set(nights), running=set(), once=True, ingest_idle=True,
                      now_ut_hour=12.0, today="20270101")


def _calibration(writer, night, status, source=None):
    with writer.transaction():
        writer.ensure_night(night, "", "")
        writer.insert("calibrations", {"night": night, "status": status, "source_night": source or night,
                                       "created": "2026-12-01T00:00:00"})
        writer.update_night(night, calib_status=status)


def test_a_failed_night_borrows_the_nearest_good_night_either_side_once_its_neighbours_are_settled(writer, tmp_path):
    stage = BatchCalibrationStage(Ledger(writer, "run"))
    view = _view(writer, tmp_path, ["20261120", "20261125", "20261127"])
    _calibration(writer, "20261120", "ok")
    stage._fallback(view, "20261125", "corrupt dome")
    assert stage.deferred == {"20261125": "corrupt dome"}, "20261127 has no outcome yet: the fallback waits"
    assert writer.one("SELECT * FROM calibrations WHERE night='20261125'") is None
    _calibration(writer, "20261127", "ok")
    stage.plan(view)
    row = writer.one("SELECT * FROM calibrations WHERE night='20261125'")
    assert (row["status"], row["source_night"]) == ("fallback", "20261127"), "2 days after is nearer than 5 before"
    event = writer.one("SELECT message FROM events WHERE night='20261125' ORDER BY id DESC LIMIT 1")
    assert "uses the calibration of 20261127 (fallback): corrupt dome" in event["message"]


def test_a_tie_goes_to_the_earlier_night_and_nothing_beyond_the_window(writer, tmp_path):
    stage = BatchCalibrationStage(Ledger(writer, "run"))
    view = _view(writer, tmp_path, ["20261124"])
    _calibration(writer, "20261122", "ok")
    _calibration(writer, "20261126", "ok")
    assert stage.fallback_source(view, "20261124")["night"] == "20261122"
    far = _view(writer, tmp_path, ["20260101"])
    assert stage.fallback_source(far, "20260101") is None


def test_the_slurm_cluster_is_built_from_the_cluster_table():
    settings = SlurmSettings.from_table({"queue": "debug", "account": "sedm", "cores": 4, "memory": "8GB",
                                         "walltime": "02:00:00", "jobs": 3, "prologue": ["source /opt/venv/bin/activate"]})
    kw = settings.cluster_kwargs()
    assert (kw["cores"], kw["processes"]) == (4, 4), "one single-threaded worker per core"
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(**kw, scheduler_options={"dashboard_address": ":0"})
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p debug", "#SBATCH -A sedm", "#SBATCH -t 02:00:00", "export OMP_NUM_THREADS=1",
                 "export OPENBLAS_NUM_THREADS=1", "source /opt/venv/bin/activate", "--nworkers 4", "--nthreads 1"):
        assert line in script, f"{line!r} not in the job script:\n{script}"
    with pytest.raises(ConfigError, match="unknown key"):
        SlurmSettings.from_table({"partition": "x"})
    with pytest.raises(ConfigError, match="not a valid int"):
        SlurmSettings.from_table({"jobs": "many"})


def test_the_cluster_table_is_not_the_engines_configuration(tmp_path):
    from engine.config import load_config

    toml = tmp_path / "sedmtui.toml"
    toml.write_text('[engine]\nworkers = 3\n[cluster]\nqueue = "debug"\n')
    cfg = load_config(toml, env={})
    assert cfg.engine.workers == 3 and "cluster" not in cfg.to_dict(), "never in a product's provenance"


def test_nights_of_a_range_are_those_with_a_raw_directory(tmp_path):
    for n in ("20261124", "20261126"):
        (tmp_path / n).mkdir()
    nights, notes = batch_nights(Namespace(nights_file=None, first="20261123", last="20261127"), tmp_path)
    assert nights == ["20261124", "20261126"] and not notes
    f = tmp_path / "nights.txt"
    f.write_text("20261126  # the corrupt one\n20261125\n20261399\n")
    nights, notes = batch_nights(Namespace(nights_file=f, first=None, last=None), tmp_path)
    assert nights == ["20261126"] and len(notes) == 2
    with pytest.raises(ValueError, match="before"):
        batch_nights(Namespace(nights_file=None, first="20261127", last="20261123"), tmp_path)


def test_progress_lines_and_the_summary_table():
    statuses = [NightStatus("20261124", "ok", done=7, failed=1, quality={0: 5, 3: 2}),
                NightStatus("20261126", "fallback", source_night="20261124", waiting=8)]
    out = io.StringIO()
    p = Progress(out, interval_s=0.0, tty=False)
    p.update(statuses, running=2, force=True)
    assert "nights 1/2 · exposures 7 done, 1 failed, 8 to go (2 running)" in out.getvalue()
    table = summary_table(statuses, {"exposures_kept": 3})
    assert "fallback <- 20261124" in table and "total" in table and "3 exposure(s)" in table
    bar = io.StringIO()
    Progress(bar, tty=True).update(statuses, running=2)
    assert bar.getvalue().startswith("\r") and "50%" in bar.getvalue()


def test_a_task_that_kills_its_worker_is_retried_then_reported():
    import os

    from engine.reprocess.cluster import connect
    from engine.reprocess.runner import describe_error
    from engine.reprocess.worker import run_job

    conn = connect(local_workers=1, allowed_failures=1)
    try:
        fut = conn.client.submit(run_job, os._exit, 3, key="science:20261124:03_06_30:dies", pure=False)
        with pytest.raises(Exception) as err:  # noqa: B017 - distributed's KilledWorker
            fut.result()
        assert type(err.value).__name__ == "KilledWorker"
        assert "worker died every time" in describe_error(err.value)
        assert conn.client.submit(run_job, abs, -2, pure=False).result()[0] == 2, "the batch goes on"
    finally:
        conn.close()
