"""The test kit's signal guard: under a test, tenure ends only processes the test started.

When `TENURE_TEST_SIGNAL_GUARD` names a file, every process a test registry starts or tracks
is appended there as `pid create_time`, and every signal or shutdown call tenure's cleanup
code makes is refused unless its target is listed. Unset (every real use), the guard is off.
"""

from __future__ import annotations

import os

from tenure.adapters import config
from tenure.core.identity import same_create_time


def guard_path() -> str | None:
    """The guard file when the guard is on."""
    return config.signal_guard()


def allow(pid: int, create_time: float) -> None:
    """Record that the running test started (or caused) this process."""
    path = guard_path()
    if path is None:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, f"{pid} {create_time!r}\n".encode())
    finally:
        os.close(fd)


def allows(pid: int, create_time: float | None) -> bool:
    """True when the guard is off, or the process is one the test started."""
    path = guard_path()
    if path is None:
        return True
    if create_time is None:
        return False
    try:
        with open(path, encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return False
    for line in lines:
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            if int(parts[0]) == pid and same_create_time(float(parts[1]), create_time):
                return True
        except ValueError:
            continue
    return False
