"""Shell commands that talk to a running engine through the state database (Textual-free).

::

    sedmtui status                          engine status and the night's targets, as text
    sedmtui doctor [--night D]              check the reduction root and say what to do
    sedmtui report [--final] [--comment T] [--print]
    sedmtui redex HH_MM_SS [X Y] [--recover] [--lstep N] [--no-wait]
    sedmtui redex HH_MM_SS --accept | --reject [--extraction ID]

They file the same ``requests`` rows as the console and wait for the engine to serve them
(``pending`` -> ``running`` -> ``done``/``failed``). Without a live engine nothing is filed
(unless ``--no-wait``): the command says so and exits with status 3.

Exit status: 0 done, 1 the engine refused or failed the request, 2 usage or database problem,
3 no live engine, 4 timed out waiting.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
from pathlib import Path

from engine.delivery.status import exposure_states, ledger_rows, summary_line
from engine.io.inputs import clean_text

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_ENGINE, EXIT_TIMEOUT = 0, 1, 2, 3, 4
CONSOLE_TABLE = "console"
"""Table of the configuration file read by the console (keymap...), ignored by the engine."""


def _whole(value: float | None) -> str:
    """``value`` rounded to a whole number, ``-`` when missing; never ``-0``."""
    if value is None:
        return "-"
    text = f"{value:.0f}"
    return "0" if text == "-0" else text


# --------------------------------------------------------------------------------------------- config

def config_path(ns: argparse.Namespace) -> Path | None:
    """The configuration file in use: ``--config``, ``$SEDMTUI_CONFIG``, else ``./sedmtui.toml``."""
    from engine.config import config_file_path

    return config_file_path(getattr(ns, "config", None))


def load_config_with_console(ns: argparse.Namespace):
    """The engine configuration plus the file's ``[console]`` table (keymap and options).

    Returns
    -------
    tuple
        ``(Config, console_table: dict, path: Path | None)``.

    Raises
    ------
    engine.errors.ConfigError
        Unreadable or invalid file.
    """
    from engine.config import read_config_file, resolve_config

    path = config_path(ns)
    console = read_config_file(path).get(CONSOLE_TABLE, {}) or {}
    config = resolve_config(argparse.Namespace(**{**vars(ns), "config": None if path is None else str(path)}))
    return config, console, path


# --------------------------------------------------------------------------------------------- shared
def _open(ns: argparse.Namespace, *, write: bool):
    """``(config, reader, conn or None, night)``; raises SystemExit with a message on problems."""
    from engine.errors import EngineError
    from engine.state.db import connect
    from engine.state.reader import StateReader

    try:
        config, _console, _path = load_config_with_console(ns)
        db = Path(config.paths.db_path)
        if not db.exists():
            raise SystemExit(_fail(f"no state database at {db}: start the engine (sedmtui --batch) or pass --db",
                                   EXIT_USAGE))
        reader = StateReader(db, readonly=not write)
        conn = connect(db) if write else None
    except EngineError as exc:
        raise SystemExit(_fail(str(exc), EXIT_USAGE)) from exc
    except (sqlite3.Error, OSError) as exc:
        raise SystemExit(_fail(f"cannot open the state database: {exc}", EXIT_USAGE)) from exc
    night = getattr(ns, "night", None) or next(iter(reader.nights()), None)
    return config, reader, conn, night


def _fail(msg: str, code: int) -> int:
    print(f"sedmtui: {clean_text(msg)}", file=sys.stderr)
    return code


def engine_line(status: dict) -> str:
    """One line describing the engine."""
    if status.get("status") in (None, "absent") and not status.get("owner"):
        return "engine: none has run on this database"
    age = status.get("age_s")
    age_s = f"{age:.0f} s ago" if age is not None else "never"
    state = "alive" if status.get("alive") else ("stopped" if status.get("status") == "stopped" else "STALE")
    activity = status.get("activity") or "-"
    doing = "" if activity == state else f" · {activity}"
    return clean_text(f"engine: {state}{doing} · queue {status.get('queue_len') or 0} · "
                      f"heartbeat {age_s} ({status.get('owner') or '?'}, {status.get('version') or '?'})")


def no_engine_message(status: dict) -> str:
    """Why a request would not be served now."""
    return f"no live engine to serve the request ({engine_line(status)[8:]}). Start it with `sedmtui --batch`"


def wait_for_request(reader, request_id: int, *, timeout_s: float, poll_s: float = 0.2, echo=None) -> dict | None:
    """Wait until a request is done or failed; None on timeout. ``echo(row)`` sees status changes."""
    seen = None
    version = None
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        v = reader.data_version()
        if v != version:
            version = v
            row = reader.request(request_id)
            if row is not None and row["status"] != seen:
                seen = row["status"]
                if echo is not None:
                    echo(row)
                if seen in ("done", "failed"):
                    return row
        time.sleep(poll_s)
    return None


def _echo_status(row: dict) -> None:
    print(f"  request #{row['id']} {row['kind']}: {row['status']}", flush=True)


# --------------------------------------------------------------------------------------------- status
def targets_table(rows: list[dict], candidates: dict[str, int] | None = None) -> str:
    """The night's exposures as a fixed-width text table."""
    head = ["UT", "object", "kind", "exp", "air", "state", "Q", "type", "z", "rlap", "S/N", "extraction", "dlv",
            "reason"]
    body = []
    for r in rows:
        typ = "STD" if r["kind"] == "standard" else (
            (f"{r['snid_type']}-{r['snid_subtype']}" if r.get("snid_subtype") and not str(r["snid_subtype"]).startswith(
                r["snid_type"] or "") else (r.get("snid_subtype") or r.get("snid_type"))) or "-")
        state = r["state"] if r["state"] != "reducing" else f"{r['stage']} {100 * (r['progress'] or 0):.0f}%"
        ext = r.get("extraction") or "-"
        n = (candidates or {}).get(r["obs_id"], 0)
        if n:
            ext += f"+{n}redo"
        body.append([
            r["obs_id"].replace("_", ":"), (r["object"] or "").replace(" [A]", ""),
            {"standard": "std", "science": "sci"}.get(r["kind"], r["kind"]),
            f"{r['exptime']:.0f}" if r["exptime"] is not None else "-",
            f"{r['airmass']:.2f}" if r["airmass"] is not None else "-", state,
            "-" if r["quality"] is None else str(r["quality"]), typ,
            f"{r['redshift']:.3f}" if r["redshift"] is not None else "-",
            f"{r['rlap']:.1f}" if r["rlap"] is not None else "-", _whole(r["s2n"]),
            ext, r["delivered"] if isinstance(r["delivered"], str) else ("yes" if r["delivered"] else "no"),
            (r.get("quality_reason") or r.get("error") or "") if (r["quality"] or 0) > 0 or r.get("error") else "",
        ])
    body = [[clean_text(c) for c in b] for b in body]  # header and request text may hold escape codes
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([fmt(head)] + [fmt(b) for b in body])


