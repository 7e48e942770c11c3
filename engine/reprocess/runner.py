"""The client loop of a batch: the engine loop over many nights, its jobs on a Dask cluster.

:class:`Reprocessor` is the live :class:`~engine.pipeline.engine.Engine` with four changes:

1. it ingests the batch's nights once, at start (nothing is watched), and opens them all;
2. before planning, :func:`~engine.reprocess.stages.invalidate` sends back to ``waiting``
   what the ledger cannot vouch for (the rest is skipped);
3. every job the stages plan goes to the Dask cluster as one task, keyed
   ``<job key>:<fingerprint>`` (``science:20261124:03_06_30:1a2b...``), and runs the recipe the
   live engine runs (:func:`~engine.reprocess.worker.run_job` wraps it to report the worker's
   figures); tasks carry paths, never frames or cubes;
4. each result is recorded by the stage that planned it *and* in the ledger, in one
   transaction: a client killed at any point loses nothing recorded and redoes nothing
   recorded.

Dependencies are the stages' own: a night's exposures are planned once its calibration (or its
fallback) is recorded, its science once its standards are. Only this process writes the state
database.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from engine.config import Config
from engine.pipeline.engine import Engine
from engine.pipeline.ingest import Ingestor, nights_to_scan
from engine.pipeline.jobs import Job
from engine.pipeline.requests_stage import RequestStage
from engine.pipeline.stage import EngineView
from engine.reprocess.ledger import DONE, FAILED, Ledger
from engine.reprocess.progress import Progress, night_status, summary_table
from engine.reprocess.stages import BatchCalibrationStage, BatchScienceStage, invalidate
from engine.reprocess.worker import run_job
from engine.state.requests import requeue_stale

log = logging.getLogger(__name__)

KIND_OF_STAGE_ACTION = {"reduce": "exposure", "recalibrate": "recalibration"}


def describe_error(exc: BaseException) -> str:
    """A failed task's reason for the state database and the summary."""
    name = type(exc).__name__
    if name == "KilledWorker":
        return (f"KilledWorker: the task's worker died every time it ran it (out of memory, a crash, or the node "
                f"was pre-empted); {exc}")
    return f"{name}: {exc}"


