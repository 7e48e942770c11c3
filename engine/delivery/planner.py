"""What should be delivered, decided from the state database (pure decisions over its rows).

For each night the engine reduces (younger than ``delivery.max_age_days``):

* every **current** extraction of a **science** exposure whose object matches
  ``fritz.object_pattern``: quality <= 2 -> the spectrum, its ``sedm:SNID`` / ``sedm:S2N``
  annotations (after the spectrum is stored) and, when the frame carries a ``REQ_ID``, the
  follow-up status ``Completed Automatically`` (``Completed Manually`` for a re-extraction or a
  recovery) -- only after the spectrum is stored; quality 3-5 -> ``Failed`` as
  ``fritz.failed_status`` says;
* every current extraction's verification figure -> Slack;
* the final report (a ``final_report`` request served) -> one e-mail; a ``--resend`` one more;
* a ``tns_report`` request served -> a TNS classification report and the check of its reply.

Keys name the content (extraction id *and* file name), so an extraction re-calibrated in place
or replaced by an accepted re-extraction plans new rows, and a rerun plans nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass

from engine.config import Config
from engine.delivery.ledger import Planned
from engine.delivery.payloads import followup_status, fritz_obj_id, s2n_annotation, snid_annotation

Query = Callable[[str, list], list[dict]]
RECOVERED = "recovered by hand"
"""How a recovered extraction's quality reason begins (engine.pipeline.requests_stage)."""


@dataclass(frozen=True)
class Moment:
    """When planning happens.

    Attributes
    ----------
    now : datetime
        UTC now (status texts carry it).
    today : str
        UT date ``YYYYMMDD``.
    live : bool
        The night may still receive frames (not ``--once``): an uncalibrated spectrum is held.
    """

    now: dt.datetime
    today: str
    live: bool = True


def exposure_rows(query: Query, night: str) -> list[dict]:
    """Current extractions of a night's exposures with what delivery needs (one query)."""
    return query(
        """SELECT e.id AS extraction_id, e.night, e.obs_id, e.tag, e.quality, e.quality_reason, e.spec_txt,
                  e.verify_png, e.s2n, e.fluxcal, e.created AS extracted_at, o.object, o.name, o.kind,
                  o.needs_fluxcal, f.header_json,
                  c.type, c.subtype, c.z, c.z_err, c.rlap, c.age, c.template, rq.params_json AS request_params
           FROM observations o JOIN extractions e ON e.id = o.current_extraction_id
           LEFT JOIN frames f ON f.id = o.frame_id
           LEFT JOIN requests rq ON rq.id = e.request_id
           LEFT JOIN classifications c ON c.id = (SELECT max(c2.id) FROM classifications c2
                                                  WHERE c2.extraction_id = e.id AND c2.classifier = 'builtin')
           WHERE o.night = ? AND e.status = 'current' ORDER BY o.obs_id""", [night])


