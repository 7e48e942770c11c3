"""A thin HTTP client that says whether a failed call can have reached the server.

Only the standard library: ``http.client`` lets the connection be opened before anything is
sent, so a refused or unreachable server is told apart from a reply that never came (the server
may have acted on the request: a POST must then not be sent again blindly).
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    """An HTTP reply.

    Attributes
    ----------
    status : int
        HTTP status code.
    headers : dict
        Reply headers (lower-case names).
    body : bytes
        Reply body.
    """

    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        """The body as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.body.decode("utf-8", errors="replace"))
        except ValueError:
            return None

    def retry_after_s(self) -> float | None:
        """The ``Retry-After`` header in seconds, when given as a number."""
        try:
            return max(0.0, float(self.headers.get("retry-after", "")))
        except ValueError:
            return None


class TransportError(Exception):
    """No HTTP reply.

    Attributes
    ----------
    committed : bool or None
        ``False``: provably nothing reached the server (refused, unreachable, timed out while
        connecting); ``None``: the request went out and no reply came (it may have been acted on).
    """

    def __init__(self, message: str, *, committed: bool | None) -> None:
        super().__init__(message)
        self.committed = committed


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class Throttle:
    """At most one call per ``min_interval_s`` (thread-safe): stays under a rate limit."""

    def __init__(self, min_interval_s: float) -> None:
        self.min_interval_s = float(min_interval_s)
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        """Sleep until the next call may go out."""
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.min_interval_s
        if delay > 0:
            time.sleep(delay)

    def pause(self, seconds: float) -> None:
        """No call before ``seconds`` from now (a rate limit answered), then wait that long."""
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)
        self.wait()


def call(method: str, url: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None,
         timeout_s: float = 30.0, secrets: Iterable[str] = ()) -> Reply:
    """One HTTP call.

    Parameters
    ----------
    method, url : str
        ``GET``/``POST``/``PUT``/``DELETE`` and the full address.
    body : bytes, optional
        Request body.
    headers : mapping, optional
        Request headers.
    timeout_s : float
        Connect and read timeout [s].
    secrets : iterable of str
        Removed from any error message.

    Raises
    ------
    TransportError
        No reply; ``committed`` says whether the server may have received the request.
    """
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    kwargs: dict[str, Any] = {"timeout": timeout_s}
    if parts.scheme == "https":
        kwargs["context"] = ssl.create_default_context()
    conn = cls(parts.hostname or "", parts.port, **kwargs)
    where = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"
    try:
        try:
            conn.connect()
        except (TimeoutError, OSError) as exc:
            msg = f"cannot connect to {where}: {redact(str(exc) or type(exc).__name__, secrets)}"
            raise TransportError(msg, committed=False) from exc
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            data = resp.read()
        except TimeoutError as exc:
            raise TransportError(f"no reply from {where} within {timeout_s:g} s", committed=None) from exc
        except (OSError, http.client.HTTPException) as exc:
            msg = f"connection to {where} dropped before the reply ({redact(str(exc) or type(exc).__name__, secrets)})"
            raise TransportError(msg, committed=None) from exc
        return Reply(status=resp.status, headers={k.lower(): v for k, v in resp.getheaders()}, body=data)
    finally:
        conn.close()


def json_body(value: Any) -> bytes:
    """``value`` as a UTF-8 JSON request body."""
    return json.dumps(value, allow_nan=False).encode()
