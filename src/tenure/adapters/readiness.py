"""Whether `tenure run`'s child is ready (adapter): READY=1 on the socket its NOTIFY_SOCKET
names, sent by a member of its tree, or — when readiness is by port — a connection accepted
on its port. spec: docs/protocol/control.md#readiness

On Linux the socket has an abstract name and every datagram carries its sender's credentials
(SO_PASSCRED): a READY=1 from a process outside the tree is ignored, so another local user
cannot fake an upgrade's readiness. Elsewhere it is a path in a fresh 0700 directory, which
only this user can reach.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Callable

from tenure.adapters.ports import open_ports
from tenure.core.timing import DEFAULT_READY_S
from tenure.core.values import frozen

NOTIFY_ENV = "NOTIFY_SOCKET"
MODES = ("port", "notify", "started")  # what "ready" means (control.md#readiness)
_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid
_MAX_DATAGRAM = 4096


@frozen
class ReadySpec:
    """`mode` is what ready means (port, notify, started; None: port when the wrapper has a
    port, else started); `timeout_s` bounds it when an older wrapper stands by to take its
    place back."""

    mode: str | None = None
    timeout_s: float = DEFAULT_READY_S


class ReadyWatch:
    """The child's readiness: `mode` port (a connection accepted on `port`, or READY=1),
    notify (READY=1 only) or started (ready once it runs; with `settle_s`, once it has run
    that long: a child on a handed socket, where a port probe proves nothing)."""

    def __init__(self, mode: str, port: int | None, *, settle_s: float = 0.0) -> None:
        self.mode = mode
        self.port = port
        self._settled_at = time.monotonic() + settle_s
        self._dir: str | None = None
        self._sock: socket.socket | None = None
        self.address: str | None = None
        if mode != "started" or settle_s > 0:
            with contextlib.suppress(OSError):
                self._open()

    def _open(self) -> None:
        if sys.platform == "win32":  # no AF_UNIX datagrams: readiness by port alone
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            passcred = getattr(socket, "SO_PASSCRED", None)
            if passcred is not None:
                name = f"tenure-notify-{os.urandom(8).hex()}"
                sock.bind("\0" + name)
                sock.setsockopt(socket.SOL_SOCKET, passcred, 1)
                self.address = "@" + name
            else:
                self._dir = tempfile.mkdtemp(prefix="tenure-notify-")
                path = os.path.join(self._dir, "notify")
                sock.bind(path)
                self.address = path
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def env(self) -> dict[str, str]:
        """What the child's environment gets: NOTIFY_SOCKET, when there is a socket."""
        return {} if self.address is None else {NOTIFY_ENV: self.address}

    def ready(self, member: Callable[[int], bool]) -> bool:
        """Whether the child is ready now; `member(pid)` proves a sender is of its tree."""
        if self.mode == "started":
            return time.monotonic() >= self._settled_at or self._notified(member)
        if self._notified(member):
            return True
        return self.mode == "port" and self.port is not None and bool(open_ports([self.port]))

    def _notified(self, member: Callable[[int], bool]) -> bool:
        if self._sock is None or sys.platform == "win32":
            return False
        said = False
        passcred = getattr(socket, "SCM_CREDENTIALS", None)
        ancillary = socket.CMSG_SPACE(_UCRED.size) if passcred is not None else 0
        while True:
            try:
                data, cmsgs, _flags, _addr = self._sock.recvmsg(_MAX_DATAGRAM, ancillary)
            except OSError:  # nothing more to read now (BlockingIOError), or it broke
                return said
            if passcred is not None and not _from_member(cmsgs, passcred, member):
                continue  # no credentials, or a sender outside the tree
            said = said or b"READY=1" in data.split(b"\n")

    def close(self) -> None:
        """Close the socket (and remove its directory)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _from_member(
    cmsgs: list[tuple[int, int, bytes]], kind: int, member: Callable[[int], bool]
) -> bool:
    for level, typ, data in cmsgs:
        if level == socket.SOL_SOCKET and typ == kind and len(data) >= _UCRED.size:
            pid, _uid, _gid = _UCRED.unpack(data[: _UCRED.size])
            return member(pid)
    return False
