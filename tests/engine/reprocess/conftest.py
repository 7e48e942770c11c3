"""Fixtures of the reprocessing tests: a two-night raw root built from the shared mini night, and a
real Dask scheduler with two worker processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from tests.conftest import MINI_NIGHT, REPO, _once, templates_dir

NEIGHBOUR = "20261126"
"""The second night: the mini night's frames again, with a corrupt dome flat (its calibration fails)."""


NEIGHBOUR_EXPOSURES = ("03_02_00", "03_06_30", "03_24_00")
"""The neighbour's on-sky exposures: the standard and two science frames (fewer tasks, same paths)."""


def _copy_night(src: Path, dst: Path, old: str, new: str, corrupt_dome: bool, keep: tuple[str, ...] = ()) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.iterdir()):
        if not f.name.endswith(".fits"):
            continue
        if keep and f.name.startswith("ifu") and fits.getheader(f).get("IMGTYPE") not in ("dome", "lamp", "bias") \
                and not any(k in f.name for k in keep):
            continue
        target = dst / f.name.replace(old, new)
        if corrupt_dome and f.name.startswith("ifu") and fits.getheader(f).get("IMGTYPE") == "dome":
            with fits.open(f) as hdul:
                hdul[0].data = np.zeros_like(hdul[0].data)
                hdul.writeto(target)
        else:
            os.link(f, target)


@pytest.fixture(scope="session")
def batch_raw(tmp_path_factory, mini_raw) -> Path:
    """Raw root: the mini night (links to ``mini_raw``'s files, with its afternoon before) and
    :data:`NEIGHBOUR`, a copy whose dome flat is all zeros (its afternoon biases copied too)."""
    prev = str(int(MINI_NIGHT) - 1)

    def build(d: Path) -> None:
        for name in (prev, MINI_NIGHT):
            _copy_night(mini_raw / name, d / name, name, name, corrupt_dome=False)
        if (mini_raw / "catalog").exists():
            shutil.copytree(mini_raw / "catalog", d / "catalog", copy_function=os.link)
        _copy_night(mini_raw / MINI_NIGHT, d / NEIGHBOUR, MINI_NIGHT, NEIGHBOUR, corrupt_dome=True,
                    keep=NEIGHBOUR_EXPOSURES)
        _copy_night(mini_raw / prev, d / "20261125", prev, "20261125", corrupt_dome=False)

    return _once(tmp_path_factory, "reprocess-raw", build)


def engine_env(**extra) -> dict[str, str]:
    """The environment of the ``mini_reduced`` engine (same configuration: it is in every product)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), SEDMTUI_ENGINE_WORKERS="2", SEDMTUI_WATCH_STABLE_S="0.2")
    tdir = templates_dir()
    if tdir is not None:
        env["SEDMTUI_CLASSIFY_TEMPLATES_DIR"] = str(tdir)
    env.update(extra)
    return env


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


@contextlib.contextmanager
def dask_cluster(d: Path):
    """``dask scheduler`` and two ``dask worker --nthreads 1`` processes on 127.0.0.1; yields the address.

    Every process is in its own session and killed by process group on exit.
    """
    d.mkdir(parents=True, exist_ok=True)
    sched_file = d / "scheduler.json"
    env = dict(os.environ, PYTHONPATH=str(REPO), DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)  # the Nanny sets them for its worker
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--scheduler-file", str(sched_file)],
                              cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=open(d / "scheduler.log", "w"))]  # noqa: SIM115
    try:
        while not sched_file.exists():
            assert procs[0].poll() is None, (d / "scheduler.log").read_text()
            time.sleep(0.2)
        time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for i in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
                 "--no-dashboard", "--memory-limit", "0", "--name", f"w{i}", "--local-directory", str(d)],
                cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                stderr=open(d / f"worker{i}.log", "w")))  # noqa: SIM115
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=600)  # a hang guard, not a figure
        yield address
    finally:
        _stop(procs[1:])
        _stop(procs[:1])
