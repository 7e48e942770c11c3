"""Requests about delivery that the engine serves: a TNS report, a retry of failed rows.

``tns_report``     night + target ``HH_MM_SS``, ``{"tns_name": "2026abc", "type": "SN Ia" | null}``
``deliver_retry``  ``{"ids": [row ids] | null}`` (all failed rows of the request's night when null)
"""

from __future__ import annotations

import json

from engine.delivery.ledger import Planned, retry
from engine.delivery.payloads import PayloadError, observed_at
from engine.errors import RequestError


def handle_tns(service, req: dict) -> dict:
    """Queue a classification report of the exposure's current extraction (and the check of TNS's reply)."""
    from engine.delivery.tns import classification_report, tns_type

    cfg = service.config
    if not cfg.tns.configured:
        raise RequestError("TNS reports are off: set [tns] enabled = true, bot_id and api_key ($SEDMTUI_TNS_API_KEY)")
    row = service.writer.one(
        """SELECT e.id, e.quality, e.spec_txt, o.exptime, f.header_json, c.type, c.subtype, c.z FROM observations o
           JOIN extractions e ON e.id = o.current_extraction_id LEFT JOIN frames f ON f.id = o.frame_id
           LEFT JOIN classifications c ON c.id = (SELECT max(id) FROM classifications WHERE extraction_id = e.id)
           WHERE o.night=? AND o.obs_id=?""", [req["night"], req["target"]])
    if row is None:
        raise RequestError(f"{req['target']} has no extraction in night {req['night']}")
    if row["quality"] is None or row["quality"] > 2:
        raise RequestError(f"{req['target']} is quality {row['quality']}: only quality 0-2 spectra are reported")
    params = req["params"]
    type_name = params.get("type") or (tns_type(row["type"], row["subtype"]) if row["type"] else None)
    if not type_name:
        raise RequestError(f"{req['target']} is not classified: give the type (--type 'SN Ia')")
    header = json.loads(row["header_json"] or "{}")
    try:
        report = classification_report(tns_name=params["tns_name"], type_name=type_name, redshift=row["z"],
                                       obsdate=observed_at(header.get("MJD_OBS")), exptime_s=row["exptime"] or 0,
                                       settings=cfg.tns, remarks="SEDM spectrum, SNID classification")
    except (ValueError, PayloadError) as exc:
        raise RequestError(str(exc)) from exc
    key = f"tns:{row['id']}:{params['tns_name']}"
    common = {"night": req["night"], "obs_id": req["target"], "extraction_id": row["id"], "target": params["tns_name"]}
    payload = {"tns_name": params["tns_name"], "type": type_name, "report": report}
    upload_key = f"tns_upload:{row['id']}:{params['tns_name']}"
    if row["spec_txt"] and not service.writer.one("SELECT 1 AS x FROM deliveries WHERE key=?", [key]):
        service.add(Planned(key=upload_key, destination="tns_upload", payload={"filename": row["spec_txt"]}, **common))
    else:
        upload_key = None
    added = service.add(Planned(key=key, destination="tns", payload=payload, depends_on_key=upload_key, **common))
    service.add(Planned(key=f"tns_reply:{row['id']}:{params['tns_name']}", destination="tns_reply",
                        depends_on_key=key, payload={"tns_name": params["tns_name"]}, **common))
    if not added:
        raise RequestError(f"a TNS report of {params['tns_name']} from this extraction is already in the ledger "
                           "(`sedmtui deliver status`)")
    return {"queued": key, "type": type_name}


def handle_retry(service, req: dict) -> dict:
    """Failed rows back to pending (these ids, or all of the request's night)."""
    ids = req["params"].get("ids") or None
    n = retry(service.writer, ids=ids, night=None if ids else req["night"])
    return {"retried": n}


def off_handlers() -> dict:
    """Handlers of an engine without delivery: the request is refused with the reason."""
    def refuse(view, req):
        raise RequestError("delivery is off on this engine ([delivery] enabled = false, or no destination "
                           "configured): nothing is sent")

    return {"tns_report": refuse, "deliver_retry": refuse}