class Reprocessor(Engine):
    """The engine loop of ``sedmtui reprocess``.

    Parameters
    ----------
    config : Config
        Resolved configuration (the same as the live engine's: it is in every product).
    nights : list of str
        The batch's nights ``YYYYMMDD``.
    client : distributed.Client
        A connected Dask client.
    force : bool
        Reduce everything again.
    retry_failed : bool
        Also exposures that failed with the same inputs.
    deliver : bool
        Deliver as the live engine would (off unless ``--deliver``).
    progress : Progress, optional
        Where progress goes (default: stdout).
    in_flight_per_thread : int
        Tasks kept submitted per worker thread (a small queue on every worker; the rest wait
        in the client, so a killed client has little in flight).
    """

    def __init__(self, config: Config, nights: list[str], client: Any, *, force: bool = False,
                 retry_failed: bool = False, deliver: bool = False, progress: Progress | None = None,
                 in_flight_per_thread: int = 2) -> None:
        super().__init__(config, night=None, once=False, stages=[], deliver=deliver)
        self.once = True
        self.batch = sorted(set(nights))
        self.client = client
        self.force = force
        self.retry_failed = retry_failed
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.ledger = Ledger(self.writer, self.run_id, {self.config.paths.raw_root: "<raw>",
                                                         self.config.paths.redux_root: "<redux>"})
        self.cal_stage = BatchCalibrationStage(self.ledger)
        self.stages[:0] = [self.cal_stage, BatchScienceStage(), RequestStage()]
        self.progress_out = progress or Progress()
        self.in_flight_per_thread = in_flight_per_thread
        self.kept: dict[str, int] = {}
        self.task_figures: list[dict] = []
        """``{"key", "worker", "wall_s", "cpu_s", "peak_rss_mb", "latency_s", "return_s"}`` of every task this
        run (``latency_s``: submitted -> recorded, queueing included; ``return_s``: the recipe returned ->
        recorded by this client, on one host's clock)."""
        self._submitted_at: dict[str, float] = {}
        self._threads = 0
        self._threads_checked = 0.0
        self._reported = 0.0
        self.statuses: list = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Take the lease, ingest the batch's nights, decide what is kept (no executor, no watcher)."""
        self.writer.acquire_lease(self.config.engine.lease_timeout_s)
        requeue_stale(self.db)
        self._requeue_observations()
        self.ingestor = Ingestor(self.writer, self.config.watch)
        for night in self.batch:
            self._open_night(night)
        self._ingest_all()
        self.kept = invalidate(self.view(), self.ledger, self.cal_stage, force=self.force,
                               retry_failed=self.retry_failed)
        self.writer.event("engine", f"reprocessing {len(self.batch)} night(s) {self.batch[0]}..{self.batch[-1]} "
                          f"(run {self.run_id}): {self.kept}", payload={"reprocess": self.kept, "run_id": self.run_id})

    def _ingest_all(self, rounds: int = 5) -> None:
        """Every raw file of the batch's nights (and the afternoons before them), once."""
        from engine.ingest.watcher import scan_raw

        assert self.ingestor is not None
        scan = sorted({n for night in self.batch for n in nights_to_scan(night)})
        self.ingestor.nominate(scan_raw(self.raw_root, scan))
        for _ in range(rounds):
            self.ingestor.sweep(force=True)
            if not self.ingestor.fresh:
                break

    def _ingest(self) -> bool:
        """Nothing to watch: the batch was ingested at start."""
        return False

    def run(self) -> int:
        """Reduce the batch; print progress and the summary. Returns 0, or 1 if anything failed or
        the run was stopped."""
        self.start()
        try:
            while not self.stop_event.is_set():
                worked = self.step()
                self._report()
                if self._night_done():
                    break
                if not worked:
                    self._idle_wait(self.config.engine.idle_poll_s)
        finally:
            stopped = self.stop_event.is_set()
            for fut in self.futures:
                fut.cancel()
            self.futures.clear()
            self._report(force=True)
            self.progress_out.finish()
            self.statuses = night_status(self.writer, self.batch)
            self.close()
        print(summary_table(self.statuses, self.kept), file=self.progress_out.out, flush=True)
        if stopped:
            print("stopped before the end: run the same command again to resume", file=self.progress_out.out)
        return 1 if stopped or any(s.failed or s.calibration == "failed" for s in self.statuses) else 0

    def _night_done(self) -> bool:
        """Every stage idle for the batch's nights and nothing in flight."""
        if self.futures:
            return False
        view = self.view()
        return not any(s.busy(view) for s in self.stages)

    def close(self) -> None:
        """Release the lease and close the database (the cluster is the caller's)."""
        self.executor = None
        super().close()

    # ------------------------------------------------------------------ jobs on Dask
    def _capacity(self) -> int:
        now = time.monotonic()
        if now - self._threads_checked > 5.0:
            try:
                self._threads = sum(self.client.nthreads().values())
            except Exception:  # noqa: BLE001 - the scheduler is busy or gone: keep the last count
                pass
            self._threads_checked = now
        return max(1, self._threads) * self.in_flight_per_thread

    def _plan_and_submit(self) -> bool:
        capacity = self._capacity() - len(self.futures)
        if capacity <= 0:
            return False
        view = self.view()
        jobs: list[Job] = []
        for stage in self.stages:
            jobs.extend(j for j in stage.plan(view) if j.key not in view.running)
        jobs.sort(key=lambda j: (j.priority, j.context.get("night", ""), j.key))
        for job in jobs[:capacity]:
            self._submit(job, view)
        return bool(jobs)

    def _submit(self, job: Job, view: EngineView) -> None:
        task = job.args[0] if job.args else None
        fingerprint = self.ledger.fingerprint(task)
        job.context["fingerprint"] = fingerprint
        night = job.context.get("night") or getattr(task, "night", "")
        kind = "calibration" if job.stage == "calibration" else KIND_OF_STAGE_ACTION.get(job.context.get("action"), job.stage)
        self._stage(job.stage).on_submit(view, job)
        self.ledger.started(job.key, night, kind, fingerprint)
        fut = self.client.submit(run_job, job.fn, *job.args, key=f"{job.key}:{fingerprint[:12]}", pure=False,
                                 priority=-job.priority)
        self._submitted_at[job.key] = time.perf_counter()
        self.futures[fut] = job
        view.running.add(job.key)

    def _collect(self, *, block: bool) -> bool:
        done = [f for f in self.futures if f.done()]
        for fut in done:
            job = self.futures.pop(fut)
            latency = time.perf_counter() - self._submitted_at.pop(job.key, time.perf_counter())
            stage = self._stage(job.stage)
            try:
                result, facts = fut.result()
            except BaseException as exc:  # noqa: BLE001 - a failed task fails alone
                self._failed(stage, job, exc)
                continue
            finally:
                fut.release()
            try:
                with self.writer.transaction():
                    stage.record(self.view(), job, result)
                    self.ledger.finished(job.key, DONE, facts=facts)
            except Exception as exc:  # noqa: BLE001 - never stop the batch
                log.exception("recording %s failed", job.key)
                self._failed(stage, job, exc)
                continue
            back = time.time() - facts.get("end_ts", time.time())
            self.task_figures.append({"key": job.key, "latency_s": round(latency, 3), "return_s": round(back, 3), **facts})
        return bool(done)

    def _failed(self, stage, job: Job, exc: BaseException) -> None:
        reason = describe_error(exc)
        log.warning("task %s failed: %s", job.key, reason)
        try:
            with self.writer.transaction():
                stage.failed(self.view(), job, exc)
                self.ledger.finished(job.key, FAILED, error=reason)
        except Exception:  # noqa: BLE001
            log.exception("recording the failure of %s failed", job.key)

    def _drain_progress(self) -> None:
        """Tasks report no progress through the scheduler (the summary says where the batch is)."""

    def _report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._reported < 1.0:
            return
        self._reported = now
        self.progress_out.update(night_status(self.writer, self.batch), len(self.futures), force=force)


__all__ = ["Reprocessor", "describe_error"]