def run_status(ns: argparse.Namespace) -> int:
    """``sedmtui status``: engine status, calibration and the night's targets as text.

    Read-only: it opens the database without creating any file, so it also works on a
    read-only mount or on a database owned by another user.
    """
    try:
        return _status(ns)
    except sqlite3.Error as exc:
        return _fail(f"cannot read the state database: {exc}", EXIT_USAGE)
    except BrokenPipeError:  # `sedmtui status | head`: the reader went away
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _status(ns: argparse.Namespace) -> int:
    _config, reader, _conn, night = _open(ns, write=False)
    status = reader.engine_status()
    print(engine_line(status))
    if night is None:
        print("no night in the database yet")
        return EXIT_OK
    cal = reader.calibration(night)
    if cal is None:
        print(f"night {night} · calibration: waiting")
    else:
        stats = json.loads(cal["stats_json"] or "{}")
        src = f" from {cal['source_night']}" if cal["source_night"] and cal["source_night"] != night else ""
        rms = stats.get("wave_rms_median_aa")
        flat = stats.get("flat_std")
        print(f"night {clean_text(night)} · calibration {cal['status']}{src} ({cal['level'] or '-'} set)"
              + (f" · λ rms {rms:.2f} Å" if rms is not None else "")
              + (f" · {stats['nspax']} spaxels" if stats.get("nspax") else "")
              + (f" · flat std {100 * flat:.1f} %" if flat is not None else ""))
    rows = reader.targets(night)
    cands = {r["obs_id"]: r["n"] for r in reader.query(
        "SELECT obs_id, count(*) AS n FROM extractions WHERE night=? AND status='candidate' GROUP BY obs_id", [night])}
    deliveries = ledger_rows(reader.query, night)
    if deliveries:  # the dlv column says what the delivery ledger says
        states = exposure_states(deliveries)
        rows = [dict(r, delivered=states.get(r["obs_id"], {}).get("state", "-")) for r in rows]
    print(targets_table(rows, cands) if rows else "no exposure yet")
    if deliveries:
        failed = [r for r in deliveries if r["state"] == "failed" and not r["dry_run"]]
        first = (f" · first failure: #{failed[0]['id']} {clean_text(failed[0]['last_error'] or '', max_len=120)}"
                 if failed else "")
        print(summary_line(deliveries) + first + " (sedmtui deliver status)")
    pending = reader.requests(status="pending") + reader.requests(status="running")
    if pending:
        print(clean_text(f"{len(pending)} request(s) waiting: " + ", ".join(
            f"#{r['id']} {r['kind']} {r['target'] or ''}".strip() for r in pending)))
    reader.close()
    return EXIT_OK


