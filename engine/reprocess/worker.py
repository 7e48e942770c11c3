"""What runs on a Dask worker: the recipe call with the worker's figures, and the worker's set-up."""

from __future__ import annotations

import os
import resource
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from engine.threads import SINGLE_THREAD_ENV, one_blas_thread


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far [MB]."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024.0


def run_job(fn: Callable[..., Any], *args: Any) -> tuple[Any, dict]:
    """Run a recipe (``fn(*args)``, the live engine's job function) and say where and at what cost.

    Returns
    -------
    tuple
        ``(the recipe's result, {"worker": "host:pid", "wall_s", "cpu_s", "peak_rss_mb", "end_ts"})``
        (``end_ts``: when the recipe returned, Unix time [s]).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, {"worker": f"{socket.gethostname()}:{os.getpid()}", "wall_s": round(time.perf_counter() - t0, 3),
                    "cpu_s": round(time.process_time() - c0, 3), "peak_rss_mb": round(peak_rss_mb(), 1),
                    "end_ts": time.time()}


def noop() -> float:
    """A task that does nothing (the scheduler's own cost per task, in the benchmark)."""
    return time.perf_counter()


class WorkerSetup(WorkerPlugin):
    """Once per worker: the engine's imports (the forkserver preload of the live engine), one BLAS
    thread, and the SNID template library in memory (not once per task).

    Parameters
    ----------
    templates_dir : str
        SNID templates to load ('' : none).
    """

    name = "sedmtui-worker-setup"

    def __init__(self, templates_dir: str = "") -> None:
        self.templates_dir = templates_dir

    def setup(self, worker) -> None:
        one_blas_thread()
        import engine.pipeline.preload  # noqa: F401 - the recipes, matplotlib's Agg backend, SNID

        if self.templates_dir:
            from engine.science.classification import warm_template_library

            warm_template_library(self.templates_dir)


def worker_threads() -> dict[str, str | None]:
    """The BLAS/OpenMP thread variables a worker runs with (checked by the tests)."""
    return {var: os.environ.get(var) for var in SINGLE_THREAD_ENV}


__all__ = ["WorkerSetup", "noop", "peak_rss_mb", "run_job", "worker_threads"]
