"""The reference daemons' loopback control plane: a bounded HTTP server and its handler.

spec: docs/protocol/control.md#endpoints, control.md#limits
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from tenure.adapters.daemonlog import log as _log
from tenure.adapters.http import LOOPBACK
from tenure.errors import Retiring
from tenure.runtime.holder import Governor, RetireReason

MAX_WORK_S = 30.0  # bound on the demo workload's in-flight slot
MAX_BODY = 4096
# spec: control.md#limits — a client can hold at most this many handler threads and
# descriptors, so no local user can starve the heartbeat of descriptors.
MAX_CONNECTIONS = 32
CLIENT_TIMEOUT_S = 5.0  # per socket read or write of one connection


class Controlled(Protocol):
    """What the control plane serves: a health document, a token check, a governor."""

    governor: Governor

    def health(self) -> dict[str, Any]:
        """The /api/health document."""
        ...

    def authorized(self, header: str | None) -> int:
        """200, 401 or 403 for an Authorization header."""
        ...


class BoundedServer(ThreadingHTTPServer):
    """A threading server that serves at most MAX_CONNECTIONS clients at once.

    A connection past the limit is accepted and closed at once, so neither handler threads
    nor descriptors grow with what another local user opens.
    """

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.refused = 0
        super().__init__(addr, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # One line per client error, never a traceback: clients are not ours to debug.
        exc = sys.exc_info()[1]
        _log(f"client {client_address[0]}:{client_address[1]}: {type(exc).__name__}: {exc}")


def bind_first_free(ports: range, handler: type[BaseHTTPRequestHandler]) -> BoundedServer | None:
    """Bind 127.0.0.1 on the first free port of `ports`."""
    for port in ports:
        try:
            return BoundedServer((LOOPBACK, port), handler)
        except OSError:
            continue
    return None


def make_handler(get_daemon: Callable[[], Controlled]) -> type[BaseHTTPRequestHandler]:
    """A request handler bound to the daemon (looked up lazily: the server exists first)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "tenure"
        protocol_version = "HTTP/1.1"
        timeout = CLIENT_TIMEOUT_S  # a silent client is dropped, not waited for

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging: it would grow the log and cost a write per probe."""

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
            if self.path == "/api/health":
                self._send(200, get_daemon().health())
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
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
