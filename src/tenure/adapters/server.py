"""The control plane's transport (adapter): a small loopback HTTP/1.1 server that bounds what
any client can hold, reads each request whole against one deadline, and answers with one JSON
document. (Not http.server: that pulls in email, ssl and OpenSSL — ~6 MB resident and ~25 ms
of start for a daemon that serves four endpoints.) spec: control.md#limits
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus

from tenure.adapters import platform
from tenure.adapters.daemonlog import log as _log
from tenure.adapters.http import LOOPBACK
from tenure.adapters.peers import peer_uid
from tenure.core.hints import TYPE_CHECKING
from tenure.core.values import frozen, mutable

if TYPE_CHECKING:
    from typing import Any

MAX_BODY = 4096
# spec: control.md#limits — a client can hold at most this many handler threads and
# descriptors, so no local user can starve the heartbeat of descriptors; other users' clients
# share at most half of them. A connection of the daemon's own user that finds every slot taken
# takes the slot of the oldest connection that has not yet sent its whole request: a crowd of
# silent connections, whoever opened it, never keeps the owner's CLI out.
MAX_CONNECTIONS = 32
OTHERS_MAX = 16
# Descriptors kept free beside the slots, for what the lease needs while clients come and go:
# an accept, the heartbeat's lock, temp file and directory, the release, the tombstone.
RESERVED_FDS = 8
CLIENT_TIMEOUT_S = 5.0  # per socket write of one connection
REQUEST_DEADLINE_S = 2.0  # the whole request (line, headers, body) arrives within this
MAX_HEAD = 16 * 1024  # request line and headers


def connection_limit(fd_limit: int | None, in_use: int) -> int:
    """How many clients may hold a descriptor at once: MAX_CONNECTIONS, or fewer when the
    process's descriptor limit leaves less room beside `in_use` and RESERVED_FDS (at least 1)."""
    if fd_limit is None:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, fd_limit - in_use - RESERVED_FDS))


def _fd_room() -> tuple[int | None, int]:
    """(the soft descriptor limit or None when unlimited or unknown, descriptors open now)."""
    if sys.platform == "win32":
        return None, 0
    import resource  # noqa: PLC0415  (POSIX only)

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        in_use = len(os.listdir("/proc/self/fd" if platform.PROC_FACTS else "/dev/fd"))
    except OSError:
        in_use = 16  # cannot count: assume a daemon's usual few, and some
    return (None if soft == resource.RLIM_INFINITY else int(soft)), in_use


