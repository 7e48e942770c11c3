"""The headless engine loop (``sedmtui --batch``).

One process holds the writer lease on the state database and loops:

1. collect raw files (watchfiles events, periodic full rescans) and ingest the complete ones;
2. record finished jobs and their progress;
3. serve console/CLI requests;
4. ask every stage for jobs that are ready and run them on the executor (a process pool);
5. heartbeat (current activity, queue length), WAL checkpoints.

``--once`` reduces one night and exits when every stage is idle. SIGINT/SIGTERM stop the loop
cleanly; a restart resumes: finished work is recorded in the database and is not redone.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path

from engine.config import Config
from engine.errors import EngineError, RequestError
from engine.ingest.watcher import EventWatcher, ignored_night_dirs, resolve_polling, scan_raw
from engine.io.inputs import Refusal, parse_night
from engine.pipeline.ingest import Ingestor, nights_to_scan
from engine.pipeline.jobs import ENGINE_PID_ENV, InlineExecutor, Job, init_worker, start_worker
from engine.pipeline.records import finish_request_in
from engine.pipeline.stage import EngineView, Stage
from engine.state.db import open_writer
from engine.state.requests import claim_next, requeue_stale
from engine.state.writer import StateWriter
from engine.threads import one_blas_thread
from engine.timeutil import utc_now, utc_now_iso

log = logging.getLogger(__name__)

MAX_BUSY_ITERATIONS = 30
"""Consecutive loop iterations that may find the database locked before the engine gives up."""
MAX_REQUESTS_PER_STEP = 100
"""Requests served per loop iteration at most; the rest wait for the next one."""


def default_stages(config: Config) -> list[Stage]:
    """The night pipeline, in order: calibration, then per-exposure science, then requests."""
    from engine.pipeline.registry import build_stages

    return build_stages(config)


def absolute_paths(config: Config) -> Config:
    """``config`` with its raw root, reduction root and database made absolute, once.

    Watch events name files by absolute paths and rescans by the configured spelling; a
    relative ``--raw-root`` would ingest every file twice.
    """
    paths = config.paths
    resolved = dataclasses.replace(
        paths,
        raw_root=str(Path(paths.raw_root).expanduser().resolve()),
        redux_root=str(Path(paths.redux_root).expanduser().resolve()),
        db=str(Path(paths.db).expanduser().resolve()) if paths.db else "",
    )
    return dataclasses.replace(config, paths=resolved)


class Engine:
    """The engine process.

    Parameters
    ----------
    config : Config
        Resolved configuration.
    night : str, optional
        Only this UT night (and the previous day's afternoon calibrations).
    once : bool
        Reduce ``night`` and exit when done.
    stages : list of Stage, optional
        Override the pipeline (tests).
    deliver : bool
        Start the delivery stage when delivery is configured (``sedmtui reprocess`` passes False
        unless ``--deliver``).
    """

    def __init__(self, config: Config, *, night: str | None = None, once: bool = False,
                 stages: list[Stage] | None = None, deliver: bool = True) -> None:
        if once and night is None:
            raise EngineError("--once needs --night YYYYMMDD")
        if night is not None and isinstance(parse_night(night), Refusal):
            raise EngineError(f"--night: {parse_night(night).reason}")
        config = absolute_paths(config)
        self.config = config
        self.night = night
        self.once = once
        self.raw_root = Path(config.paths.raw_root)
        self.redux_root = Path(config.paths.redux_root)
        self.ignored_dirs: set[str] = set()
        self.db = open_writer(config.paths.db_path)
        self.writer = StateWriter(self.db)
        self.stages = list(stages) if stages is not None else default_stages(config)
        self.stop_event = threading.Event()
        self.futures: dict[Future, Job] = {}
        self.executor: Executor | None = None
        self.progress_queue = None
        self.watcher: EventWatcher | None = None
        self.ingestor: Ingestor | None = None
        self.nights: set[str] = set()
        self._last_rescan = 0.0
        self._last_checkpoint = time.time()
        self._activity = ""
        from engine.delivery.service import DeliveryService

        self.delivery = DeliveryService.create(config, self.writer) if deliver else None
        """The delivery queue (``None``: delivery off or nothing configured; nothing is sent)."""
        if self.delivery is not None:
            from engine.pipeline.delivery_stage import DeliveryStage

            self.stages.append(DeliveryStage(self.delivery))

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Take the lease, reset interrupted work, start the executor and the watcher."""
        self.writer.acquire_lease(self.config.engine.lease_timeout_s)
        n = requeue_stale(self.db)
        if n:
            self.writer.event("engine", f"{n} interrupted request(s) put back in the queue")
        self._requeue_observations()
        if self.delivery is not None:
            self.delivery.start()
        workers = self.config.engine.workers
        if workers <= 1:
            self.executor = InlineExecutor()
        else:
            # One thread of BLAS per worker: the pool is the parallelism (no oversubscription).
            one_blas_thread()
            ctx = multiprocessing.get_context("forkserver")
            os.environ[ENGINE_PID_ENV] = str(os.getpid())  # the fork server dies with this engine
            ctx.set_forkserver_preload(["engine.pipeline.lifeline", "engine.pipeline.registry",
                                        "engine.pipeline.preload"])
            self.progress_queue = ctx.Queue()
            self.executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=ctx, initializer=init_worker,
                initargs=(self.progress_queue, self.config.classify.templates_dir, os.getpid()),
            )
            # Spawn every worker now (imports and templates loaded) rather than on the first job.
            for _ in range(workers):
                self.executor.submit(start_worker)
        self.ingestor = Ingestor(self.writer, self.config.watch)
        if self.night is None:
            for night in self.unfinished_nights():
                self._open_night(night)
        if not self.once:
            polling = resolve_polling(self.config.watch.force_polling, self.raw_root)
            self.watcher = EventWatcher(self.raw_root, force_polling=polling, poll_delay_ms=self.config.watch.poll_delay_ms)
            self.watcher.start()
            self.writer.event("engine", f"watching {self.raw_root} ({'polling' if polling else 'inotify'})")

    def _requeue_orphaned_requests(self) -> None:
        """Requests claimed by an iteration that then failed (and served by no running job) go
        back to ``pending``, so they are served in this run, not only after a restart."""
        serving = sorted({int(j.context["request_id"]) for j in self.futures.values() if j.context.get("request_id")})
        marks = ", ".join("?" * len(serving))
        try:
            with self.writer.transaction():
                self.db.execute(f"UPDATE requests SET status='pending', claimed_at=NULL WHERE status='running'"
                                f"{f' AND id NOT IN ({marks})' if serving else ''}", serving)
        except sqlite3.OperationalError as exc:
            log.warning("could not requeue requests yet (%s)", exc)

    def unfinished_nights(self) -> list[str]:
        """Nights a previous engine left with work to do (an uncalibrated night, exposures waiting
        or reducing). A restarted engine in watch mode ingests nothing new for them, so without
        this they would never be opened again and their exposures would wait forever."""
        rows = self.writer.all(
            """SELECT night FROM nights WHERE coalesce(calib_status, 'waiting') NOT IN ('ok', 'fallback', 'failed')
               UNION SELECT night FROM observations WHERE state IN ('waiting', 'reducing')""")
        return sorted(r["night"] for r in rows if not isinstance(parse_night(r["night"]), Refusal))

    def _requeue_observations(self) -> None:
        """Exposures left ``reducing`` by a dead engine go back to ``waiting``, each with an event."""
        with self.writer.transaction():
            rows = self.writer.all("SELECT id, night, obs_id, object FROM observations WHERE state='reducing'")
            for r in rows:
                self.writer.update("observations", r["id"], {"state": "waiting", "stage": "requeued after restart",
                                                             "updated": utc_now_iso()})
                self.writer.event("observation", f"{r['obs_id']} {r['object'] or ''}: interrupted by an engine stop; "
                                  "queued again", night=r["night"], obs_id=r["obs_id"], level="warning",
                                  payload={"state": "waiting", "requeued": True})

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM request a clean stop."""
        def handler(signum, _frame):
            log.info("signal %s: stopping", signum)
            self.stop_event.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def close(self) -> None:
        """Stop the watcher and the executor, release the lease."""
        if self.watcher is not None:
            self.watcher.stop()
        if self.delivery is not None:
            self.delivery.close(wait_s=min(5.0, self.config.delivery.drain_timeout_s))
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
            self._collect(block=False)
        try:
            self.writer.release_lease()
            self.writer.checkpoint()
        finally:
            self.db.close()

    def run(self) -> int:
        """Loop until stopped (or, with ``--once``, until the night is reduced). Returns 0."""
        self.start()
        busy = 0
        try:
            while not self.stop_event.is_set():
                try:
                    worked = self.step()
                except sqlite3.OperationalError as exc:
                    # The busy timeout ran out (another process held the write lock for seconds):
                    # the iteration's transaction rolled back; try again rather than die.
                    busy += 1
                    if "locked" not in str(exc) and "busy" not in str(exc) or busy > MAX_BUSY_ITERATIONS:
                        raise
                    log.warning("state database busy (%s); retrying (%d)", exc, busy)
                    self.stop_event.wait(1.0)
                    self._requeue_orphaned_requests()
                    continue
                busy = 0
                if self.once and self._night_done():
                    self.writer.event("engine", f"night {self.night} reduced", night=self.night)
                    self._drain_deliveries()
                    break
                if not worked:
                    self._idle_wait(self.config.engine.idle_poll_s)
        finally:
            self.close()
        return 0

    def _idle_wait(self, timeout_s: float, slice_s: float = 0.05) -> None:
        """Sleep up to ``timeout_s``, waking within ``slice_s`` when a job finishes or another
        process commits (a console request): checking costs one ``PRAGMA data_version``."""
        deadline = time.monotonic() + timeout_s
        version = self.writer.data_version()
        while not self.stop_event.wait(min(slice_s, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline or any(f.done() for f in self.futures):
                return
            if self.writer.data_version() != version:
                return

    # ------------------------------------------------------------------ one iteration
    def step(self) -> bool:
        """One loop iteration; True if anything happened."""
        worked = self._ingest()
        worked |= self._collect(block=False)
        worked |= self._serve_requests()
        worked |= self._plan_and_submit()
        view = self.view()
        for stage in self.stages:
            worked |= stage.tick(view)
        self._heartbeat()
        if time.time() - self._last_checkpoint > 60.0:
            self.writer.checkpoint()
            self._last_checkpoint = time.time()
        return worked

    def view(self) -> EngineView:
        """The stages' view of the engine."""
        now = utc_now()
        return EngineView(
            config=self.config, writer=self.writer, nights=set(self.nights),
            running={job.key for job in self.futures.values()}, once=self.once,
            ingest_idle=self.ingestor is not None and self.ingestor.fresh == 0,
            now_ut_hour=now.hour + now.minute / 60.0, today=now.strftime("%Y%m%d"),
        )

    def _ingest(self) -> bool:
        assert self.ingestor is not None
        now = time.time()
        scan_nights = nights_to_scan(self.night) if self.night else None
        if now - self._last_rescan > self.config.watch.rescan_s or self._last_rescan == 0.0:
            self.ingestor.nominate(scan_raw(self.raw_root, scan_nights))
            self._report_ignored_dirs()
            self._last_rescan = now
        if self.watcher is not None:
            paths = self.watcher.drain()
            if scan_nights is not None:
                paths = {p for p in paths if p.parent.name in scan_nights}
            self.ingestor.nominate(paths)
        rows = self.ingestor.sweep(force=self.once)
        for row in rows:
            self._open_night(row["night"] if not self.night else self.night)
        if self.night:
            self._open_night(self.night)
        return bool(rows)

    def _report_ignored_dirs(self) -> None:
        """Say once (log and event) why a directory that looks like a night is ignored."""
        for name, reason in sorted(ignored_night_dirs(self.raw_root).items()):
            if name not in self.ignored_dirs:
                self.ignored_dirs.add(name)
                log.warning("ignoring %s: %s", self.raw_root / name, reason)
                self.writer.event("engine", f"ignoring raw directory {name}: {reason}", level="warning",
                                  payload={"ignored_dir": name})

    def _open_night(self, night: str) -> None:
        if night not in self.nights:
            self.nights.add(night)
            self.writer.ensure_night(night, str(self.raw_root / night), str(self.redux_root / night))
            (self.redux_root / night).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ jobs
    def _stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def _plan_and_submit(self) -> bool:
        assert self.executor is not None
        capacity = max(1, self.config.engine.workers) + 1 - len(self.futures)
        if capacity <= 0:
            return False
        view = self.view()
        jobs: list[Job] = []
        for stage in self.stages:
            jobs.extend(j for j in stage.plan(view) if j.key not in view.running)
        jobs.sort(key=lambda j: j.priority)
        for job in jobs[:capacity]:
            self._submit(job, view)
        return bool(jobs)

    def _submit(self, job: Job, view: EngineView) -> None:
        self._set_activity(job.context.get("label") or f"{job.stage} {job.key.split(':', 1)[-1]}")
        self._stage(job.stage).on_submit(view, job)
        fut = self.executor.submit(job.fn, *job.args)
        self.futures[fut] = job
        view.running.add(job.key)

    def _collect(self, *, block: bool) -> bool:
        self._drain_progress()
        done = [f for f in self.futures if f.done()]
        for fut in done:
            job = self.futures.pop(fut)
            stage = self._stage(job.stage)
            view = self.view()
            try:
                result = fut.result()
            except BaseException as exc:  # noqa: BLE001 - a failed job fails alone
                log.exception("job %s failed", job.key)
                try:
                    stage.failed(view, job, exc)
                except Exception:  # noqa: BLE001
                    log.exception("recording the failure of %s failed", job.key)
                continue
            try:
                stage.record(view, job, result)
            except Exception as exc:  # noqa: BLE001 - never stop the night
                log.exception("recording %s failed", job.key)
                stage.failed(view, job, exc)
        return bool(done)

    def _drain_progress(self) -> None:
        if self.progress_queue is None:
            return
        latest: dict[str, tuple] = {}
        while True:
            try:
                key, stage, fraction, message = self.progress_queue.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty
                break
            latest[key] = (stage, fraction, message)
        for key, (stage, fraction, message) in latest.items():
            job = next((j for j in self.futures.values() if j.key == key), None)
            if job is None:
                continue
            self._stage(job.stage).progress(self.view(), job, stage, fraction, message)

    def _drain_deliveries(self) -> None:
        """``--once``: deliver what can be delivered within ``delivery.drain_timeout_s``, say what is left."""
        if self.delivery is None:
            return
        counts = self.delivery.drain(self.nights, timeout_s=self.config.delivery.drain_timeout_s)
        left = {k: v for k, v in counts.items() if k in ("pending", "sending", "failed")}
        msg = "deliveries: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) if counts else "deliveries: none"
        if left:
            msg += " (`sedmtui deliver status` for the reasons; pending rows go out at the next engine run)"
        if left:
            log.warning(msg)
        else:
            log.info(msg)
        self.writer.event("delivery", msg, night=self.night, level="warning" if left else "info", payload=counts)

    # ------------------------------------------------------------------ requests
    def request_handlers(self) -> dict:
        """``{kind: handler}`` merged from every stage's ``request_handlers``."""
        handlers = {}
        for stage in self.stages:
            handlers.update(stage.request_handlers())
        if self.delivery is None:  # no delivery stage: its requests are refused with the reason
            from engine.delivery.requests import off_handlers

            handlers.update(off_handlers())
        return handlers

    def _serve_requests(self, limit: int = MAX_REQUESTS_PER_STEP) -> bool:
        """Serve pending requests, at most ``limit`` per loop iteration (a flood of requests
        must not stop the heartbeat, ingest or the collection of finished jobs)."""
        worked = False
        handlers = self.request_handlers()
        for _ in range(limit):
            req = claim_next(self.db)
            if req is None:
                return worked
            worked = True
            self._set_activity(f"request #{req['id']} {req['kind']} {req['target'] or ''}".strip())
            try:
                if req["refusal"]:
                    raise RequestError(req["refusal"])
                handler = handlers.get(req["kind"])
                if handler is None:
                    raise RequestError(f"this engine cannot serve {req['kind']} requests yet")
                outcome = handler(self.view(), req)
            except RequestError as exc:
                self.finish_request(req, error=str(exc))
                continue
            except Exception as exc:  # noqa: BLE001
                log.exception("request %s failed", req["id"])
                self.finish_request(req, error=f"internal error: {exc}")
                continue
            if isinstance(outcome, Job):
                outcome.context.setdefault("label", f"re-extracting {req['target']} (request #{req['id']})")
                self._submit(outcome, self.view())
            else:
                self.finish_request(req, result=outcome)
        return worked

    def finish_request(self, req: dict, *, result: dict | None = None, error: str | None = None) -> None:
        """Mark a request done or failed (with an event), in one transaction."""
        with self.writer.transaction():
            finish_request_in(self.view(), req, result=result, error=error)

    # ------------------------------------------------------------------ status
    def _set_activity(self, text: str) -> None:
        self._activity = text

    def _heartbeat(self) -> None:
        running = [j.key.split(":", 1)[-1] for j in self.futures.values()]
        activity = self._activity if self.futures else "idle"
        if self.futures and len(running) > 1:
            activity = f"{self._activity} (+{len(running) - 1} more)"
        queue_len = len(self.futures) + (self.ingestor.pending if self.ingestor else 0)
        self.writer.heartbeat(activity, queue_len)

    def _night_done(self) -> bool:
        if self.futures or (self.ingestor and self.ingestor.pending):
            return False
        view = self.view()
        if any(s.busy(view) for s in self.stages):
            return False
        pending = self.writer.one("SELECT count(*) AS n FROM requests WHERE status IN ('pending','running')")
        return not pending["n"]
