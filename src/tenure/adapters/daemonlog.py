"""The daemon's log (adapter): fd 1 and 2, one line per event, rotated at a size cap."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from pathlib import Path

from tenure.adapters.files import open_regular

LOG_MAX_BYTES = 1024 * 1024  # the log rotates to <family>.log.1 past this (one old file kept)


class DaemonLog:
    """The daemon's log: fd 1 and 2, rotated to `<log>.1` once it passes LOG_MAX_BYTES.

    Rotation re-points fd 1 and 2 at a fresh file, so stray writes follow. A daemon started
    with stderr elsewhere (a terminal, a pipe) is never rotated.
    """

    def __init__(self, path: Path | None, max_bytes: int = LOG_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _ours(self) -> bool:
        if self.path is None:
            return False
        try:
            fd_st, path_st = os.fstat(2), os.lstat(self.path)
        except OSError:
            return False
        return (fd_st.st_dev, fd_st.st_ino) == (path_st.st_dev, path_st.st_ino)

    def _rotate_if_full(self) -> None:
        try:
            if os.fstat(2).st_size < self.max_bytes or not self._ours():
                return
            assert self.path is not None
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        except OSError:
            return  # a full disk must not stop the daemon from governing
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    def write(self, msg: str) -> None:
        """One timestamped line; control characters from outside are escaped."""
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} tenure[{os.getpid()}] {msg}"
        safe = line.encode("unicode_escape").decode("ascii") if not line.isprintable() else line
        with self._lock:
            self._rotate_if_full()
            with contextlib.suppress(OSError):
                print(safe, file=sys.stderr, flush=True)


LOG = DaemonLog(None)


def log(msg: str) -> None:
    """One line in the daemon log."""
    LOG.write(msg)


LIFELOG_CAP = 8 * 1024 * 1024  # past this, lifecycle lines are dropped rather than fill a disk


def lifecycle(path: Path, msg: str) -> None:
    """One lifecycle line of a holder (holding, retiring, released) in its family's log, so
    `tenure logs` shows every holder's life — a `tenure.hold` daemon, a `tenure run` wrapper —
    not only the reference daemons' (which log their own). Where stderr already is that file
    (a daemon `tenure.ensure` spawned), the line goes there; otherwise it is appended. Never
    raises: a log must not stop a holder from governing."""
    if LOG.path is not None:
        return  # a reference daemon: it writes these lines itself
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} tenure[{os.getpid()}] {msg}"
    safe = line.encode("unicode_escape").decode("ascii") if not line.isprintable() else line
    with contextlib.suppress(OSError, ValueError):
        if _same_file(2, path):
            print(safe, file=sys.stderr, flush=True)
            return
        fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            if os.fstat(fd).st_size < LIFELOG_CAP:
                os.write(fd, (safe + "\n").encode())
        finally:
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
