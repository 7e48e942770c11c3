"""State rows of extractions and requests, built by the stages from what a job returned.

Every function here writes through the engine's :class:`~engine.state.writer.StateWriter`
inside the caller's transaction (a stage's ``record``/``failed`` or a request handler).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.io.inputs import clean_text
from engine.pipeline.stage import EngineView
from engine.pipeline.tasks import ExtractionRequest, ExtractionResult
from engine.timeutil import utc_now_iso

OBSERVATION_FACTS = ("jflex_px", "iflex_px", "n_cr", "astrometry_reason", "guider_file", "calibration_night")
"""Facts of an exposure's reduction that every extraction of it carries in ``facts_json``."""
RECOVERED = "recovered by hand"
"""How the quality reason of a recovered extraction (5 -> 1) begins."""


def extraction_row(result: ExtractionResult, request: ExtractionRequest, *, status: str) -> dict:
    """The ``extractions`` columns of a job's result (without ids, status or clocks).

    Parameters
    ----------
    result : ExtractionResult
        What the job measured and wrote.
    request : ExtractionRequest
        Tag, reducer, region and lstep of the extraction.
    status : str
        ``current`` or ``candidate`` (a current extraction of quality <= 2 is delivered).
    """
    ext = {k: v for k, v in result.extraction.items() if k != "facts"}
    return {"tag": request.tag, "reducer": request.reducer, **ext, "region_json": request.region,
            "lstep": request.lstep, "delivered": int(status == "current" and ext["quality"] <= 2)}


def insert_extraction(view: EngineView, ctx: dict, result: ExtractionResult, request: ExtractionRequest, *,
                      status: str, request_id: int | None = None) -> int:
    """Insert a new ``extractions`` row for the job of context ``ctx``; return its id.

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    ctx : dict
        The job's context (observation id, night, obs_id).
    result : ExtractionResult
        What the job returned.
    request : ExtractionRequest
        Its tag, reducer, region and lstep.
    status : str
        ``current`` or ``candidate``.
    request_id : int, optional
        The request that asked for it.
    """
    facts = dict(result.extraction.get("facts") or {})
    if result.observation:
        facts.update({k: result.observation[k] for k in OBSERVATION_FACTS if k in result.observation})
    if result.timing:
        facts["timing"] = result.timing
    row = extraction_row(result, request, status=status)
    row.update({"observation_id": ctx["observation_id"], "night": ctx["night"], "obs_id": ctx["obs_id"],
                "status": status, "facts_json": facts, "request_id": request_id, "created": utc_now_iso(),
                "updated": utc_now_iso()})
    return view.writer.insert("extractions", row)


def insert_classification(view: EngineView, ctx: dict, extraction_id: int, cls: dict | None) -> None:
    """Insert the ``classifications`` row of an extraction (nothing if it was not classified).

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    ctx : dict
        The job's context (night, obs_id).
    extraction_id : int
        The extraction classified.
    cls : dict or None
        The classification's row.
    """
    if not cls:
        return
    view.writer.insert("classifications", dict(cls, extraction_id=extraction_id, night=ctx["night"],
                                               obs_id=ctx["obs_id"], created=utc_now_iso()))


def finish_request_in(view: EngineView, req: dict, *, result: dict | None = None, error: str | None = None) -> None:
    """Mark a request done/failed with an event (inside the caller's transaction).

    Parameters
    ----------
    view : EngineView
        The engine's state writer and configuration.
    req : dict
        The claimed request row (``params`` parsed).
    result : dict, optional
        What the request produced.
    error : str, optional
        Why it failed (it is then ``failed``).
    """
    status = "failed" if error else "done"
    error = None if error is None else clean_text(error, max_len=2000)
    view.writer.update("requests", req["id"], {"status": status, "result_json": json.dumps(result or {}, default=str),
                                               "error": error, "finished_at": utc_now_iso()})
    msg = f"request #{req['id']} {req['kind']} {req['target'] or ''}: " + (error or "done")
    view.writer.event("request", msg, night=req["night"], obs_id=req["target"], level="warning" if error else "info",
                      payload={"request_id": req["id"], "status": status, "kind": req["kind"], "result": result or {}})


def set_quality_in_products(out: Path, ext: dict, quality: int, reason: str) -> None:
    """Rewrite ``QUALITY``/``QUALREAS`` in an extraction's spectrum files (``ext``: its row).

    Parameters
    ----------
    out : Path
        The night's reduction directory.
    ext : dict
        The extraction's row (``spec_fits``, ``spec_txt``).
    quality : int
        The new flag.
    reason : str
        Why.
    """
    from astropy.io import fits

    from engine.io.fitsio import write_atomic

    path = out / ext["spec_fits"]
    if path.exists():
        with fits.open(path) as hdul:
            hdul[0].header["QUALITY"] = quality
            hdul[0].header["QUALREAS"] = reason
            write_atomic(hdul, path)
    txt = out / ext["spec_txt"] if ext["spec_txt"] else None
    if txt and txt.exists():
        lines = txt.read_text().splitlines()
        lines = [f"# QUALITY: {quality}" if ln.startswith("# QUALITY:") else
                 (f"# QUALREAS: {reason}" if ln.startswith("# QUALREAS:") else ln) for ln in lines]
        tmp = txt.with_name(f".{txt.name}.part")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, txt)


def summary(ctx: dict, result: ExtractionResult) -> str:
    """One line for the event log: exposure, quality, classification, S/N, calibration, time.

    Parameters
    ----------
    ctx : dict
        The job's context (obs_id, object).
    result : ExtractionResult
        What the job returned.
    """
    ext, cls = result.extraction, result.classification or {}
    parts = [f"{ctx['obs_id']} {ctx.get('object', '')}", f"Q{ext['quality']}"]
    if ext["quality"]:
        parts.append(ext["quality_reason"])
    if cls.get("type"):
        z = cls.get("z")
        parts.append(f"{cls.get('subtype') or cls['type']} z {z:.3f} rlap {cls.get('rlap', 0):.1f}"
                     if z is not None else cls["type"])
    if ext.get("s2n"):
        parts.append(f"S/N {ext['s2n']:.0f}")
    if not ext["fluxcal"]:
        parts.append("not flux-calibrated")
    t = (result.timing or {}).get("total_s")
    if t:
        parts.append(f"{t:.1f} s")
    return " · ".join(parts)