# --------------------------------------------------------------------------------------------- doctor
def run_doctor(ns: argparse.Namespace) -> int:
    """``sedmtui doctor``: check the reduction root (read-only) and say what to do.

    Exit status 0 when nothing failed (warnings allowed), 1 when a check failed.
    """
    from engine.errors import EngineError
    from engine.state.doctor import diagnose, format_report

    try:
        config, _console, _path = load_config_with_console(ns)
    except EngineError as exc:
        return _fail(str(exc), EXIT_USAGE)
    night = getattr(ns, "night", None)
    sections = diagnose(Path(config.paths.db_path), Path(config.paths.redux_root), night)
    print(format_report(sections))
    failed = any(f.level == "fail" for _s, findings in sections for f in findings)
    return EXIT_FAILED if failed else EXIT_OK


# --------------------------------------------------------------------------------------------- report
def _report_paths(config, night: str) -> tuple[Path, Path]:
    d = Path(config.paths.redux_root) / night
    return d / "report.txt", d / "report_final.txt"


def run_report(ns: argparse.Namespace) -> int:
    """``sedmtui report``: ask the engine for the night report (or the final report) and print it."""
    config, reader, conn, night = _open(ns, write=not ns.print_only)
    if night is None:
        return _fail("no night in the database yet", EXIT_USAGE)
    report, final = _report_paths(config, night)
    if ns.print_only:
        path = final if ns.final and final.exists() else report
        if not path.exists():
            return _fail(f"no report for {night} yet ({path} does not exist): run `sedmtui report` with a live engine",
                         EXIT_USAGE)
        print(clean_text(path.read_text(errors="replace"), keep_newlines=True), end="")
        return EXIT_OK
    status = reader.engine_status()
    if not status.get("alive"):
        msg = no_engine_message(status) + "; nothing was filed."
        if report.exists():
            age = (time.time() - report.stat().st_mtime) / 60.0
            msg += f"\nThe existing report ({report}, written {age:.0f} min ago) is shown by `sedmtui report --print`."
        return _fail(msg, EXIT_NO_ENGINE)
    from engine.errors import RequestError
    from engine.state.requests import submit_request

    kind = "final_report" if ns.final else "report"
    try:
        params = {"comment": ns.comment}
        if ns.final and getattr(ns, "resend", False):
            params["resend"] = True
        rid = submit_request(conn, kind, night=night, params=params)
    except RequestError as exc:
        return _fail(str(exc), EXIT_USAGE)
    print(f"filed request #{rid} ({kind} of {night}); waiting for the engine…", flush=True)
    row = wait_for_request(reader, rid, timeout_s=120.0, echo=_echo_status)
    if row is None:
        return _fail(f"request #{rid} not served within 120 s; it stays queued", EXIT_TIMEOUT)
    if row["status"] == "failed":
        return _fail(f"the engine refused: {row['error']}", EXIT_FAILED)
    paths = json.loads(row["result_json"] or "{}")
    shown = Path(paths.get("final") or paths.get("report") or report)
    print(clean_text(shown.read_text(errors="replace"), keep_newlines=True), end="")
    print(f"\n(written to {', '.join(paths.values())})")
    return EXIT_OK


# --------------------------------------------------------------------------------------------- redex
def _describe_extraction(reader, night: str, eid: int) -> str:
    ext = reader.extraction(eid)
    if ext is None:
        return f"extraction {eid}"
    cls = reader.classification(eid)
    parts = [f"{ext['tag']} (extraction {eid}, {ext['status']})", f"Q{ext['quality']} {ext['quality_reason'] or ''}".strip()]
    if ext["centroid_x"] is not None:
        parts.append(f"centroid ({ext['centroid_x']:+.2f}, {ext['centroid_y']:+.2f})")
    if cls and cls.get("type"):
        parts.append(f"SNID {cls.get('subtype') or cls['type']} z {cls['z']:.3f} rlap {cls['rlap']:.1f}")
    if ext["s2n"] is not None:
        parts.append(f"S/N {_whole(ext['s2n'])}")
    return " · ".join(parts)


