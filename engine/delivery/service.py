"""The delivery queue beside the reduction: plan ledger rows, send them on threads, record replies.

The engine calls :meth:`DeliveryService.step` once per loop iteration. It never waits on the
network: calls run on the service's own small thread pool (never the reduction's process pool),
and only the engine's main thread writes the ledger. A destination that is down leaves its rows
``pending`` with a reason and the next attempt's time; the night goes on.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from engine.config import Config
from engine.delivery import ledger
from engine.delivery.ledger import Outcome, Planned
from engine.delivery.planner import Moment, deliverable_night, plan_night
from engine.state.writer import StateWriter
from engine.timeutil import now_s, utc_now

log = logging.getLogger(__name__)

PLAN_INTERVAL_S = 0.5
"""Least time between two planning passes over the state database [s]."""


def enabled(config: Config) -> bool:
    """Delivery is switched on and at least one destination is configured."""
    return config.delivery.enabled and any((config.fritz.configured, config.slack.configured,
                                            bool(config.smtp.host and config.report.recipients),
                                            config.tns.configured))


class DeliveryService:
    """Plans, sends and records deliveries for the engine (or for ``sedmtui deliver run``).

    Parameters
    ----------
    config : Config
        Resolved configuration (with its secrets).
    writer : StateWriter
        The lease holder's writer; used on the calling thread only.
    """

    def __init__(self, config: Config, writer: StateWriter) -> None:
        from engine.delivery.fritz import FritzClient

        self.config = config
        self.writer = writer
        self.redux_root = Path(config.paths.redux_root)
        self.executor = ThreadPoolExecutor(max_workers=config.delivery.workers, thread_name_prefix="delivery")
        self.inflight: dict[Future, dict] = {}
        self.fritz = FritzClient(config.fritz) if config.fritz.configured else None
        self._last_plan = 0.0

    @classmethod
    def create(cls, config: Config, writer: StateWriter) -> DeliveryService | None:
        """A service when delivery is enabled and configured, else ``None`` (nothing is sent)."""
        return cls(config, writer) if enabled(config) else None

    # ------------------------------------------------------------------ loop
    def start(self) -> None:
        """Settle rows a killed process left ``sending`` (see :func:`ledger.reconcile_interrupted`)."""
        n = ledger.reconcile_interrupted(self.writer)
        if n:
            log.warning("%d delivery row(s) were interrupted while sending", n)

    def step(self, nights: Iterable[str], *, live: bool, forced: Iterable[str] = ()) -> bool:
        """Record finished sends, plan new rows, start due sends. True if anything happened."""
        worked = self.collect()
        if time.monotonic() - self._last_plan >= PLAN_INTERVAL_S:
            self._last_plan = time.monotonic()
            self.plan(nights, live=live, forced=forced)
        return self.submit() or worked

    def plan(self, nights: Iterable[str], *, live: bool, forced: Iterable[str] = ()) -> int:
        """Add the rows the nights call for; returns how many were new."""
        now = utc_now()
        moment = Moment(now=now, today=now.strftime("%Y%m%d"), live=live)
        forced = set(forced)
        suffix = "#dry" if self.config.delivery.dry_run else ""
        new = 0
        for night in sorted(set(nights) | forced):
            if night not in forced and not deliverable_night(night, self.config, moment.today):
                continue
            known = {r["key"] for r in self.writer.all("SELECT key FROM deliveries WHERE night=?", [night])}
            for planned in plan_night(self.writer.all, night, self.config, moment):
                if planned.key + suffix not in known:  # one read per pass; a write only for what is new
                    new += self.add(planned)
        return new

    def add(self, planned: Planned) -> int:
        """Add one planned row (1 if new); a new spectrum supersedes an older unsent one."""
        rid = ledger.add(self.writer, planned, dry_run=self.config.delivery.dry_run)
        if rid is not None and planned.destination == "fritz_spectrum" and not self.config.delivery.dry_run:
            ledger.skip_superseded(self.writer, planned)
        return int(rid is not None)

    def submit(self) -> bool:
        """Start the due rows the pool has room for."""
        room = self.config.delivery.workers - len(self.inflight)
        if room <= 0:
            return False
        rows = ledger.due(self.writer, limit=room)
        for row in rows:
            try:
                task = self.prepare(row)
            except Exception as exc:
                log.exception("preparing delivery %s failed", row["id"])
                ledger.record(self.writer, row, Outcome("failed", f"cannot prepare: {exc}"), **self._policy())
                continue
            ledger.mark_sending(self.writer, row["id"])
            self.inflight[self.executor.submit(_guarded, task, row["destination"])] = row
        return bool(rows)

    def collect(self) -> bool:
        """Record every finished send (main thread)."""
        done = [f for f in self.inflight if f.done()]
        for fut in done:
            row = self.inflight.pop(fut)
            state = ledger.record(self.writer, row, fut.result(), **self._policy())
            if state == "sent" and row["destination"] == "fritz_spectrum":
                self.write_report_ztf(row["night"])
        return bool(done)

    def _policy(self) -> dict:
        return {"backoff_s": self.config.delivery.backoff_s, "max_attempts": self.config.delivery.max_attempts}

    # ------------------------------------------------------------------ sends
    def prepare(self, row: dict) -> Callable[[], Outcome]:
        """The network work of one row, with everything it needs read from the state now."""
        from engine.delivery import fritz, mail, slack, tns

        cfg, payload = self.config, row["payload"]
        night_dir = self.redux_root / row["night"]
        dest = row["destination"]
        if dest.startswith("fritz") and self.fritz is None:
            raise RuntimeError("fritz.token is not set")
        if dest == "fritz_spectrum":
            return lambda: fritz.deliver_spectrum(self.fritz, payload, night_dir)
        if dest == "fritz_annotation":
            return lambda: fritz.deliver_annotation(self.fritz, payload, row["dep_remote_id"])
        if dest == "fritz_status":
            return lambda: fritz.deliver_status(self.fritz, payload)
        if dest == "slack":
            if cfg.slack.token and cfg.slack.channel_id:
                return lambda: slack.upload_figure(cfg.slack, filename=payload["filename"],
                                                   data=(night_dir / payload["filename"]).read_bytes(),
                                                   title=payload["title"])
            return lambda: slack.post_webhook(cfg.slack, text=f"SEDM {row['night']}: {payload['title']}")
        if dest == "email" and payload.get("kind") == "target":
            def send_target() -> Outcome:
                files = mail.night_figures(night_dir, payload["files"])  # (name, bytes) of what exists
                msg = mail.target_message(sender=cfg.smtp.sender, recipient=payload["recipients"][0],
                                          subject=payload["subject"], body=payload["body"], files=files)
                return mail.send(cfg.smtp, msg, payload["recipients"])
            return send_target
        if dest == "email":
            figures = [r["verify_png"] for r in self.writer.all(
                "SELECT e.verify_png FROM extractions e JOIN observations o ON o.current_extraction_id = e.id "
                "WHERE o.night=? ORDER BY o.obs_id", [row["night"]])] if cfg.report.attach_figures else []

            def send_email() -> Outcome:
                body = (night_dir / payload["report"]).read_text()
                msg = mail.report_message(night=row["night"], sender=cfg.smtp.sender, recipients=payload["recipients"],
                                          body=body, figures=mail.night_figures(night_dir, figures),
                                          max_attach_bytes=int(cfg.report.max_attach_mb * 1e6))
                return mail.send(cfg.smtp, msg, payload["recipients"])
            return send_email
        if dest == "tns_upload":
            return lambda: tns.upload_spectrum(cfg.tns, payload["filename"], (night_dir / payload["filename"]).read_bytes())
        if dest == "tns":
            return lambda: tns.send_report(cfg.tns, tns.with_spectrum_file(payload["report"], row.get("dep_remote_id")))
        if dest == "tns_reply":
            return lambda: tns.check_reply(cfg.tns, row["dep_remote_id"])
        raise RuntimeError(f"unknown destination {dest}")

    # ------------------------------------------------------------------ ends
    def busy(self) -> bool:
        """Sends in flight, or pending rows."""
        return bool(self.inflight) or bool(self.writer.one("SELECT 1 AS x FROM deliveries WHERE state='pending'"))

    def drain(self, nights: Iterable[str], *, timeout_s: float, live: bool = False,
              forced: Iterable[str] = (), poll_s: float = 0.05) -> dict[str, int]:
        """Deliver what can be delivered within ``timeout_s``; returns the ledger's counts by state."""
        nights = list(nights)
        self.plan(nights, live=live, forced=forced)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.step(nights, live=live, forced=forced)
            if not self.inflight and not ledger.due(self.writer, limit=1):
                nxt = self.writer.one(
                    """SELECT min(d.next_attempt) AS t FROM deliveries d LEFT JOIN deliveries dep ON dep.id = d.depends_on
                       WHERE d.state='pending' AND (dep.id IS NULL OR dep.state IN ('pending', 'sending', 'sent'))""")
                if nxt is None or nxt["t"] is None or nxt["t"] - now_s() > deadline - time.monotonic():
                    break
            time.sleep(poll_s)
        self.close(wait_s=max(0.0, deadline - time.monotonic()))
        return ledger.counts(self.writer.all("SELECT state, dry_run FROM deliveries"))

    def close(self, wait_s: float = 5.0) -> None:
        """Wait up to ``wait_s`` for sends in flight, record them, stop the threads (a send still in
        flight stays ``sending`` and is settled at the next start)."""
        deadline = time.monotonic() + wait_s
        while self.inflight and time.monotonic() < deadline:
            time.sleep(0.02)
            self.collect()
        self.collect()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ reports
    def write_report_ztf(self, night: str) -> None:
        """``report_ztf.txt`` of a night, from the ledger's stored spectra (atomic)."""
        from engine.delivery.payloads import report_ztf_text

        rows = [dict(r, payload=json.loads(r["payload_json"])) for r in self.writer.all(
            "SELECT * FROM deliveries WHERE night=? AND destination='fritz_spectrum' AND state='sent' ORDER BY obs_id, id",
            [night])]
        path = self.redux_root / night / "report_ztf.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        tmp.write_text(report_ztf_text(rows, self.config.fritz.base_url))
        os.replace(tmp, path)

    def request_handlers(self) -> dict:
        """Engine request handlers: ``tns_report`` and ``deliver_retry``."""
        from engine.delivery.requests import handle_retry, handle_tns

        return {"tns_report": lambda view, req: handle_tns(self, req),
                "deliver_retry": lambda view, req: handle_retry(self, req)}


def _guarded(task: Callable[[], Outcome], destination: str) -> Outcome:
    """Run a send on a delivery thread; a bug in our code fails the row alone, with its reason."""
    try:
        return task()
    except Exception as exc:
        log.exception("delivery to %s raised", destination)
        state = "retry" if destination in ledger.CHECKED_DESTINATIONS else "unknown"
        return Outcome(state, f"internal error while sending: {type(exc).__name__}: {exc}")