@frozen
class Request:
    """One parsed request: method, path, headers (lower-case names, first one wins), body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    local_port: int  # the port it arrived on (the Host check needs it)


Answer = tuple[int, dict[str, "Any"]]  # quoted: Any is for the checker only
Route = Callable[[Request], Answer]


@mutable
class _Client:
    """A connection holding a slot: whose it is, and whether its request is still arriving."""

    other: bool  # another user's (or a peer whose uid cannot be told)
    since: float
    waiting: bool = True


class BoundedServer(socketserver.ThreadingTCPServer):
    """A threading loopback server that serves at most `limit` clients at once and answers
    each with one JSON document (`Connection: close`).

    A connection past the limit is accepted and closed at once — or, for the daemon's own
    user, takes the place of the oldest connection still sending its request — so neither
    handler threads nor descriptors grow with what another local user opens. Each request is
    read whole against one deadline before it is parsed (`read_request`).
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr: tuple[str, int], route: Route) -> None:
        self.route = route
        self.limit = connection_limit(*_fd_room())
        # At least one: where no peer's uid can be told, everyone (the owner too) is "other".
        self.others_limit = max(1, min(OTHERS_MAX, self.limit // 2))
        self._clients: dict[Any, _Client] = {}  # by socket, while it holds a slot
        self._lock = threading.Lock()
        self.refused = 0
        self.evicted = 0
        super().__init__(addr, socketserver.BaseRequestHandler)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.server_address[1])

    def _admit(self, request: Any, client_address: Any) -> bool:
        """Give this connection a slot: another user's while fewer than `others_limit` of theirs
        are open; when its share (or every slot) is taken, in place of the oldest connection
        that has not sent its whole request yet — for another user's, only another user's."""
        other = peer_uid(client_address[1], self.port) != platform.uid()
        with self._lock:
            others_full = sum(c.other for c in self._clients.values()) >= self.others_limit
            if (other and others_full) or len(self._clients) >= self.limit:
                # Another user's connection may only displace another user's (where the peer's
                # uid cannot be told, the owner's too count as others: control.md#limits).
                victim = self._oldest_waiting(only_others=other)
                if victim is None:
                    return False
                self._evict(victim)
            self._clients[request] = _Client(other, time.monotonic())
        return True

    def _oldest_waiting(self, *, only_others: bool) -> Any:
        waiting = [
            (c.since, i, s)
            for i, (s, c) in enumerate(self._clients.items())
            if c.waiting and (c.other or not only_others)
        ]
        return min(waiting)[2] if waiting else None

    def _evict(self, sock: Any) -> None:
        """Take the slot back: its handler's read ends at once and it goes without an answer."""
        del self._clients[sock]
        self.evicted += 1
        with contextlib.suppress(OSError):  # it may have closed by itself meanwhile
            sock.shutdown(socket.SHUT_RDWR)

    def _release(self, request: Any) -> None:
        with self._lock:
            self._clients.pop(request, None)

    def _answering(self, request: Any) -> bool:
        """Mark the request as read whole (no longer evictable); False when it was evicted."""
        with self._lock:
            client = self._clients.get(request)
            if client is not None:
                client.waiting = False
            return client is not None

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._admit(request, client_address):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        data = read_request(request, REQUEST_DEADLINE_S)
        if not self._answering(request) or not data:
            return  # evicted, or nothing (or a trickle) by the deadline: dropped, no answer
        parsed = parse_request(data, self.port)
        if parsed is None:
            answer: Answer = (400, {"error": "bad request"})
        elif parsed.method not in ("GET", "POST"):
            answer = (501, {"error": f"unsupported method {parsed.method[:20]!r}"})
        elif "transfer-encoding" in parsed.headers:
            # The body was read by its Content-Length only: a chunked one would be taken as
            # empty (a `reason` lost, a `seconds` defaulted). Say so instead.
            answer = (411, {"error": "send the body with Content-Length, not chunked"})
        else:
            answer = self.route(parsed)
        send_json(request, *answer)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # One line per client error, never a traceback: clients are not ours to debug.
        exc = sys.exc_info()[1]
        _log(f"client {client_address[0]}:{client_address[1]}: {type(exc).__name__}: {exc}")


def bind_first_free(ports: range, route: Route) -> BoundedServer | None:
    """Bind 127.0.0.1 on the first free port of `ports`."""
    for port in ports:
        try:
            return BoundedServer((LOOPBACK, port), route)
        except OSError:
            continue
    return None


def parse_request(data: bytes, local_port: int) -> Request | None:
    """The request in `data` (head and body, as `read_request` returned it), or None when it
    is malformed or partial (answered 400)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            return None
        headers.setdefault(name.lower(), value.strip())
    return Request(parts[0], parts[1], headers, body, local_port)


def send_json(sock: socket.socket, status: int, doc: dict[str, Any]) -> None:
    """Write one JSON answer and say the connection closes."""
    body = json.dumps(doc).encode()
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    head = (
        f"HTTP/1.1 {status} {phrase}\r\nServer: tenure\r\nDate: {date}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    sock.settimeout(CLIENT_TIMEOUT_S)
    sock.sendall(head.encode() + body)


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
    return data


def content_length(value: str) -> int | None:
    """A `Content-Length` value as a number, or None when malformed: ASCII digits only (a
    superscript `²` is a digit to `str.isdigit`, not to `int`), at most 11 of them."""
    text = value.strip()
    if not (text.isascii() and text.isdigit() and len(text) < 12):
        return None
    return int(text)


def _declared_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return content_length(value.decode("latin-1")) or 0
    return 0
