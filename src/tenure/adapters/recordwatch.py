"""Waiting for a lease record to change (adapter): inotify on Linux, a stat every `WATCH_S`
elsewhere. spec: docs/protocol/lease.md#supersession

A holder waits here between heartbeats. With inotify on the `leases/` directory it sleeps until
something there changes (its own record is replaced by rename on every write), so an idle holder
wakes only for its heartbeat and a bounded backstop; without it, it looks every `WATCH_S`. What
changed is judged by the caller (a stat of its record, then a read): this only says "look now".
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
from pathlib import Path

from tenure.adapters import platform
from tenure.core.timing import WATCH_S

# inotify(7) event bits: a file created, written, renamed in or out, removed; the directory
# itself removed or moved.
_IN_MODIFY, _IN_ATTRIB, _IN_MOVED_FROM, _IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
_IN_CREATE, _IN_DELETE, _IN_DELETE_SELF, _IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
    | _IN_DELETE_SELF
    | _IN_MOVE_SELF
)
BACKSTOP_S = 1.0  # with inotify, still look this often: a missed event costs at most this


class RecordWatch:
    """Wakes its caller when the directory of a record changes (or `WATCH_S` passed)."""

    def __init__(self, directory: Path) -> None:
        self._fd: int | None = None
        if platform.PROC_FACTS:  # Linux's own facility; portable mode tests the fallback
            with contextlib.suppress(OSError, AttributeError, ImportError):
                self._fd = _inotify(directory)

    @property
    def notified(self) -> bool:
        """Whether the kernel tells us of changes (else we poll)."""
        return self._fd is not None

    def wait(self, timeout: float, stop: threading.Event) -> None:
        """Return after `timeout`, when the directory changed, or soon after `stop` is set."""
        if self._fd is None:
            stop.wait(min(timeout, WATCH_S))
            return
        try:
            ready, _, _ = select.select([self._fd], [], [], min(timeout, BACKSTOP_S))
            if ready:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._fd, 4096):
                        pass
        except (OSError, ValueError):
            self.close()  # the watch broke: poll from now on

    def close(self) -> None:
        """Stop watching."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _inotify(directory: Path) -> int:
    """An inotify descriptor watching `directory` (non-blocking, close-on-exec)."""
    if sys.platform == "win32":
        raise OSError("no inotify here")
    import ctypes  # noqa: PLC0415  (Linux only, and off the path to serving: see the caller)

    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    if int(libc.inotify_add_watch(fd, os.fsencode(directory), _MASK)) < 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise OSError(err, "inotify_add_watch")
    return fd