def _age_s(iso: str | None, now: dt.datetime) -> float:
    if not iso:
        return 0.0
    t = dt.datetime.strptime(iso.rstrip("Z")[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return (now - t).total_seconds()


def _request_id(header: dict) -> int | None:
    try:
        value = int(str(header.get("REQ_ID", "")).strip())
    except ValueError:
        return None
    return value if value > 0 else None


def plan_fritz(row: dict, config: Config, moment: Moment, final_sent: bool) -> list[Planned]:
    """Fritz rows of one current extraction (empty when it is not to be delivered)."""
    header = json.loads(row.get("header_json") or "{}")
    obj = fritz_obj_id(row.get("name"), row.get("object"), config.fritz.object_pattern)
    if row["kind"] != "science" or obj is None or not config.fritz.configured:
        return []
    night, eid, q = row["night"], row["extraction_id"], row["quality"]
    req_id = _request_id(header)
    common = {"night": night, "obs_id": row["obs_id"], "extraction_id": eid, "target": obj}
    if q is None:
        return []
    if q > 2:
        when = config.fritz.failed_status
        if req_id is None or when == "never" or (when == "after_final" and not final_sent):
            return []
        return [Planned(key=f"fritz_status:{eid}:failed", destination="fritz_status", **common,
                        payload={"obj_id": obj, "followup_request_id": req_id,
                                 "new_status": followup_status("failed", moment.now)})]
    if not row.get("spec_txt") or header.get("MJD_OBS") is None:
        return []
    held = (moment.live and not row.get("fluxcal") and row.get("needs_fluxcal")
            and _age_s(row.get("extracted_at"), moment.now) < config.fritz.uncalibrated_hold_s)
    if held:
        return []
    spec_key = f"fritz_spectrum:{eid}:{row['spec_txt']}"
    manual = row["tag"].startswith("redo") or (row.get("quality_reason") or "").startswith(RECOVERED)
    out = [Planned(key=spec_key, destination="fritz_spectrum", **common, payload={
        "obj_id": obj, "filename": row["spec_txt"], "exposure_tag": f"ifu{night}_{row['obs_id']}",
        "mjd_obs": float(header["MJD_OBS"]), "followup_request_id": req_id,
        "replace": config.fritz.replace_on_redo})]
    for origin, data in (("sedm:SNID", snid_annotation(row)), ("sedm:S2N", s2n_annotation(row.get("s2n")))):
        if data is not None:
            out.append(Planned(key=f"fritz_annotation:{eid}:{row['spec_txt']}:{origin}", depends_on_key=spec_key,
                               destination="fritz_annotation", **common,
                               payload={"obj_id": obj, "origin": origin, "data": data}))
    if req_id is not None:
        out.append(Planned(key=f"fritz_status:{eid}:done", depends_on_key=spec_key, destination="fritz_status",
                           **common, payload={"obj_id": obj, "followup_request_id": req_id,
                                              "new_status": followup_status("manual" if manual else "automatic",
                                                                            moment.now)}))
    return out


def local_only(row: dict) -> bool:
    """The extraction came from ``sedmtui redex ... --local``: nothing about it leaves the machine."""
    try:
        return bool(json.loads(row.get("request_params") or "{}").get("local"))
    except ValueError:
        return False


def plan_slack(row: dict, config: Config) -> list[Planned]:
    """The verification figure of a current extraction, when Slack is configured."""
    if not config.slack.configured or not row.get("verify_png"):
        return []
    title = f"{row['obs_id'].replace('_', ':')} {row.get('object') or ''} Q{row['quality']}"
    if row.get("type"):
        title += f" SNID {row.get('subtype') or row['type']} z={row['z']:.3f}" if row.get("z") is not None else ""
    return [Planned(key=f"slack:{row['extraction_id']}:{row['verify_png']}", night=row["night"], destination="slack",
                    obs_id=row["obs_id"], extraction_id=row["extraction_id"],
                    payload={"filename": row["verify_png"], "title": title})]


def plan_requester(row: dict, config: Config) -> list[Planned]:
    """The spectrum by e-mail to its requester (``report.email_requesters`` and an ``EMAIL`` card)."""
    from engine.delivery.mail import target_text

    header = json.loads(row.get("header_json") or "{}")
    address = str(header.get("EMAIL") or "").strip()
    if (not config.report.email_requesters or not config.smtp.host or "@" not in address or row["kind"] != "science"
            or row["quality"] is None or row["quality"] > 2 or not row.get("spec_txt")):
        return []
    ut = row["obs_id"].replace("_", ":")
    return [Planned(key=f"email_target:{row['extraction_id']}:{row['spec_txt']}", night=row["night"],
                    destination="email", obs_id=row["obs_id"], extraction_id=row["extraction_id"], payload={
                        "kind": "target", "subject": f"SEDM spectrum of {row.get('object')} ({row['night']} {ut} UT)",
                        "recipients": [address], "body": target_text(row, row["night"]),
                        "files": [row["spec_txt"], row.get("verify_png") or ""]})]


def plan_email(query: Query, night: str, config: Config) -> list[Planned]:
    """The final report e-mail (once), and one more per ``--resend``."""
    recipients = [r.strip() for r in config.report.recipients.split(",") if r.strip()]
    if not (config.smtp.host and recipients):
        return []
    reqs = query("SELECT id, params_json FROM requests WHERE kind='final_report' AND status='done' AND night=? "
                 "ORDER BY id", [night])
    out = []
    for i, req in enumerate(reqs):
        params = json.loads(req["params_json"] or "{}")
        if i and not params.get("resend"):
            continue
        key = f"email_report:{night}" + (f":resend:{req['id']}" if i else "")
        out.append(Planned(key=key, night=night, destination="email", payload={
            "subject": f"SEDM DRP Report for {night}", "recipients": recipients, "report": "report_final.txt",
            "request_id": req["id"]}))
    return out


def plan_night(query: Query, night: str, config: Config, moment: Moment) -> list[Planned]:
    """Everything the night should have delivered by now (existing keys are ignored on insert)."""
    final_sent = bool(query("SELECT 1 AS x FROM nights WHERE night=? AND final_report_at IS NOT NULL", [night]))
    out: list[Planned] = []
    for row in exposure_rows(query, night):
        if local_only(row):
            continue
        out += plan_fritz(row, config, moment, final_sent)
        out += plan_slack(row, config)
        out += plan_requester(row, config)
    out += plan_email(query, night, config)
    return out


def deliverable_night(night: str, config: Config, today: str) -> bool:
    """The engine delivers nights at most ``delivery.max_age_days`` old."""
    try:
        age = (dt.date.fromisoformat(f"{today[:4]}-{today[4:6]}-{today[6:]}")
               - dt.date.fromisoformat(f"{night[:4]}-{night[4:6]}-{night[6:]}")).days
    except ValueError:
        return False
    return age <= config.delivery.max_age_days
