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
