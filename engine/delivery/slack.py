"""Verification figures to Slack: the three-call file upload, or a text message by webhook.

``files.upload`` is retired; a file goes up with ``files.getUploadURLExternal`` (name and size ->
an upload URL and a file id), a POST of the bytes to that URL, and
``files.completeUploadExternal`` (file id, channel id, comment), which shares it. The first two
calls share nothing and may be repeated; once the third went out without a reply, the figure
may be in the channel, so the row fails (``unknown``) rather than posting it twice.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from engine.delivery.http import Reply, TransportError, call, json_body
from engine.delivery.ledger import Outcome
from engine.delivery.settings import SlackSettings


def _answer(reply: Reply, doing: str, *, sent: bool) -> Outcome | None:
    """``None`` when Slack said ``ok``, else the outcome (``sent``: the call may have shared it)."""
    if reply.status == 429:
        return Outcome("retry", f"Slack rate-limited {doing}", retry_after_s=reply.retry_after_s())
    doc = reply.json()
    if reply.status == 200 and isinstance(doc, dict) and doc.get("ok"):
        return None
    error = doc.get("error") if isinstance(doc, dict) else reply.body[:100].decode(errors="replace")
    if reply.status == 503 or (reply.status >= 500 and not sent):
        return Outcome("retry", f"Slack answered HTTP {reply.status} while {doing}")
    if reply.status >= 500:
        return Outcome("unknown", f"Slack answered HTTP {reply.status} while {doing}")
    return Outcome("failed", f"Slack refused {doing}: {error or reply.status}")


def upload_figure(settings: SlackSettings, *, filename: str, data: bytes, title: str) -> Outcome:
    """Share one PNG in ``settings.channel_id`` (bot token)."""
    auth = {"Authorization": f"Bearer {settings.token}"}
    api = settings.api_url.rstrip("/")
    secrets = [settings.token]
    try:
        form = urlencode({"filename": filename, "length": len(data)}).encode()
        r1 = call("POST", f"{api}/files.getUploadURLExternal", body=form, timeout_s=settings.timeout_s,
                  headers={**auth, "Content-Type": "application/x-www-form-urlencoded"}, secrets=secrets)
        bad = _answer(r1, "asking for an upload address", sent=False)
        if bad:
            return bad
        doc = r1.json()
        r2 = call("POST", doc["upload_url"], body=data, timeout_s=settings.timeout_s,
                  headers={"Content-Type": "application/octet-stream"}, secrets=secrets)
        if r2.status != 200:
            return Outcome("retry" if r2.status >= 500 or r2.status == 429 else "failed",
                           f"Slack refused the figure's bytes (HTTP {r2.status})")
    except TransportError as exc:
        return Outcome("retry", f"{exc} (nothing was shared yet)")
    body = {"files": [{"id": doc["file_id"], "title": title}], "channel_id": settings.channel_id,
            "initial_comment": title}
    try:
        r3 = call("POST", f"{api}/files.completeUploadExternal", body=json_body(body), timeout_s=settings.timeout_s,
                  headers={**auth, "Content-Type": "application/json; charset=utf-8"}, secrets=secrets)
    except TransportError as exc:
        return Outcome("retry" if exc.committed is False else "unknown", f"{exc} while sharing {filename}")
    bad = _answer(r3, f"sharing {filename}", sent=True)
    return bad or Outcome("sent", f"{filename} shared in {settings.channel_id}", remote_id=doc["file_id"])


def post_webhook(settings: SlackSettings, *, text: str) -> Outcome:
    """One text message through the incoming webhook (its URL is a secret: never shown)."""
    try:
        reply = call("POST", settings.webhook_url, body=json.dumps({"text": text}).encode(),
                     headers={"Content-Type": "application/json"}, timeout_s=settings.timeout_s,
                     secrets=[settings.webhook_url, settings.token])
    except TransportError as exc:
        msg = f"the Slack webhook did not answer ({'not reached' if exc.committed is False else 'no reply'})"
        return Outcome("retry" if exc.committed is False else "unknown", msg)
    if reply.status == 200:
        return Outcome("sent", "message posted by webhook")
    if reply.status in (429, 503):
        return Outcome("retry", f"the Slack webhook answered HTTP {reply.status}", retry_after_s=reply.retry_after_s())
    if reply.status >= 500:
        return Outcome("unknown", f"the Slack webhook answered HTTP {reply.status}")
    return Outcome("failed", f"the Slack webhook refused the message (HTTP {reply.status} "
                             f"{reply.body[:80].decode(errors='replace')})")
