"""Classification reports to the Transient Name Server (only behind ``tns.enabled``; sandbox by default).

The spectrum goes first: ``POST <base>/set/file-upload`` (multipart: ``api_key`` and the ``.txt``
product as ``files[0]``) answers with the name TNS stored it under, which the report's spectrum
entry names as its ``ascii_file``. A report is ``POST <base>/set/bulk-report`` (form fields
``api_key`` and ``data``, the bot's ``User-Agent`` marker) answered with a ``report_id``; TNS
processes it later, and ``POST <base>/get/bulk-report-reply`` (``report_id``) says whether it was
accepted. Upload, report and reply are three ledger rows, each after the one before: an upload
repeated after a lost reply only leaves an unreferenced file (so it is retried), a report is
never resent automatically, and the reply is a read, repeated until TNS has processed the report.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlencode

from engine.delivery.http import Reply, TransportError, call
from engine.delivery.ledger import Outcome
from engine.delivery.settings import TnsSettings

OBJTYPE_IDS = {"SN Ia": 3, "SN Ib": 4, "SN Ic": 5, "SN Ib/c": 6, "SN Ic-BL": 7, "SN II": 10, "SN IIP": 11,
               "SN IIL": 12, "SN IIn": 13, "SN IIb": 14, "TDE": 29, "AGN": 23, "CV": 24, "Nova": 26}
"""TNS object type ids of the types SEDM reports (check against TNS's list before going live)."""


def tns_type(snid_type: str, subtype: str | None) -> str:
    """The TNS type name of a SNID answer (``Ia-norm`` -> ``SN Ia``, ``IIn`` -> ``SN IIn``...)."""
    sub = (subtype or "").split("-")[0] if subtype else ""
    for cand in (f"SN {sub}" if sub else "", f"SN {snid_type}", snid_type):
        if cand in OBJTYPE_IDS:
            return cand
    return f"SN {snid_type}"


def classification_report(*, tns_name: str, type_name: str, redshift: float | None, obsdate: str,
                          exptime_s: float, settings: TnsSettings, remarks: str = "") -> dict:
    """The ``data`` of a bulk classification report (one object, one spectrum).

    Parameters
    ----------
    tns_name : str
        TNS name without prefix (``2026abc``).
    type_name : str
        TNS type (``SN Ia``); must be in :data:`OBJTYPE_IDS`.
    redshift : float, optional
    obsdate : str
        ISO UT of the exposure (from ``MJD_OBS``).
    exptime_s : float
    settings : TnsSettings
        Group, reporter, instrument.
    remarks : str
    """
    if type_name not in OBJTYPE_IDS:
        raise ValueError(f"TNS type {type_name!r} is not one SEDM reports ({', '.join(OBJTYPE_IDS)})")
    report = {"name": tns_name, "classifier": settings.reporter, "objtypeid": OBJTYPE_IDS[type_name],
              "groupid": settings.group_id, "remarks": remarks,
              "spectra": {"spectra-group": {"0": {
                  "obsdate": obsdate.replace("T", " "), "instrumentid": settings.instrument_id,
                  "exptime": f"{exptime_s:g}", "observer": "Robot", "reducer": settings.reporter,
                  "spectypeid": 1}}}}
    if redshift is not None:
        report["redshift"] = round(float(redshift), 4)
    return {"classification_report": {"0": report}}


def _marker(settings: TnsSettings) -> str:
    return "tns_marker" + json.dumps({"tns_id": settings.bot_id, "type": "bot", "name": settings.bot_name})


def _post(settings: TnsSettings, path: str, fields: dict) -> Reply:
    body = urlencode({"api_key": settings.api_key, **fields}).encode()
    return call("POST", f"{settings.base_url.rstrip('/')}/{path}", body=body, timeout_s=settings.timeout_s,
                headers={"User-Agent": _marker(settings), "Content-Type": "application/x-www-form-urlencoded"},
                secrets=[settings.api_key])


def _refusal(reply: Reply, doing: str, *, sent: bool) -> Outcome | None:
    doc = reply.json() if reply.json() is not None else {}
    if reply.status == 200 and doc.get("id_code", 200) == 200:
        return None
    if reply.status == 429:
        wait = reply.retry_after_s() or float(reply.headers.get("x-rate-limit-reset", "60") or 60)
        return Outcome("retry", f"TNS rate-limited {doing}", retry_after_s=wait)
    if reply.status in (401, 403):
        return Outcome("failed", f"TNS refused the bot's key while {doing} (HTTP {reply.status}): check tns.api_key")
    if reply.status == 503 or (reply.status >= 500 and not sent):
        return Outcome("retry", f"TNS answered HTTP {reply.status} while {doing}")
    if reply.status >= 500:
        return Outcome("unknown", f"TNS answered HTTP {reply.status} while {doing}")
    return Outcome("failed", f"TNS refused {doing}: {doc.get('id_message') or reply.status} {doc.get('data') or ''}")


def multipart_body(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its ``Content-Type``.

    Parameters
    ----------
    fields : dict
        Form fields (name -> text).
    files : list of tuple
        ``(field name, file name, bytes)``.
    """
    boundary = f"sedmtui-{uuid.uuid4().hex}"
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, data in files:
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                   "Content-Type: text/plain\r\n\r\n".encode() + data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def upload_spectrum(settings: TnsSettings, filename: str, data: bytes) -> Outcome:
    """Upload the spectrum's ``.txt`` product; the remote id is the name TNS stored it under.

    A reply lost after the upload is retried (a second upload leaves an unreferenced file on TNS,
    never a second report).

    Parameters
    ----------
    settings : TnsSettings
        Base address, bot and key.
    filename : str
        The product's base name.
    data : bytes
        Its content.
    """
    body, ctype = multipart_body({"api_key": settings.api_key}, [("files[0]", filename, data)])
    try:
        reply = call("POST", f"{settings.base_url.rstrip('/')}/set/file-upload", body=body, timeout_s=settings.timeout_s,
                     headers={"User-Agent": _marker(settings), "Content-Type": ctype}, secrets=[settings.api_key])
    except TransportError as exc:
        return Outcome("retry", f"{exc} while uploading the spectrum to TNS")
    bad = _refusal(reply, f"the upload of {filename}", sent=False)
    if bad:
        return bad
    stored = (reply.json() or {}).get("data")
    name = stored[0] if isinstance(stored, list) and stored and isinstance(stored[0], str) else None
    if not name:
        return Outcome("failed", f"TNS accepted the upload of {filename} but named no stored file: {str(stored)[:200]}")
    return Outcome("sent", f"spectrum uploaded to TNS as {name}", remote_id=name)


def with_spectrum_file(report: dict, stored_name: str | None) -> dict:
    """``report`` with its spectrum entry naming the uploaded file (``ascii_file``); unchanged
    without one (a ledger row from before uploads existed).

    Parameters
    ----------
    report : dict
        From :func:`classification_report`.
    stored_name : str or None
        The name TNS stored the spectrum under (:func:`upload_spectrum`).
    """
    if not stored_name:
        return report
    out = json.loads(json.dumps(report))
    for entry in out.get("classification_report", {}).values():
        for spectrum in entry.get("spectra", {}).get("spectra-group", {}).values():
            spectrum["ascii_file"] = stored_name
    return out


def send_report(settings: TnsSettings, report: dict) -> Outcome:
    """Post one classification report; its ``report_id`` is the remote id."""
    try:
        reply = _post(settings, "set/bulk-report", {"data": json.dumps(report)})
    except TransportError as exc:
        return Outcome("retry" if exc.committed is False else "unknown", f"{exc} while sending the TNS report")
    bad = _refusal(reply, "the classification report", sent=True)
    if bad:
        return bad
    rid = str((reply.json().get("data") or {}).get("report_id"))
    return Outcome("sent", f"TNS report {rid} received (its processing is checked next)", remote_id=rid)


def check_reply(settings: TnsSettings, report_id: str) -> Outcome:
    """Whether TNS accepted report ``report_id`` (retried while it is not processed yet)."""
    try:
        reply = _post(settings, "get/bulk-report-reply", {"report_id": report_id})
    except TransportError as exc:
        return Outcome("retry", f"{exc} while reading TNS's reply")
    doc = reply.json() or {}
    if reply.status == 404 or doc.get("id_code") == 404:
        return Outcome("retry", f"TNS has not processed report {report_id} yet")
    bad = _refusal(reply, f"reading the reply to report {report_id}", sent=False)
    if bad:
        return bad
    feedback = json.dumps((doc.get("data") or {}).get("feedback", {}))
    if '"OK"' not in feedback and "100" not in feedback:
        return Outcome("failed", f"TNS did not accept report {report_id}: {feedback[:300]}")
    return Outcome("sent", f"TNS accepted report {report_id}", remote_id=report_id)
