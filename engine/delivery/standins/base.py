"""A loopback HTTP server with a rate limiter and injectable faults, for the stand-ins.

Faults (:class:`Fault`) match a method and a path prefix and act once per ``times``:

``status``           reply this HTTP status without acting
``after``            act (store), then reply this HTTP status (a 500 after the spectrum was stored)
``drop``             close the connection without a reply, without acting
``drop_after``       act, then close the connection without a reply
``slow``             wait ``delay_s`` (longer than the client's timeout), then act and reply
``hold``             wait until :attr:`Standin.release` is set, then act and reply
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Fault:
    """One injected fault (see the module docstring)."""

    method: str
    path: str
    kind: str
    status: int = 500
    delay_s: float = 1.0
    times: int = 1
    retry_after: str | None = None


class TokenBucket:
    """``rate`` requests per second with bursts of ``burst`` (SkyPortal: 5/s, burst 10)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.t = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> bool:
        """True if a request may pass now."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
            self.t = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False

    def wait_s(self) -> float:
        """Time until the next request may pass [s]."""
        with self.lock:
            return max(0.0, (1 - self.tokens) / self.rate)


class _QuietServer(ThreadingHTTPServer):
    """Says nothing when a client goes away mid-request (killed, timed out): that is a test case."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class Request:
    """What a route sees of one request."""

    def __init__(self, method: str, path: str, headers, body: bytes) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body

    def json(self) -> Any:
        """The body as JSON (``None`` when it is not)."""
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def form(self) -> dict[str, str]:
        """The body as a URL-encoded form."""
        return {k: v[0] for k, v in parse_qs(self.body.decode(errors="replace")).items()}

    def multipart(self) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
        """A ``multipart/form-data`` body: ``(fields, {field: (file name, bytes)})`` (empty when the
        body is not multipart)."""
        from email.parser import BytesParser
        from email.policy import HTTP

        ctype = str(self.headers.get("Content-Type", ""))
        if not ctype.startswith("multipart/form-data"):
            return {}, {}
        msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + self.body)
        fields: dict[str, str] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            if part.get_filename():
                files[str(name)] = (part.get_filename(), data)
            else:
                fields[str(name)] = data.decode(errors="replace")
        return fields, files


class Standin:
    """Base of a stand-in server: subclasses implement :meth:`route` -> ``(status, body, headers)``.

    Parameters
    ----------
    rate, burst : float, int, optional
        Rate limit (``None``: none).
    """

    def __init__(self, *, rate: float | None = None, burst: int = 10) -> None:
        self.bucket = TokenBucket(rate, burst) if rate else None
        self.faults: list[Fault] = []
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self.server: ThreadingHTTPServer | None = None
        self.headers_seen: list[dict] = []
        self.release = threading.Event()
        """Lets ``hold`` faults go on."""
        self.latency_s = (0.0, 0.0)
        """Wait before acting and after acting (before the reply) on every request [s]."""

    # -------------------------------------------------------------- lifecycle
    def start(self, port: int = 0) -> str:
        """Listen on a loopback port (``0``: any free one); returns the base URL."""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _any(self) -> None:
                standin._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        self.server = _QuietServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        """Stop listening (a later :meth:`start` gets a new port)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def inject(self, *faults: Fault) -> None:
        """Add faults."""
        with self.lock:
            self.faults.extend(faults)

    # -------------------------------------------------------------- requests
    def _fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.method == method and path.startswith(f.path) and f.times > 0:
                    f.times -= 1
                    return f
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = h.path
        with self.lock:
            self.calls.append((h.command, path))
            self.headers_seen.append(dict(h.headers))
        req = Request(h.command, path, h.headers, body)
        if self.bucket is not None and not self.bucket.take():
            return self._reply(h, *self.rate_limited())
        fault = self._fault(h.command, path)
        if fault and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return self._reply(h, fault.status, self.error_body(f"injected HTTP {fault.status}"), headers)
        if fault and fault.kind == "drop":
            return self._drop(h)
        if fault and fault.kind == "slow":
            time.sleep(fault.delay_s)
        if fault and fault.kind == "hold":
            self.release.wait(timeout=fault.delay_s)
        time.sleep(self.latency_s[0])
        with self.lock:
            status, doc, headers = self.route(req)
        time.sleep(self.latency_s[1])
        if fault and fault.kind == "drop_after":
            return self._drop(h)
        if fault and fault.kind == "after":
            status, doc = fault.status, self.error_body(f"injected HTTP {fault.status} after acting")
        try:
            self._reply(h, status, doc, headers)
        except OSError:
            pass  # the client gave up (timeout)

    def _reply(self, h, status: int, doc: Any, headers: dict | None = None) -> None:
        data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json" if not isinstance(doc, bytes) else "text/plain")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    @staticmethod
    def _drop(h) -> None:
        h.close_connection = True
        try:
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -------------------------------------------------------------- for subclasses
    def route(self, req: Request) -> tuple[int, Any, dict]:
        """``(status, JSON-able body or bytes, headers)``."""
        raise NotImplementedError

    def rate_limited(self) -> tuple[int, Any, dict]:
        """The reply to a request over the rate limit."""
        wait = self.bucket.wait_s() if self.bucket else 1.0
        return 429, self.error_body("API rate limit exceeded; see Retry-After"), {"Retry-After": f"{wait:.2f}"}

    def error_body(self, message: str) -> Any:
        """An error reply body in this service's envelope."""
        return {"status": "error", "message": message}
