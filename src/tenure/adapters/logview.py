"""Reading a daemon's log for `tenure logs`: the last lines across rotation, and following it."""

from __future__ import annotations

import os
import time
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


def last_lines(root: Path, family: str, n: int, since: float | None = None) -> list[str]:
    """The last `n` lines of the log, reaching into the rotated `.log.1` when needed; with
    `since` (a wall time), only the lines written from then on (a line without a timestamp of
    its own — a child's output — goes with the timestamped line before it)."""
    if n <= 0:
        return []
    current = log_path(root, family)
    rotated = current.with_name(current.name + ".1")
    text = (_read(rotated) + _read(current)).decode("utf-8", "replace")
    lines = text.splitlines()
    if since is not None:
        lines = _since(lines, since)
    return lines[-n:]


def _since(lines: list[str], since: float) -> list[str]:
    keep, out = False, []
    for line in lines:
        stamp = _stamp(line)
        if stamp is not None:
            keep = stamp >= since - 1  # the stamp has whole seconds
        if keep:
            out.append(line)
    return out


def _stamp(line: str) -> float | None:
    """The local wall time a log line starts with (`2026-12-08T02:40:11 …`), if it does."""
    try:
        return time.mktime(time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None


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
