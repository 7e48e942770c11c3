"""Jobs run on the engine's executor, and their progress reports.

A job is a top-level function and picklable arguments; it does its own file I/O (reading
raw frames and calibration products, writing products atomically) and returns a plain dict
that the engine's main thread records in the state database. Workers never touch SQLite.
Progress goes through a queue installed by the pool initializer.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

_progress_queue: Any = None  # set once per worker process by init_worker


@dataclass(frozen=True)
class Job:
    """One unit of work for the executor.

    Attributes
    ----------
    stage : str
        Name of the stage that planned it (and records its result).
    key : str
        Unique key; a key that is running is never planned twice.
    fn : callable
        Top-level function run in a worker.
    args : tuple
        Picklable arguments.
    priority : int
        Lower runs first.
    context : dict
        Facts the stage needs when recording (not sent to the worker).
    """

    stage: str
    key: str
    fn: Callable[..., dict]
    args: tuple
    priority: int = 50
    context: dict = field(default_factory=dict)


ENGINE_PID_ENV = "SEDMTUI_ENGINE_PID"
"""Environment variable through which the engine tells its fork server its PID."""

PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal a process receives when its parent dies (Linux)."""


def parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(engine_pid: int | None) -> None:
    """Make this worker process exit when the engine that owns it dies, even by ``kill -9``.

    On Linux the worker asks for SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``;
    the parent is the pool's fork server, which exits when the engine does). Everywhere, a
    daemon thread checks once a second that ``engine_pid`` is still this worker's ancestor
    and exits the process if not, so no worker goes on writing products for a dead engine.
    """
    parent_death_signal()
    if engine_pid is None:
        return
    if not _alive(engine_pid):
        os._exit(1)
    threading.Thread(target=_watch_engine, args=(engine_pid,), name="engine-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _watch_engine(engine_pid: int, period_s: float = 1.0) -> None:
    while True:
        time.sleep(period_s)
        if not _alive(engine_pid) or os.getppid() == 1:
            os._exit(1)


def init_worker(progress_queue, templates_dir: str = "", engine_pid: int | None = None) -> None:
    """Pool initializer: die with the engine, remember the progress queue, load the SNID templates.

    Parameters
    ----------
    progress_queue : multiprocessing.Queue
        Where :func:`report` puts progress.
    templates_dir : str
        SNID templates to load now ('' : none).
    engine_pid : int, optional
        The engine's PID (the worker exits when it dies).
    """
    global _progress_queue  # noqa: PLW0603 - per-process channel set once at start-up
    die_with_parent(engine_pid)
    _progress_queue = progress_queue
    if templates_dir:
        from engine.science.classification import warm_template_library

        warm_template_library(templates_dir)


def start_worker() -> int:
    """A no-op job: submitting one per worker at engine start spawns (and warms) the pool."""
    return os.getpid()


def report(key: str, stage: str, fraction: float, message: str = "") -> None:
    """Report a job's progress (a no-op outside the engine's executor).

    Parameters
    ----------
    key : str
        The job's key.
    stage : str
        What it is doing now.
    fraction : float
        How far it is, 0-1.
    message : str
        Optional detail.
    """
    q = _progress_queue
    if q is None:
        return
    try:
        q.put_nowait((key, stage, float(fraction), message))
    except (queue.Full, OSError, ValueError):
        pass


class InlineExecutor(Executor):
    """Runs each job at submission, in the calling process (``engine.workers <= 1``)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered through the future
            fut.set_exception(exc)
        return fut
