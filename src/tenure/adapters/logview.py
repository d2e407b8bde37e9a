"""Reading a daemon's log for `tenure logs`: the last lines across rotation, and following it."""

from __future__ import annotations

import os
from pathlib import Path

from tenure.adapters.files import open_regular
from tenure.adapters.store import log_path

READ_CAP = 4 * 1024 * 1024  # never read more than this of one file


def _read(path: Path) -> bytes:
    try:
        fd = open_regular(path)
    except OSError:
        return b""
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, max(size - READ_CAP, 0), os.SEEK_SET)
        return os.read(fd, READ_CAP)
    finally:
        os.close(fd)


def last_lines(root: Path, family: str, n: int) -> list[str]:
    """The last `n` lines of the log, reaching into the rotated `.log.1` when needed."""
    if n <= 0:
        return []
    current = log_path(root, family)
    rotated = current.with_name(current.name + ".1")
    text = (_read(rotated) + _read(current)).decode("utf-8", "replace")
    return text.splitlines()[-n:]


class LogFollower:
    """New lines as they are written; starts at the end, notices rotation."""

    def __init__(self, root: Path, family: str) -> None:
        self.path = log_path(root, family)
        self._ident, self._offset = self._stat()
        self._partial = b""

    def _stat(self) -> tuple[tuple[int, int] | None, int]:
        try:
            st = os.lstat(self.path)
        except OSError:
            return None, 0
        return (st.st_dev, st.st_ino), st.st_size

    def new_lines(self) -> list[str]:
        """Complete lines written since the last call."""
        ident, size = self._stat()
        if ident is None:
            return []
        if ident != self._ident or size < self._offset:
            self._ident, self._offset, self._partial = ident, 0, b""  # rotated: a new file
        if size == self._offset:
            return []
        try:
            fd = open_regular(self.path)
        except OSError:
            return []
        try:
            os.lseek(fd, self._offset, os.SEEK_SET)
            data = os.read(fd, min(size - self._offset, READ_CAP))
        finally:
            os.close(fd)
        self._offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete]
