"""``sedmtui deliver``: the delivery ledger from the shell.

::

    sedmtui deliver status  [--night D] [--all]     what was sent where, what waits and why
    sedmtui deliver preview [--night D]             what would be sent now (nothing is written)
    sedmtui deliver retry   [--night D] [ID ...]    ask the engine to retry failed rows
    sedmtui deliver tns HH_MM_SS --tns-name 2026abc [--type "SN Ia"]   ask for a TNS report
    sedmtui deliver run     [--night D] [--timeout S] [--retry-failed] [--dry-run]
                            no engine running: deliver what is pending (takes the writer lease)

Exit status: 0 done, 1 something failed or stays pending, 2 usage or database problem, 3 no
live engine for a request (or, for ``run``, an engine is running: it delivers).
"""

from __future__ import annotations

import argparse
import json

from engine.commands import (
    EXIT_FAILED,
    EXIT_NO_ENGINE,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    _echo_status,
    _fail,
    _open,
    no_engine_message,
    wait_for_request,
)
from engine.delivery.status import ledger_rows, status_table, summary_line

ACTIONS = ("status", "preview", "retry", "tns", "run")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``deliver`` subcommand's arguments (after the common ones)."""
    p.description = "The delivery ledger: Fritz spectra, annotations and status, e-mail, Slack, TNS."
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("args", nargs="*", help="retry: row ids; tns: HH_MM_SS")
    p.add_argument("--all", action="store_true", help="status: every night, not only --night/the newest")
    p.add_argument("--tns-name", help="tns: the TNS name without prefix (2026abc)")
    p.add_argument("--type", dest="tns_type", help="tns: the TNS type when not SNID's (\"SN Ia\")")
    p.add_argument("--timeout", type=float, default=None, help="run: seconds to keep trying (delivery.drain_timeout_s)")
    p.add_argument("--retry-failed", action="store_true", help="run: queue failed rows again first")
    p.add_argument("--dry-run", action="store_true", help="run: record what would be sent, send nothing")


def run(ns: argparse.Namespace) -> int:
    """Dispatch ``sedmtui deliver ACTION``."""
    return {"status": _status, "preview": _preview, "retry": _retry, "tns": _tns, "run": _run}[ns.action](ns)


def _status(ns) -> int:
    config, reader, _conn, night = _open(ns, write=False)
    rows = ledger_rows(reader.query, None if ns.all else night)
    print(f"{'all nights' if ns.all else f'night {night}'} · {summary_line(rows)}")
    if not config.delivery.enabled:
        print("delivery is off ([delivery] enabled = false): nothing is sent")
    if rows:
        print(status_table(rows))
    return EXIT_OK


def _preview(ns) -> int:
    from engine.delivery.ledger import describe
    from engine.delivery.planner import Moment, plan_night
    from engine.delivery.service import enabled
    from engine.timeutil import utc_now

    config, reader, _conn, night = _open(ns, write=False)
    if night is None:
        return _fail("no night in the database yet", EXIT_USAGE)
    now = utc_now()
    planned = plan_night(reader.query, night, config, Moment(now=now, today=now.strftime("%Y%m%d"), live=False))
    known = {r["key"] for r in ledger_rows(reader.query, night)}
    new = [p for p in planned if p.key not in known]
    state = "on" if enabled(config) else "OFF (nothing would actually be sent)"
    print(f"night {night} · delivery {state}{' · dry run' if config.delivery.dry_run else ''} · "
          f"{len(new)} new, {len(planned) - len(new)} already in the ledger")
    for p in new:
        print(f"  {p.destination:<17} {describe(p.destination, p.payload)}"
              + (" (after its spectrum is stored)" if p.depends_on_key else ""))
    return EXIT_OK


def _file(ns, kind: str, *, target: str | None, params: dict) -> int:
    from engine.errors import RequestError
    from engine.state.requests import submit_request

    _config, reader, conn, night = _open(ns, write=True)
    if night is None:
        return _fail("no night in the database yet", EXIT_USAGE)
    status = reader.engine_status()
    if not status.get("alive"):
        return _fail(no_engine_message(status) + "; nothing was filed (`sedmtui deliver run` delivers without one).",
                     EXIT_NO_ENGINE)
    try:
        rid = submit_request(conn, kind, night=night, target=target, params=params)
    except RequestError as exc:
        return _fail(str(exc), EXIT_USAGE)
    row = wait_for_request(reader, rid, timeout_s=60.0, echo=_echo_status)
    if row is None:
        return _fail(f"request #{rid} not served within 60 s; it stays queued", EXIT_TIMEOUT)
    if row["status"] == "failed":
        return _fail(f"the engine refused: {row['error']}", EXIT_FAILED)
    print(json.dumps(json.loads(row["result_json"] or "{}")))
    return EXIT_OK


def _retry(ns) -> int:
    try:
        ids = [int(a) for a in ns.args]
    except ValueError:
        return _fail(f"retry takes delivery row ids (numbers), not {ns.args}", EXIT_USAGE)
    return _file(ns, "deliver_retry", target=None, params={"ids": ids or None})


def _tns(ns) -> int:
    if len(ns.args) != 1 or not ns.tns_name:
        return _fail("usage: sedmtui deliver tns HH_MM_SS --tns-name 2026abc [--type 'SN Ia']", EXIT_USAGE)
    return _file(ns, "tns_report", target=ns.args[0].replace(":", "_"),
                 params={"tns_name": ns.tns_name, "type": ns.tns_type})


def _run(ns) -> int:
    from engine.config import resolve_config
    from engine.delivery import ledger
    from engine.delivery.service import DeliveryService, enabled
    from engine.errors import EngineError, LeaseError
    from engine.state.db import open_writer
    from engine.state.writer import StateWriter

    try:
        config = resolve_config(ns)
    except EngineError as exc:
        return _fail(str(exc), EXIT_USAGE)
    if ns.dry_run:
        import dataclasses

        config = dataclasses.replace(config, delivery=dataclasses.replace(config.delivery, dry_run=True))
    if not enabled(config):
        return _fail("delivery is off or nothing is configured ([delivery] enabled and a destination): "
                     "nothing to do", EXIT_FAILED)
    writer = StateWriter(open_writer(config.paths.db_path))
    try:
        writer.acquire_lease(config.engine.lease_timeout_s)
    except LeaseError as exc:
        writer.db.close()
        return _fail(f"{exc}\nThe running engine delivers; `sedmtui deliver retry` asks it to retry failed rows.",
                     EXIT_NO_ENGINE)
    try:
        svc = DeliveryService(config, writer)
        svc.start()
        if ns.retry_failed:
            ledger.retry(writer, night=ns.night)
        nights = [ns.night] if ns.night else [r["night"] for r in writer.all("SELECT night FROM nights")]
        timeout = config.delivery.drain_timeout_s if ns.timeout is None else ns.timeout
        svc.drain(nights, timeout_s=timeout, forced=[ns.night] if ns.night else ())
        rows = ledger.rows_of(writer.all, ns.night)
        print(summary_line(rows))
        left = [r for r in rows if r["state"] in ("pending", "sending", "failed") and not r["dry_run"]]
        if left:
            print(status_table(left))
        return EXIT_FAILED if left else EXIT_OK
    finally:
        writer.release_lease()
        writer.db.close()
