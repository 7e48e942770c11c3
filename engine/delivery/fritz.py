"""Fritz/SkyPortal: spectra, annotations and follow-up request status, each exactly once.

Every attempt reads before it writes:

* a spectrum: ``GET /api/sources/<obj>/spectra`` first; a spectrum with the product's file name
  is already stored (a POST whose reply was lost, an engine killed after the POST) and nothing
  is sent; one of the same exposure under another name (the robot's, before a re-extraction) is
  replaced in place with ``PUT /api/spectra/<id>`` (idempotent) when ``replace_on_redo``;
  otherwise ``POST /api/spectrum/ascii``;
* an annotation: the spectrum's annotations are read; one of the same origin is updated with
  ``PUT`` (a second POST would be a 400), else it is posted;
* a follow-up status: ``POST /api/facility`` sets a state (the same text on every attempt).

So a row left uncertain (timeout, dropped connection, 500, killed engine) is simply attempted
again later: the read finds what the lost reply would have said.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.delivery.http import Reply, Throttle, TransportError, call, json_body
from engine.delivery.ledger import Outcome
from engine.delivery.payloads import PayloadError, spectrum_ascii_body, spectrum_put_body
from engine.delivery.settings import FritzSettings

RATE_LIMIT_REPEATS = 4
"""Times one call is tried when Fritz answers 429 (rate limited) before the row is retried later."""
MAX_RATE_WAIT_S = 10.0
"""Longest in-call wait for a rate limit [s]; a longer Retry-After is left to the row's retry."""
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
"""Replies after which a checked Fritz send is attempted again (the next attempt reads first)."""


