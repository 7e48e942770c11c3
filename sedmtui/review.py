"""Texts and choices of the target screen, as plain functions (Textual-free, unit-tested).

What a confirm modal says before a request is filed, what the status line says while the
engine works, which extraction the maps show, which markers are drawn.
"""

from __future__ import annotations

from sedmtui.data import ExtractionData, TargetData, manual_moved, markers_of, row_facts, type_label
from sedmtui.edits import EditState
from sedmtui.state import _num, clean_object


def extraction_summary(ext: ExtractionData | None) -> str:
    """``redo104512 · Q1 recovered… · Ia-norm z 0.046 rlap 27.7 · S/N 37``."""
    if ext is None:
        return "none"
    r = ext.row
    parts = [str(r.get("tag")), f"Q{r.get('quality')}"]
    if r.get("quality"):
        parts[-1] += f" {r.get('quality_reason') or ''}".rstrip()
    cls = ext.classification
    if cls and cls.get("type"):
        parts.append(f"{type_label(cls)} z {_num(cls.get('z'), '.3f')} rlap {_num(cls.get('rlap'), '.1f')}")
    if r.get("s2n") is not None:
        parts.append(f"S/N {_num(r['s2n'], '.0f')}")
    moved = manual_moved(r)
    if moved is not None:
        parts.append(f"fit moved {_num(moved[0], '.2f')} from your centroid")
    return " · ".join(parts)


def accept_text(data: TargetData) -> tuple[str, str]:
    """Title and body of the accept modal."""
    cand, cur = data.candidate, data.current
    obj = f"{clean_object(data.target.get('object'))} ({data.target['obs_id']})"
    q = cand.row.get("quality") if cand else None
    delivered = "it will be delivered" if q is not None and q <= 2 else f"quality {q}: it will NOT be delivered"
    body = [f"• {cand.row['tag']} becomes the current extraction of {obj}:",
            f"    {extraction_summary(cand)}",
            f"  {delivered} and the night report lists it as current.",
            f"• {cur.row['tag'] if cur else 'the previous extraction'} stays on disk, marked superseded, no longer "
            "delivered." if cur else "• there was no current extraction.",
            f"• spectrum: {cand.row.get('spec_fits')}"]
    lost = classification_lost(cur, cand)
    if lost:
        body.insert(0, f"⚠ {lost}")
    return f"Accept {cand.row['tag']}?", "\n".join(body)


def classification_lost(cur: ExtractionData | None, cand: ExtractionData | None) -> str:
    """What an accept would lose: the current extraction's classification, when the new one has
    none (e.g. the engine now runs without SNID templates); empty when nothing is lost."""
    def classified(ext):
        return ext is not None and bool((ext.classification or {}).get("type"))

    if not classified(cur) or classified(cand) or cand is None:
        return ""
    why = row_facts(cand.row).get("classification") or "not classified"
    return (f"{cur.row.get('tag')} is classified ({type_label(cur.classification)}), {cand.row.get('tag')} is not "
            f"({why}): accepting drops the classification from the delivery and the report.")


def reject_text(data: TargetData) -> tuple[str, str]:
    """Title and body of the reject modal."""
    cand, cur = data.candidate, data.current
    files = [cand.row.get(k) for k in ("spec_fits", "spec_txt", "psf_file", "verify_png") if cand.row.get(k)]
    body = [f"• the engine deletes the files of {cand.row['tag']}:"]
    body += [f"    {f}" for f in files]
    body.append(f"• {cur.row['tag'] if cur else 'the current extraction'} stays current, unchanged "
                f"({extraction_summary(cur)}).")
    return f"Reject {cand.row['tag']}?", "\n".join(body)


def recover_text(row: dict, ext_row: dict | None) -> tuple[str, str]:
    """Title and body of the recover modal (quality 5 -> 1)."""
    obj = f"{clean_object(row.get('object'))} ({row['obs_id']})"
    where = ""
    if ext_row and ext_row.get("bright_x") is not None:
        where = f" at ({_num(ext_row['bright_x'], '+.1f')}, {_num(ext_row.get('bright_y'), '+.1f')})"
    body = [f"The guider astrometry of {obj} failed, so the robot extracted at the brightest spaxel{where} (○).",
            "Recover says that the brightest object IS the target:",
            "• quality 5 → 1 in the state and in the spectrum files; it will be delivered;",
            "• nothing is re-extracted (to extract elsewhere, move the centroid and press enter instead)."]
    return "Recover quality 5 → 1?", "\n".join(body)


