"""The night report (``report.txt``) and the final report text (``report_final.txt``).

Same columns as SEDM's DrpReport (``UTStart Object Exptime Air Qual method Allocation Type z
Rlap SNIaS SNIaSe SNIaZ SNIaZe NGTY NGZ NGFSN``; this engine runs neither SNIascore nor NGSF,
so those show ``-``) plus ``S/N`` and the reason of each quality flag. One row per extraction
that was not rejected (robot and redo); the current one of each exposure is marked ``*``.
Failed exposures are listed at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.timeutil import utc_now

COLUMNS = ("UTStart", "Object", "Exptime", "Air", "Qual", "method", "Allocation", "Type", "z", "Rlap", "SNIaS",
           "SNIaSe", "SNIaZ", "SNIaZe", "NGTY", "NGZ", "NGFSN", "S/N", "Reason")


def report_rows(db_rows: list[dict]) -> list[list[str]]:
    """Table rows from joined extraction/observation/classification rows."""
    out = []
    for r in db_rows:
        if r["kind"] == "standard":
            typ = "STD"
        elif r["quality"] is not None and r["quality"] > 2 and r["quality"] != 5:
            typ = f"QUALITY_{r['quality']}"
        elif r["subtype"]:
            typ = r["subtype"] if r["subtype"].startswith(r["type"] or "") else f"{r['type']}-{r['subtype']}"
        else:
            typ = r["type"] or "-"
        mark = "*" if r["status"] == "current" else " "
        out.append([
            r["obs_id"].replace("_", ":"), r["object"], f"{r['exptime']:.0f}", f"{r['airmass']:.3f}" if r["airmass"] else "-",
            str(r["quality"]), f"{mark}{r['tag']}_lstep{r['lstep'] or 1}", r["p60prid"] or "-", typ,
            f"{r['z']:.4f}" if r["z"] is not None else "-", f"{r['rlap']:.2f}" if r["rlap"] is not None else "-",
            "-", "-", "-", "-", "-", "-", "-", s2n_text(r["s2n"]),
            (r["quality_reason"] or "").replace("\n", " "),
        ])
    return out


def s2n_text(value: float | None) -> str:
    """S/N as the console and ``sedmtui status`` print it: a whole number, ``-`` when missing,
    never ``-0`` (a report said ``-0.1`` where the console said ``0``)."""
    if value is None:
        return "-"
    text = f"{value:.0f}"
    return "0" if text == "-0" else text


def format_table(rows: list[list[str]]) -> str:
    """Fixed-width text table with the SEDM header line."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def build_report(conn_query, night: str, redux_dir: str, *, comment: str | None = None, final: bool = False) -> str:
    """The report text. ``conn_query(sql, params) -> list[dict]`` reads the state database."""
    rows = conn_query(
        """SELECT e.*, o.object, o.kind, o.exptime, o.airmass, o.p60prid,
                  c.type, c.subtype, c.z, c.rlap
           FROM extractions e JOIN observations o ON o.id = e.observation_id
           LEFT JOIN classifications c ON c.id = (SELECT max(id) FROM classifications WHERE extraction_id = e.id)
           WHERE e.night = ? AND e.status IN ('current', 'candidate', 'superseded')
           ORDER BY e.obs_id, e.id""", [night])
    failed = conn_query("SELECT obs_id, object, error FROM observations WHERE night=? AND state='failed' ORDER BY obs_id",
                        [night])
    waiting = conn_query("SELECT count(*) AS n FROM observations WHERE night=? AND state IN ('waiting','reducing')", [night])
    cal = conn_query("SELECT status, source_night, stats_json FROM calibrations WHERE night=? ORDER BY id DESC LIMIT 1",
                     [night])
    head = [f"Report generated on {utc_now():%Y-%m-%d %H:%M:%S} UTC"]
    if final:
        head.append("FINAL REPORT")
    if comment:
        head += ["", "Comment:", comment.strip(), ""]
    head.append(f"SEDM DRP run in {redux_dir}")
    head.append(f"Found {len(rows)} extractions ({sum(1 for r in rows if r['status'] == 'current')} current)")
    if cal:
        c = cal[0]
        src = f" from {c['source_night']}" if c["source_night"] and c["source_night"] != night else ""
        head.append(f"Calibration: {c['status']}{src}")
    if waiting and waiting[0]["n"]:
        head.append(f"Still being reduced: {waiting[0]['n']} exposure(s)")
    body = format_table(report_rows(rows))
    tail = []
    if failed:
        tail = ["", "Failed extractions:"] + [f"  {f['obs_id'].replace('_', ':')}  {f['object']}  {f['error']}" for f in failed]
    from engine.delivery.status import ledger_rows, report_lines

    delivered = report_lines(ledger_rows(conn_query, night))
    if delivered:
        tail += ["", *delivered]
    return "\n".join(head) + "\n\n" + body + "\n" + "\n".join(tail) + ("\n" if tail else "")


def write_report(conn_query, night: str, redux_dir: str, *, comment: str | None = None, final: bool = False) -> dict:
    """Write ``report.txt`` (and ``report_final.txt`` when final); return their paths and text."""
    d = Path(redux_dir)
    d.mkdir(parents=True, exist_ok=True)
    text = build_report(conn_query, night, redux_dir, comment=comment, final=final)
    paths = {"report": str(d / "report.txt")}
    _write(d / "report.txt", build_report(conn_query, night, redux_dir, comment=comment) if final else text)
    if final:
        _write(d / "report_final.txt", text)
        paths["final"] = str(d / "report_final.txt")
    return {"paths": paths, "text": text}


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text)
    os.replace(tmp, path)
