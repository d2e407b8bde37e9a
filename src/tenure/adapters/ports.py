"""Which loopback ports accept a connection (adapter): non-blocking connects in batches.

Used by the requester side (a free port for a new holder, a port let go) and by the
hygiene scan alike. spec: docs/protocol/classification.md#scanning
"""

from __future__ import annotations

import errno
import time
from collections.abc import Iterable

from tenure.adapters.http import LOOPBACK
from tenure.core.hints import TYPE_CHECKING
from tenure.errors import ScanIncomplete

if TYPE_CHECKING:
    import socket

CONNECT_TIMEOUT_S = 0.05
MAX_SOCKETS = 64  # sockets one scan holds at once, whatever the range (and health probes)


def open_ports(ports: Iterable[int], timeout: float = CONNECT_TIMEOUT_S) -> list[int]:
    """Ports on 127.0.0.1 that accept a TCP connection, tried (non-blocking) in batches.

    At most `MAX_SOCKETS` sockets are open at once whatever the range, so a wide range cannot
    exhaust the descriptor limit; when the process is out of descriptors anyway, the scan says
    so (`ScanIncomplete`) instead of guessing. spec: classification.md#scanning
    """
    return connect_gate(ports, timeout)[0]


def connect_gate(
    ports: Iterable[int], timeout: float = CONNECT_TIMEOUT_S
) -> tuple[list[int], list[int]]:
    """`open_ports`, and the ports whose connect was neither accepted nor refused in `timeout`.

    On loopback a closed port refuses at once; a connect left unanswered means a listener
    whose accept queue is full (it never accepts): it is there, but asking it anything would
    only wait out a timeout. spec: classification.md#scanning
    """
    todo = list(ports)
    found: list[int] = []
    stalled: list[int] = []
    for i in range(0, len(todo), MAX_SOCKETS):
        accepted, unanswered = _open_batch(todo[i : i + MAX_SOCKETS], timeout)
        found += accepted
        stalled += unanswered
    return sorted(found), sorted(stalled)


def _socket() -> socket.socket:
    import socket  # noqa: PLC0415  (~4 ms: a host tool reusing a daemon never probes a port)

    try:
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            why = (exc.strerror or "no descriptors").lower()
            raise ScanIncomplete(exc.errno, why) from None
        raise


def _open_batch(ports: list[int], timeout: float) -> tuple[list[int], list[int]]:
    import selectors  # noqa: PLC0415
    import socket  # noqa: PLC0415

    sel = selectors.DefaultSelector()
    pending: dict[int, tuple[socket.socket, int]] = {}
    found: list[int] = []
    try:
        for port in ports:
            sock = _socket()
            sock.setblocking(False)
            code = sock.connect_ex((LOOPBACK, port))
            if code == 0:
                found.append(port)
                sock.close()
            elif code in (errno.EINPROGRESS, errno.EWOULDBLOCK):
                pending[sock.fileno()] = (sock, port)
                sel.register(sock, selectors.EVENT_WRITE)
            else:
                sock.close()
        deadline = time.monotonic() + timeout
        while pending and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                sock, port = pending.pop(key.fd)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    found.append(port)
                sel.unregister(sock)
                sock.close()
    finally:
        for sock, _port in pending.values():
            sock.close()
        sel.close()
    return found, [port for _sock, port in pending.values()]
