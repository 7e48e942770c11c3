"""The stage protocol: how calibration, science, requests (and delivery) plug into the engine loop.

A stage looks at the state database (through the engine's writer connection) and plans jobs
that are ready; the engine runs them on its executor and hands each result back to the stage
that planned it, which records it (state rows + events, one transaction). Stages never run
work themselves on the main thread except for cheap state changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from engine.config import Config
from engine.pipeline.jobs import Job
from engine.state.writer import StateWriter

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, Mapping, Sequence


@dataclass
class EngineView:
    """What a stage may see and use while planning or recording.

    Attributes
    ----------
    config : Config
        The resolved configuration.
    writer : StateWriter
        The engine's state writer (main thread only).
    nights : set of str
        Nights the engine is reducing.
    running : set of str
        Keys of jobs submitted and not finished.
    once : bool
        ``--once`` mode: the night's raw data are complete; do not wait for more.
    ingest_idle : bool
        No raw file is waiting to be ingested.
    now_ut_hour : float
        Current UT hour (for the twilight rule).
    today : str
        Current UT date ``YYYYMMDD`` (an earlier night is over: no more frames will come).
    """

    config: Config
    writer: StateWriter
    nights: set[str]
    running: set[str]
    once: bool
    ingest_idle: bool
    now_ut_hour: float
    today: str = ""


@runtime_checkable
class Stage(Protocol):
    """A step of the night pipeline: every hook the engine calls.

    The engine calls, on its main thread: :meth:`tick` and :meth:`plan` every loop iteration,
    :meth:`on_submit` when it starts a job the stage planned (or a request handler of the
    stage returned), :meth:`progress` with the job's progress reports, :meth:`record` or
    :meth:`failed` when it ends, :meth:`busy` to know whether ``--once`` may stop, and
    :meth:`request_handlers` for the request kinds the stage serves.
    """

    name: str

    def plan(self, view: EngineView) -> Sequence[Job]:
        """Jobs ready to run now (never one whose key is in ``view.running``)."""

    def on_submit(self, view: EngineView, job: Job) -> None:
        """The engine has just submitted ``job`` (mark its rows as running)."""

    def progress(self, view: EngineView, job: Job, stage: str, fraction: float, message: str) -> None:
        """A running job reported its progress (``stage`` name, ``fraction`` done)."""

    def record(self, view: EngineView, job: Job, result: Any) -> None:
        """Write a finished job's result to the state database."""

    def failed(self, view: EngineView, job: Job, error: BaseException) -> None:
        """Record a job that raised."""

    def busy(self, view: EngineView) -> bool:
        """True while the stage still has work for the engine's nights (``--once`` waits)."""

    def tick(self, view: EngineView) -> bool:
        """Cheap main-thread work every loop iteration, whether or not the executor has room
        (delivery's ledger); True if anything happened."""

    def request_handlers(self) -> Mapping[str, Callable[[EngineView, dict], Any]]:
        """``{request kind: handler(view, request row)}``; a handler returns a result dict or a
        :class:`Job` for the engine to run (recorded by this stage)."""