def _redex_request(ns, reader, night: str) -> tuple[str, dict] | int:
    """``(kind, params)`` of a redex invocation, or an exit status after a usage message."""
    accept, reject = getattr(ns, "accept", False), getattr(ns, "reject", False)
    if accept or reject:
        eid = getattr(ns, "extraction", None)
        if eid is None:
            rows = [r for r in reader.extractions(night, ns.obs_id) if r["status"] == "candidate"]
            if not rows:
                return _fail(f"{ns.obs_id} has no re-extraction waiting for accept/reject", EXIT_USAGE)
            eid = rows[-1]["id"]
        return ("accept" if accept else "reject"), {"extraction_id": int(eid)}
    if ns.recover:
        return "recover", {}
    if len(ns.xy) not in (0, 2):
        return _fail(f"give the centroid as two numbers X Y, not {len(ns.xy)}", EXIT_USAGE)
    if not ns.xy:
        print("no centroid given: re-extracting at the automatic position; draw a region in the console (sedmtui)")
    centroid = [float(ns.xy[0]), float(ns.xy[1])] if ns.xy else None
    params = {"centroid": centroid, "region": None, "lstep": int(ns.lstep)}
    if centroid is not None and getattr(ns, "radius", None) is not None:
        params["centroid_radius"] = float(ns.radius)
    if getattr(ns, "local", False):
        params["local"] = True  # nothing about this extraction leaves the machine (no delivery)
    return "reextract", params


def run_redex(ns: argparse.Namespace) -> int:
    """``sedmtui redex``: re-extract, recover, accept or reject one exposure through the engine."""
    from engine.errors import RequestError
    from engine.state.requests import submit_request

    config, reader, conn, night = _open(ns, write=True)
    if night is None:
        return _fail("no night in the database yet", EXIT_USAGE)
    obs_id = ns.obs_id.replace(":", "_")
    ns.obs_id = obs_id
    if reader.observation(night, obs_id) is None:
        return _fail(f"no exposure {obs_id} in night {night}", EXIT_USAGE)
    req = _redex_request(ns, reader, night)
    if isinstance(req, int):
        return req
    kind, params = req
    status = reader.engine_status()
    if not status.get("alive") and not ns.no_wait:
        return _fail(no_engine_message(status) + "; nothing was filed (add --no-wait to queue it anyway).",
                     EXIT_NO_ENGINE)
    try:
        rid = submit_request(conn, kind, night=night, target=obs_id, params=params, user=ns.user)
    except RequestError as exc:
        return _fail(str(exc), EXIT_USAGE)
    print(f"filed request #{rid}: {kind} {obs_id} {json.dumps(params)}", flush=True)
    if ns.no_wait:
        return EXIT_OK
    timeout = float(getattr(ns, "timeout", 300.0) or 300.0)
    row = wait_for_request(reader, rid, timeout_s=timeout, echo=_echo_status)
    if row is None:
        return _fail(f"request #{rid} not finished within {timeout:.0f} s; it stays queued", EXIT_TIMEOUT)
    if row["status"] == "failed":
        return _fail(f"the engine refused request #{rid}: {row['error']}", EXIT_FAILED)
    result = json.loads(row["result_json"] or "{}")
    return _print_outcome(config, reader, night, obs_id, kind, result)


def _print_outcome(config, reader, night: str, obs_id: str, kind: str, result: dict) -> int:
    eid = result.get("extraction_id")
    d = Path(config.paths.redux_root) / night
    if kind == "reextract":
        print("re-extraction ready: " + clean_text(_describe_extraction(reader, night, eid)))
        if result.get("spec_fits"):
            print(f"new spectrum: {d / result['spec_fits']}")
        print(f"accept: sedmtui redex {obs_id} --accept      reject: sedmtui redex {obs_id} --reject")
    elif kind == "accept":
        print("accepted: " + clean_text(_describe_extraction(reader, night, eid)))
        if result.get("spec_fits"):
            print(f"current spectrum: {d / result['spec_fits']}")
    elif kind == "reject":
        print(f"rejected extraction {eid}; removed: {', '.join(result.get('removed') or []) or 'nothing'}")
    elif kind == "recover":
        print(f"recovered {obs_id}: quality 5 -> {result.get('quality', 1)} (extraction {eid})")
    return EXIT_OK


__all__ = [
    "engine_line",
    "load_config_with_console",
    "run_doctor",
    "run_redex",
    "run_report",
    "run_status",
    "targets_table",
    "wait_for_request",
]