class FritzClient:
    """Authenticated JSON calls to one SkyPortal instance (token only in the header).

    Parameters
    ----------
    settings : FritzSettings
        URL, token, timeout, pacing.
    """

    def __init__(self, settings: FritzSettings) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.throttle = Throttle(settings.min_interval_s)

    def api(self, method: str, path: str, body: Any = None) -> Reply:
        """One call, paced; a 429 (refused unread: nothing happened) is waited out and repeated up
        to :data:`RATE_LIMIT_REPEATS` times, pausing every call of this client meanwhile.

        Raises
        ------
        TransportError
            No reply.
        """
        headers = {"Authorization": f"token {self.settings.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json_body(body)
            headers["Content-Type"] = "application/json"
        for _ in range(RATE_LIMIT_REPEATS):
            self.throttle.wait()
            reply = call(method, f"{self.base_url}{path}", body=data, headers=headers,
                         timeout_s=self.settings.timeout_s, secrets=[self.settings.token])
            if reply.status != 429:
                return reply
            self.throttle.pause(min(reply.retry_after_s() or 1.0, MAX_RATE_WAIT_S))
        return reply

    def source_url(self, obj_id: str) -> str:
        """The web page of an object."""
        return f"{self.base_url}/source/{obj_id}"


def problem(reply: Reply, doing: str, recheck_s: float = 0.0) -> Outcome | None:
    """``None`` for a success envelope, else the outcome the reply means.

    A 400 (or a 200 whose ``status`` is not ``success``) is a refusal, never a success.
    """
    doc = reply.json()
    message = doc.get("message", "") if isinstance(doc, dict) else reply.body[:200].decode(errors="replace")
    if reply.status == 200 and isinstance(doc, dict) and doc.get("status") == "success":
        return None
    if reply.status in (401, 403):
        return Outcome("failed", f"Fritz refused the token while {doing} (HTTP {reply.status}): check fritz.token")
    if reply.status in RETRYABLE_STATUS:
        wait = reply.retry_after_s()
        if reply.status in (500, 502, 504):  # it may have acted: read again only once it surely finished
            wait = max(wait or 0.0, recheck_s)
        return Outcome("retry", f"Fritz answered HTTP {reply.status} while {doing} {message}".rstrip(),
                       retry_after_s=wait)
    return Outcome("failed", f"Fritz refused {doing} (HTTP {reply.status}): {message or 'no message'}")


def no_reply(exc: TransportError, doing: str, recheck_s: float) -> Outcome:
    """The outcome of a call without a reply: retried; when the call may have reached Fritz, only
    after ``recheck_s`` and after reading what Fritz holds."""
    if exc.committed is False:
        return Outcome("retry", f"{exc} while {doing}")
    return Outcome("retry", f"{exc} while {doing}; Fritz is read again before anything is resent",
                   retry_after_s=recheck_s)


def deliver_spectrum(client: FritzClient, payload: dict, redux_dir: Path) -> Outcome:
    """Store one spectrum product on Fritz unless it is there already (see the module docstring).

    Parameters
    ----------
    client : FritzClient
    payload : dict
        ``obj_id, filename, exposure_tag, mjd_obs, followup_request_id, replace``.
    redux_dir : Path
        The night's product directory.
    """
    obj, filename = payload["obj_id"], payload["filename"]
    try:
        text = (redux_dir / filename).read_text()
        reply = client.api("GET", f"/api/sources/{obj}/spectra")
        bad = problem(reply, f"listing the spectra of {obj}")
        if bad:
            return bad
        spectra = (reply.json().get("data") or {}).get("spectra") or []
        for s in spectra:
            if s.get("original_file_filename") == filename:
                return Outcome("sent", f"already stored as spectrum {s['id']} (found before sending)",
                               remote_id=str(s["id"]), remote_url=client.source_url(obj))
        ours = [s for s in spectra if payload["exposure_tag"] in (s.get("original_file_filename") or "")]
        settings = client.settings
        if ours and payload.get("replace"):
            target = max(ours, key=lambda s: int(s["id"]))
            body = spectrum_put_body(obj_id=obj, ascii_text=text, mjd_obs=payload["mjd_obs"],
                                     instrument_id=settings.instrument_id, group_ids=settings.group_ids)
            reply = client.api("PUT", f"/api/spectra/{target['id']}", body)
            bad = problem(reply, f"replacing spectrum {target['id']} of {obj}")
            return bad or Outcome("sent", f"replaced spectrum {target['id']} ({target.get('original_file_filename')})",
                                  remote_id=str(target["id"]), remote_url=client.source_url(obj))
        body = spectrum_ascii_body(obj_id=obj, ascii_text=text, filename=filename, mjd_obs=payload["mjd_obs"],
                                   instrument_id=settings.instrument_id, group_ids=settings.group_ids,
                                   followup_request_id=payload.get("followup_request_id"))
        reply = client.api("POST", "/api/spectrum/ascii", body)
        bad = problem(reply, f"storing {filename}", settings.recheck_s)
        if bad:
            return bad
        sid = str(reply.json()["data"]["id"])
        return Outcome("sent", f"stored as spectrum {sid}", remote_id=sid, remote_url=client.source_url(obj))
    except TransportError as exc:
        return no_reply(exc, f"storing {filename}", client.settings.recheck_s)
    except (PayloadError, OSError) as exc:
        return Outcome("failed", f"cannot send {filename}: {exc}")


def deliver_annotation(client: FritzClient, payload: dict, spectrum_id: str) -> Outcome:
    """Post (or update, when its origin exists) one annotation of a stored spectrum.

    Parameters
    ----------
    payload : dict
        ``origin`` (``sedm:SNID``...), ``data`` (dict), ``obj_id``.
    spectrum_id : str
        The stored spectrum (the remote id of the spectrum row this one depends on).
    """
    origin, data = payload["origin"], payload["data"]
    base = f"/api/spectra/{spectrum_id}/annotations"
    try:
        reply = client.api("GET", base)
        bad = problem(reply, f"reading the annotations of spectrum {spectrum_id}")
        if bad:
            return bad
        existing = [a for a in (reply.json().get("data") or []) if a.get("origin") == origin]
        if existing:
            ann = existing[0]
            if ann.get("data") == data:
                return Outcome("sent", f"{origin} already up to date", remote_id=str(ann["id"]))
            reply = client.api("PUT", f"{base}/{ann['id']}", {"origin": origin, "data": data})
            bad = problem(reply, f"updating annotation {origin}")
            return bad or Outcome("sent", f"{origin} updated", remote_id=str(ann["id"]))
        reply = client.api("POST", base, {"origin": origin, "data": data})
        if reply.status == 400 and "origin" in (reply.json() or {}).get("message", "").lower():
            return Outcome("retry", f"{origin} appeared meanwhile; it is updated on the next attempt",
                           retry_after_s=0.0)
        bad = problem(reply, f"posting annotation {origin}")
        if bad:
            return bad
        data_out = reply.json().get("data") or {}
        aid = data_out.get("annotation_id", data_out.get("id"))
        return Outcome("sent", f"{origin} posted", remote_id=None if aid is None else str(aid))
    except TransportError as exc:
        return no_reply(exc, f"posting annotation {origin}", client.settings.recheck_s)


def deliver_status(client: FritzClient, payload: dict) -> Outcome:
    """Set a follow-up request's status unless it already reads so (the text is fixed when the row
    is planned, so a repeated attempt finds its own earlier success)."""
    body = {"followup_request_id": int(payload["followup_request_id"]), "new_status": payload["new_status"]}
    try:
        reply = client.api("GET", f"/api/followup_request/{body['followup_request_id']}")
        if reply.status == 200 and ((reply.json() or {}).get("data") or {}).get("status") == body["new_status"]:
            return Outcome("sent", f"request {body['followup_request_id']} already reads '{body['new_status']}'",
                           remote_id=str(body["followup_request_id"]))
        reply = client.api("POST", "/api/facility", body)
    except TransportError as exc:
        return no_reply(exc, "setting the follow-up status", 0.0)
    bad = problem(reply, f"setting follow-up request {body['followup_request_id']} to '{body['new_status']}'")
    return bad or Outcome("sent", f"request {body['followup_request_id']}: {body['new_status']}",
                          remote_id=str(body["followup_request_id"]))
