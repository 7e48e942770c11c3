"""What the console knows about the night, read from the state database (Textual-free).

* :func:`format_target` turns a ``targets`` view row into display cells (text + a severity
  tag the widgets colour); :func:`diff_cells` gives the cells that changed, so the table is
  updated with ``update_cell`` and never cleared and refilled.
* :class:`Tail` is driven by the console's tail thread: it keeps one connection, polls
  ``PRAGMA data_version`` and, when another connection committed, reads the new events and
  the rows they touch, fully fetched (no read transaction is ever left open).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from engine.state.reader import Event, StateReader
from sedmtui.safe import clean

Cell = tuple[str, str | None]
"""A display cell: text and a severity tag (``ok``, ``warn``, ``bad``, ``dim``, ``busy`` or None)."""


@dataclass(frozen=True)
class Column:
    """A column of the target table."""

    key: str
    label: str
    width: int
    level: int = 2
    """0: always shown (80 columns), 1: also beside the preview pane, 2: full width only."""
    max_level: int = 2
    """Shown up to this level only (a narrow table's stand-in for a wider column)."""


COLUMNS: tuple[Column, ...] = (
    Column("ut", "UT", 8, 0),
    Column("object", "object", 14, 0),
    Column("kind", "kind", 4),
    Column("exp", "exp", 4),
    Column("air", "air", 4),
    Column("state", "state", 12, 0),
    Column("q", "Q", 1, 0),
    Column("new", "new", 3, 0, max_level=0),
    Column("type", "type", 8, 0),
    Column("z", "z", 5, 0),
    Column("rlap", "rlap", 4, 1),
    Column("s2n", "S/N", 4, 0),
    Column("ext", "ext", 10, 1),
    Column("dlv", "dlv", 3, 1),
)
"""Columns of the target table, in order."""


def quality_severity(quality: int | None) -> str | None:
    """Severity tag of a quality flag: 0-2 ``ok``, 5 ``warn`` (fixable), 3-4 ``bad``."""
    if quality is None:
        return None
    if quality <= 2:
        return "ok"
    return "warn" if quality == 5 else "bad"


def clean_object(name: str | None) -> str:
    """Object name without SEDM's ``[A]``/``[B]`` suffix, escape codes or control characters
    (see :mod:`sedmtui.safe`; the name is still shown through ``Text``, never as markup)."""
    return clean(name).replace(" [A]", "").replace(" [B]", "").strip()


def state_cell(row: dict) -> Cell:
    """The state column: ``done``, the stage of a frame being reduced (with %), ``failed``."""
    state, stage = row.get("state") or "", row.get("stage") or ""
    if state == "done":
        return "done", None
    if state == "reducing":
        pct = _float(row.get("progress")) or 0.0
        text = stage.replace("debias and cosmic rays", "debias").replace("target position", "position")
        text = text.replace("classification", "classify")
        return f"{text} {100 * pct:.0f}%" if pct else text, "busy"
    if state == "failed":
        return "failed", "bad"
    if state == "waiting":
        return "waiting", "dim"
    return state or "·", "dim"


def type_text(row: dict) -> str:
    """SNID type (``Ia-norm``), ``STD`` for standards, ``·`` when none."""
    if row.get("kind") == "standard":
        return "STD"
    t, sub = row.get("snid_type"), row.get("snid_subtype")
    if not t:
        return "·"
    return f"{t}-{sub}" if sub and not sub.startswith(t) else (sub or t)


def _num(v: Any, fmt: str) -> str:
    """``v`` formatted, ``·`` when missing; a value that rounds to zero never shows as ``-0``."""
    if v is None:
        return "·"
    try:
        text = format(v, fmt)
        negative_zero = text.startswith("-") and float(text) == 0
    except (TypeError, ValueError):  # not a number (a hand-edited row): shown as it is
        return clean(v)
    if negative_zero:
        return ("+" if "+" in fmt else "") + text[1:]
    return text


def format_target(row: dict, candidates: int = 0) -> dict[str, Cell]:
    """Display cells of a ``targets`` view row.

    Parameters
    ----------
    row : dict
        A row of :meth:`StateReader.targets`.
    candidates : int
        Re-extractions waiting for accept/reject.
    """
    q = row.get("quality")
    ext = row.get("extraction") or "·"
    if candidates:
        ext = f"{ext}+{candidates}"
    return {
        "ut": ((row.get("obs_id") or "").replace("_", ":"), None),
        "object": (clean_object(row.get("object")), None),
        "kind": ({"standard": "std", "science": "sci"}.get(row.get("kind") or "", row.get("kind") or ""), None),
        "exp": (_num(row.get("exptime"), ".0f"), None),
        "air": (_num(row.get("airmass"), ".2f"), None),
        "state": state_cell(row),
        "q": ("·" if q is None else str(q), quality_severity(q)),
        "type": (type_text(row), None),
        "z": (_num(row.get("redshift"), ".3f"), None),
        "rlap": (_num(row.get("rlap"), ".1f"), None),
        "s2n": (_num(row.get("s2n"), ".0f"), None),
        "ext": (ext, "warn" if candidates else None),
        "new": (f"+{candidates}" if candidates else "·", "warn" if candidates else "dim"),
        "dlv": DELIVERY_CELLS.get(row.get("delivery_state") or ("sent" if row.get("delivered") else ""), ("·", "dim")),
    }


DELIVERY_CELLS: dict[str, Cell] = {"sent": ("✓", "ok"), "pending": ("…", "busy"), "failed": ("✗", "bad")}
"""The ``dlv`` column: everything sent, something waiting (or being sent), something failed;
``·`` when the exposure has nothing to deliver (or delivery is off). A row without ledger state
falls back on the extraction's old ``delivered`` flag."""


def delivery_states(reader: StateReader, night: str) -> dict[str, dict]:
    """Delivery state of each exposure of ``night`` from the engine's ledger:
    ``{obs_id: {"state": "sent" | "pending" | "failed", "detail": "<destination>: <reason>"}}``
    (an exposure with nothing to deliver is absent; a database without the ledger gives ``{}``;
    see :func:`engine.delivery.status.exposure_states`)."""
    from engine.delivery.status import exposure_states, ledger_rows

    return exposure_states(ledger_rows(reader.query, night))


def with_delivery(rows: list[dict], states: dict[str, dict]) -> list[dict]:
    """``targets`` rows with ``delivery_state`` and ``delivery_detail`` from :func:`delivery_states`.

    Parameters
    ----------
    rows : list of dict
        Rows of the ``targets`` view.
    states : dict
        ``{obs_id: {"state", "detail"}}``.
    """
    for r in rows:
        st = states.get(r.get("obs_id") or "")
        r["delivery_state"] = st["state"] if st else None
        r["delivery_detail"] = st["detail"] if st else ""
    return rows


def diff_cells(old: dict[str, Cell] | None, new: dict[str, Cell]) -> list[tuple[str, Cell]]:
    """``(column, cell)`` of every cell of ``new`` that differs from ``old``."""
    if old is None:
        return list(new.items())
    return [(k, v) for k, v in new.items() if old.get(k) != v]


def row_text(row: dict) -> str:
    """Text a filter pattern is matched against (time, object, kind, type, state, quality)."""
    cells = format_target(row)
    return " ".join([row.get("obs_id") or ""] + [cells[k][0] for k in ("ut", "object", "kind", "type", "state")]
                    + [f"Q{row.get('quality')}" if row.get("quality") is not None else ""]
                    + [f"delivery-{row['delivery_state']}" if row.get("delivery_state") else ""])


def compile_filter(pattern: str):
    """A predicate over row text from a regex; a leading ``!`` inverts it.

    Raises
    ------
    re.error
        Invalid regular expression.
    """
    import re

    pattern = pattern.strip()
    invert = pattern.startswith("!")
    if invert:
        pattern = pattern[1:]
    if not pattern:
        return lambda text: True
    rx = re.compile(pattern, re.IGNORECASE)
    return (lambda text: rx.search(text) is None) if invert else (lambda text: rx.search(text) is not None)


# --------------------------------------------------------------------------------------------- summaries
def engine_summary(row: dict) -> dict:
    """``{"alive", "activity", "queue", "status"}`` of :meth:`StateReader.engine_status`."""
    return {"alive": bool(row.get("alive")), "activity": row.get("activity") or "",
            "queue": int(row.get("queue_len") or 0), "status": row.get("status") or "absent"}


def _float(v: Any) -> float | int | None:
    """A number from a JSON value, None if it is not one (the header formats numbers)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return v


def calibration_summary(cal: dict | None, standard: dict | None, night_row: dict | None = None) -> dict:
    """Calibration health for the header: status, fallback, λ RMS, NSpax, flat std, standard."""
    if cal is None:
        status = (night_row or {}).get("calib_status")
        return {"status": "running" if status == "running" else "waiting"}
    raw = cal.get("stats_json")
    try:
        stats = json.loads(raw or "{}") if isinstance(raw, str) else (raw or {})
    except ValueError:  # a damaged row: the header shows the status without the numbers
        stats = {}
    if not isinstance(stats, dict):
        stats = {}
    return {
        "status": cal.get("status"), "level": cal.get("level"),
        "fallback": cal.get("status") == "fallback", "source_night": cal.get("source_night"),
        "wave_rms": _float(stats.get("wave_rms_median_aa")), "nspax": _float(stats.get("nspax")),
        "flat_std": _float(stats.get("flat_std")), "standard": standard,
    }


def night_standard(reader: StateReader, night: str) -> dict | None:
    """The standard whose sensitivity the night uses: ``{"object", "obs_id", "night"}``."""
    rows = reader.query(
        """SELECT o.object, o.obs_id, e.night FROM extractions e JOIN observations o ON o.id = e.observation_id
           WHERE o.kind='standard' AND e.status='current' AND e.fluxcal_file IS NOT NULL AND e.night <= ?
           ORDER BY e.night DESC, o.obs_id DESC LIMIT 1""", [night])
    return rows[0] if rows else None


def night_warnings(reader: StateReader, night: str) -> dict:
    """Warnings for the header that no single row shows.

    ``{"no_templates": n}`` counts current extractions left unclassified for want of SNID
    templates (the engine records why in each extraction's facts; a header warning is the only
    place it adds up); ``{"delivery_failed": n, "delivery_error": text}`` counts the night's
    deliveries (Fritz, TNS, e-mail...) that failed, with the newest reason.
    """
    rows = reader.query(
        """SELECT count(*) AS n FROM extractions WHERE night=? AND status='current' AND json_valid(facts_json)
           AND json_extract(facts_json, '$.classification') LIKE '%template%'""", [night])
    n = int(rows[0]["n"] or 0) if rows else 0
    out: dict = {"no_templates": n} if n else {}
    try:
        failed = reader.query("SELECT count(*) AS n, max(id) AS last FROM deliveries WHERE night=? AND state='failed' "
                              "AND NOT dry_run", [night])
    except sqlite3.Error:  # a database from before the delivery ledger
        failed = []
    if failed and failed[0]["n"]:
        out["delivery_failed"] = int(failed[0]["n"])
        last = reader.query("SELECT destination, last_error FROM deliveries WHERE id=?", [failed[0]["last"]])
        if last:
            out["delivery_error"] = clean(f"{last[0]['destination']}: {last[0]['last_error'] or 'failed'}")[:120]
    return out


def candidate_counts(reader: StateReader, night: str, obs_ids: list[str] | None = None) -> dict[str, int]:
    """Re-extractions waiting for accept/reject, per exposure."""
    sql = "SELECT obs_id, count(*) AS n FROM extractions WHERE night=? AND status='candidate'"
    params: list = [night]
    if obs_ids is not None:
        sql += f" AND obs_id IN ({','.join('?' * len(obs_ids))})"
        params += obs_ids
    return {r["obs_id"]: r["n"] for r in reader.query(sql + " GROUP BY obs_id", params)}


@dataclass
class Snapshot:
    """Everything the night screen shows, read at start-up."""

    night: str
    targets: list[dict]
    candidates: dict[str, int]
    engine: dict
    calibration: dict
    events: list[Event]
    last_event_id: int
    warnings: dict = field(default_factory=dict)


def load_snapshot(reader: StateReader, night: str, n_events: int = 200) -> Snapshot:
    """Read the night's current state (targets, engine, calibration, recent events)."""
    last = reader.max_event_id()
    return Snapshot(
        night=night, targets=with_delivery(reader.targets(night), delivery_states(reader, night)),
        candidates=candidate_counts(reader, night),
        engine=engine_summary(reader.engine_status()),
        calibration=calibration_summary(reader.calibration(night), night_standard(reader, night), reader.night(night)),
        events=reader.recent_events(night, n_events), last_event_id=last, warnings=night_warnings(reader, night),
    )


# --------------------------------------------------------------------------------------------- tail
@dataclass
class Delta:
    """What changed since the previous poll."""

    events: list[Event] = field(default_factory=list)
    targets: dict[str, dict] = field(default_factory=dict)
    candidates: dict[str, int] = field(default_factory=dict)
    engine: dict | None = None
    calibration: dict | None = None
    requests: dict[int, dict] = field(default_factory=dict)
    warnings: dict | None = None
    """Header warnings (:func:`night_warnings`) when they changed."""
    committed: float = 0.0
    """Wall time the poll saw the change (``time.time()``)."""
    night: str = ""
    """The night the poll read (a delta of a night no longer shown is dropped)."""

    def __bool__(self) -> bool:
        return bool(self.events or self.targets or self.engine or self.calibration or self.requests
                    or self.warnings is not None)


class Tail:
    """Incremental reader of one night: call :meth:`poll` from one thread.

    Parameters
    ----------
    reader : StateReader
        A reader owned by the polling thread (one connection kept across polls).
    night : str
        The night shown.
    last_event_id : int
        Events up to this id are already known.
    engine : dict
        The engine summary already shown.
    engine_check_s : float
        Period of the heartbeat check that notices a dead engine (no commit says so).
    """

    def __init__(self, reader: StateReader, night: str, last_event_id: int, engine: dict | None = None,
                 engine_check_s: float = 5.0) -> None:
        self.reader = reader
        self.night = night
        self.last_id = last_event_id
        # None: the first poll reads unconditionally. The snapshot behind ``last_event_id`` was
        # read on another connection, before this one existed: a commit in between would not
        # change this connection's data_version, and would be missed until the next one.
        self.version: int | None = None
        self.engine = engine or {}
        self.engine_check_s = engine_check_s
        self._last_engine_check = time.monotonic()
        self.warnings: dict | None = None
        self.watched: dict[int, str | None] = {}
        """Request ids whose status the console follows, with the last status seen."""

    def watch_request(self, request_id: int) -> None:
        """Report status changes of a request (thread-safe enough: a dict assignment)."""
        self.watched.setdefault(request_id, None)

    def poll(self) -> Delta | None:
        """Read what changed; None when nothing did."""
        now = time.monotonic()
        version = self.reader.data_version()
        check_engine = now - self._last_engine_check >= self.engine_check_s
        if version == self.version and not check_engine:
            return None
        self.version = version
        delta = Delta(committed=time.time(), night=self.night)
        events = self.reader.events_after(self.last_id)
        if events:
            self.last_id = events[-1].id
            delta.events = [e for e in events if e.night in (None, self.night)]
        kinds = {e.kind for e in delta.events}
        obs_ids = sorted({e.obs_id for e in delta.events if e.obs_id and e.night == self.night})
        if "delivery" in kinds:  # a retry of the night's failed rows names no exposure: read them all
            rows = self.reader.query("SELECT * FROM targets WHERE night=?", [self.night])
        elif obs_ids:
            marks = ",".join("?" * len(obs_ids))
            rows = self.reader.query(f"SELECT * FROM targets WHERE night=? AND obs_id IN ({marks})",
                                     [self.night, *obs_ids])
        else:
            rows = []
        if rows:
            delta.targets = {r["obs_id"]: r for r in with_delivery(rows, delivery_states(self.reader, self.night))}
            if delta.targets:
                counts = candidate_counts(self.reader, self.night, list(delta.targets))
                delta.candidates = {o: counts.get(o, 0) for o in delta.targets}
        if "calibration" in kinds or ("extraction" in kinds and any(
                r.get("kind") == "standard" for r in delta.targets.values())):
            delta.calibration = calibration_summary(self.reader.calibration(self.night),
                                                    night_standard(self.reader, self.night),
                                                    self.reader.night(self.night))
        if "extraction" in kinds or "delivery" in kinds or self.warnings is None:
            warnings = night_warnings(self.reader, self.night)
            if warnings != self.warnings:
                if self.warnings is not None or warnings:
                    delta.warnings = warnings
                self.warnings = warnings
        if "engine" in kinds or check_engine or events:
            self._last_engine_check = now
            summary = engine_summary(self.reader.engine_status())
            if summary != self.engine:
                self.engine = delta.engine = summary
        for rid, seen in list(self.watched.items()):
            row = self.reader.request(rid)
            if row is not None and row["status"] != seen:
                self.watched[rid] = row["status"]
                delta.requests[rid] = row
                if row["status"] in ("done", "failed"):
                    self.watched.pop(rid, None)
        return delta if delta else None


__all__ = [
    "COLUMNS",
    "Cell",
    "Column",
    "Delta",
    "Snapshot",
    "Tail",
    "calibration_summary",
    "candidate_counts",
    "clean_object",
    "compile_filter",
    "delivery_states",
    "diff_cells",
    "engine_summary",
    "format_target",
    "load_snapshot",
    "night_warnings",
    "quality_severity",
    "row_text",
    "with_delivery",
]
