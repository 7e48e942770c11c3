"""A Slack Web API stand-in: the three-call file upload and an incoming webhook.

Replies as Slack does: HTTP 200 with ``{"ok": false, "error": "invalid_auth"}`` for a bad token,
``channel_not_found`` for an unknown channel; 429 with ``Retry-After`` when rate limited.
"""

from __future__ import annotations

import re
from typing import Any

from engine.delivery.standins.base import Request, Standin


class SlackStandin(Standin):
    """The stand-in: ``shared`` lists every file shared, ``messages`` every webhook text."""

    def __init__(self, token: str = "xoxb-standin", channels: tuple[str, ...] = ("C0SEDM",),
                 webhook_path: str = "/hooks/T000/B000/standinsecret") -> None:
        super().__init__()
        self.token, self.channels, self.webhook_path = token, channels, webhook_path
        self.pending: dict[str, dict] = {}
        self.shared: list[dict] = []
        self.messages: list[str] = []
        self._n = 0

    def error_body(self, message: str) -> Any:
        return {"ok": False, "error": message}

    def route(self, req: Request) -> tuple[int, Any, dict]:
        p = req.path.split("?")[0]
        if p == self.webhook_path:
            text = (req.json() or {}).get("text")
            if not text:
                return 400, b"invalid_payload", {}
            self.messages.append(text)
            return 200, b"ok", {}
        if hit := re.fullmatch(r"/upload/(F\d+)", p):
            if hit.group(1) not in self.pending:
                return 404, b"unknown upload", {}
            self.pending[hit.group(1)]["data"] = req.body
            return 200, b"OK - " + str(len(req.body)).encode(), {}
        if req.headers.get("Authorization") != f"Bearer {self.token}":
            return 200, self.error_body("invalid_auth"), {}
        if p == "/api/files.getUploadURLExternal":
            form = req.form()
            if not form.get("filename") or not form.get("length", "").isdigit():
                return 200, self.error_body("invalid_arguments"), {}
            self._n += 1
            fid = f"F{self._n:06d}"
            self.pending[fid] = {"filename": form["filename"], "length": int(form["length"]), "data": None}
            return 200, {"ok": True, "upload_url": f"{self.url}/upload/{fid}", "file_id": fid}, {}
        if p == "/api/files.completeUploadExternal":
            body = req.json() or {}
            if body.get("channel_id") not in self.channels:
                return 200, self.error_body("channel_not_found"), {}
            files = body.get("files") or []
            for f in files:
                up = self.pending.pop(f.get("id"), None)
                if up is None or up["data"] is None or len(up["data"]) != up["length"]:
                    return 200, self.error_body("file_upload_size_mismatch" if up else "file_not_found"), {}
                self.shared.append({"id": f["id"], "title": f.get("title"), "channel": body["channel_id"], **up})
            return 200, {"ok": True, "files": [{"id": f["id"]} for f in files]}, {}
        return 404, self.error_body("unknown_method"), {}