def reextract_text(edit: EditState) -> str:
    """What ``enter`` will ask for (status line before filing)."""
    return "re-extract with " + edit.describe()


def shown_extraction(data: TargetData | None) -> ExtractionData | None:
    """The extraction the maps show: the waiting re-extraction, else the current one."""
    if data is None:
        return None
    return data.candidate or data.current


def marker_positions(data: TargetData | None, edit: EditState | None) -> dict[str, tuple[float, float]]:
    """Positions to mark: astrometry and brightest (robot), fitted (shown), manual (the edit)."""
    if data is None:
        return {}
    out = {k: v for k, v in markers_of(data.current.row if data.current else None).items()
           if k in ("astrom", "brightest")}
    shown = shown_extraction(data)
    fitted = markers_of(shown.row if shown else None)
    if "fitted" in fitted:
        out["fitted"] = fitted["fitted"]
    if "manual" in fitted:
        out["manual"] = fitted["manual"]
    if edit is not None and edit.centroid is not None:
        out["manual"] = edit.centroid
    return out


def request_status(kind: str, row: dict, activity: str | None = None, *, subject: str | None = None,
                   tag_of=None) -> tuple[str, str | None]:
    """Status line and severity for a request row, in words (no internal ids).

    Parameters
    ----------
    kind : str
        Request kind.
    row : dict
        The ``requests`` row (``status``, ``error``, ``result_json``, ``target``).
    activity : str, optional
        The engine's current activity (shown while the request runs).
    subject : str, optional
        What the request is about (``04_21_30 ZTF26ccccccc``); default the row's target.
    tag_of : callable, optional
        ``extraction id -> tag`` (``redo104512``), to name extractions in the result.
    """
    status = row["status"]
    names = {"reextract": "re-extraction", "accept": "accept", "reject": "reject", "recover": "recover",
             "report": "report", "final_report": "final report", "tns_report": "TNS report",
             "deliver_retry": "delivery retry"}
    name = names.get(kind, kind)
    subject = subject or row.get("target") or ""
    what = f"{name} of {subject}" if subject else name
    if status == "pending":
        return f"{what}: queued, waiting for the engine…", "busy"
    if status == "running":
        return f"{what}: the engine is working" + (f" ({activity})" if activity else "") + "…", "busy"
    if status == "failed":
        return f"{what} refused: {row.get('error')}", "bad"
    import json

    result = row.get("result_json")
    try:
        result = json.loads(result) if isinstance(result, str) and result else (result or {})
    except ValueError:
        result = {}
    if not isinstance(result, dict):
        result = {}
    eid = result.get("extraction_id")
    tag = (tag_of(eid) if tag_of is not None and eid is not None else None) or "the new extraction"
    target = f" of {subject}" if subject else ""
    for_target = f" for {subject}" if subject else ""
    done = {
        "reextract": f"re-extraction{target} ready: {tag}, Q{result.get('quality')}",
        "accept": f"accepted: {tag} is now the current one{for_target}",
        "reject": f"rejected: {len(result.get('removed') or [])} file(s) removed, the current extraction{target} "
                  "is unchanged",
        "recover": f"recovered{target}: quality 5 → {result.get('quality', 1)}",
        "tns_report": f"TNS report{target} queued as {result.get('type') or '?'}: the delivery column follows it",
        "deliver_retry": f"{result.get('retried', 0)} failed deliver{'y' if result.get('retried') == 1 else 'ies'} "
                         "queued again",
    }.get(kind, f"{name} written")
    return done, "ok"


__all__ = [
    "accept_text",
    "classification_lost",
    "extraction_summary",
    "marker_positions",
    "recover_text",
    "reextract_text",
    "reject_text",
    "request_status",
    "shown_extraction",
]
