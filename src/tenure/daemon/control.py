"""The reference daemons' loopback control plane: a bounded HTTP server and its handler.

spec: docs/protocol/control.md#endpoints, control.md#limits
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from tenure.adapters.http import LOOPBACK
from tenure.adapters.server import (
    CLIENT_TIMEOUT_S,
    MAX_BODY,
    REQUEST_DEADLINE_S,
    read_request,
)
from tenure.errors import Retiring
from tenure.holder.governor import Governor, RetireReason

MAX_WORK_S = 30.0  # bound on the demo workload's in-flight slot


class Controlled(Protocol):
    """What the control plane serves: a health document, a token check, a governor."""

    governor: Governor

    def health(self) -> dict[str, Any]:
        """The /api/health document."""
        ...

    def authorized(self, header: str | None) -> int:
        """200, 401 or 403 for an Authorization header."""
        ...


def make_handler(get_daemon: Callable[[], Controlled]) -> type[BaseHTTPRequestHandler]:
    """A request handler bound to the daemon (looked up lazily: the server exists first)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "tenure"
        protocol_version = "HTTP/1.1"
        timeout = CLIENT_TIMEOUT_S  # a silent client is dropped, not waited for

        def setup(self) -> None:
            super().setup()
            # The whole request is read here, against one deadline: a client trickling a
            # byte at a time is dropped after REQUEST_DEADLINE_S, not after each silent read.
            self.rfile = io.BytesIO(read_request(self.connection, REQUEST_DEADLINE_S))

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging: it would grow the log and cost a write per probe."""

        def _foreign(self) -> bool:
            """Answer 403 to a request for another host, or from a web page of another origin
            (DNS rebinding); True when it was refused. spec: control.md#limits"""
            port = self.connection.getsockname()[1]
            hosts = {LOOPBACK, f"{LOOPBACK}:{port}", "localhost", f"localhost:{port}"}
            origin = self.headers.get("Origin")
            if self.headers.get("Host") not in hosts:
                self._send(403, {"error": "Host must be 127.0.0.1 or localhost"})
                return True
            if origin is not None and origin not in {f"http://{h}" for h in hosts if ":" in h}:
                self._send(403, {"error": "cross-origin requests are refused"})
                return True
            return False

        def _send(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def _length(self) -> int | None:
            """The declared body length, or None after answering 400/413 (before any auth)."""
            raw = self.headers.get("Content-Length") or "0"
            length = int(raw) if raw.isdigit() else -1
            if length < 0:
                self._send(400, {"error": "bad Content-Length"})
                return None
            if length > MAX_BODY:
                self._send(413, {"error": f"body larger than {MAX_BODY} bytes"})
                return None
            return length

        def _body(self, length: int) -> dict[str, Any]:
            try:
                doc = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return {}
            return doc if isinstance(doc, dict) else {}

        def do_GET(self) -> None:
            if self._foreign():
                return
            if self.path == "/api/health":
                self._send(200, get_daemon().health())
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self._foreign():
                return
            daemon = get_daemon()
            if self.path not in ("/api/retire", "/api/shutdown", "/api/work"):
                self._send(404, {"error": "not found"})
                return
            length = self._length()
            if length is None:
                return
            status = daemon.authorized(self.headers.get("Authorization"))
            if status != 200:
                self._send(status, {"error": "unauthorized" if status == 401 else "forbidden"})
                return
            body = self._body(length)
            gov = daemon.governor
            if self.path == "/api/retire":
                reason = (
                    RetireReason.SUPERSEDED
                    if body.get("reason") == "superseded"
                    else RetireReason.REQUESTED
                )
                gov.retire(reason)
                self._send(202, {"status": "retiring", "reason": reason.value})
            elif self.path == "/api/shutdown":
                gov.retire(RetireReason.SHUTDOWN, drain=False)
                self._send(200, {"status": "stopping"})
            else:
                self._work(gov, body)

        def _work(self, gov: Governor, body: dict[str, Any]) -> None:
            seconds = body.get("seconds", 1.0)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                self._send(400, {"error": "seconds must be a number"})
                return
            seconds = min(max(float(seconds), 0.0), MAX_WORK_S)
            try:
                with gov.work():
                    time.sleep(seconds)
            except Retiring:
                self._send(503, {"error": "retiring"})
                return
            self._send(200, {"status": "done", "seconds": seconds})

    return Handler
