"""The reference daemons' loopback control plane: a bounded HTTP server and its handler.

spec: docs/protocol/control.md#endpoints, control.md#limits
"""

from __future__ import annotations

import io
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from tenure.adapters import platform
from tenure.adapters.daemonlog import log as _log
from tenure.adapters.http import LOOPBACK
from tenure.adapters.peers import peer_uid
from tenure.errors import Retiring
from tenure.runtime.holder import Governor, RetireReason

MAX_WORK_S = 30.0  # bound on the demo workload's in-flight slot
MAX_BODY = 4096
# spec: control.md#limits — a client can hold at most this many handler threads and
# descriptors, so no local user can starve the heartbeat of descriptors; other users' clients
# share at most OTHERS_MAX of them, so the daemon's own user always finds a free slot.
MAX_CONNECTIONS = 32
OTHERS_MAX = 16
CLIENT_TIMEOUT_S = 5.0  # per socket write of one connection
REQUEST_DEADLINE_S = 2.0  # the whole request (line, headers, body) arrives within this
MAX_HEAD = 16 * 1024  # request line and headers


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
        self.others = threading.BoundedSemaphore(OTHERS_MAX)
        self._others_held: set[int] = set()  # ids of requests holding an `others` slot
        self.refused = 0
        super().__init__(addr, handler)

    def _admit(self, request: Any, client_address: Any) -> bool:
        """Take a slot for this connection: another user's (or an unknown peer's) only while
        fewer than OTHERS_MAX of theirs are open."""
        mine = peer_uid(client_address[1], self.server_address[1]) == platform.uid()
        if not mine:
            if not self.others.acquire(blocking=False):
                return False
            self._others_held.add(id(request))
        if self.slots.acquire(blocking=False):
            return True
        self._release_other(request)
        return False

    def _release_other(self, request: Any) -> None:
        if id(request) in self._others_held:
            self._others_held.discard(id(request))
            self.others.release()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._admit(request, client_address):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            self._release_other(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()
            self._release_other(request)

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


def read_request(sock: socket.socket, deadline_s: float) -> bytes:
    """The request's head and (declared, capped) body, read against one deadline; what
    arrived by then (possibly nothing) otherwise. The handler answers 400 to a partial one."""
    deadline = time.monotonic() + deadline_s
    data = b""
    need: int | None = None  # total bytes once the head is complete
    while need is None or len(data) < need:
        left = deadline - time.monotonic()
        if left <= 0:
            return b""
        sock.settimeout(left)
        try:
            chunk = sock.recv(16384)
        except OSError:
            return b""
        if not chunk:
            break
        data += chunk
        if need is None:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > MAX_HEAD:
                    return data[:MAX_HEAD]
                continue
            length = _declared_length(data[:end])
            need = end + 4 + (length if length <= MAX_BODY else 0)  # else: 413 at once
    sock.settimeout(CLIENT_TIMEOUT_S)
    return data


def _declared_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            text = value.strip()
            return int(text) if text.isdigit() and len(text) < 12 else 0
    return 0
