"""The test kit's signal guard: under a test, tenure ends only processes the test started.

When `TENURE_TEST_SIGNAL_GUARD` names a file, every process a test registry starts or tracks
is appended there as `pid create_time start_ticks`, and every signal or shutdown call tenure's
cleanup code makes is refused unless its target is listed. Unset (every real use), the guard is
off.
"""

from __future__ import annotations

import os

from tenure.adapters import config, platform
from tenure.core.identity import ProcessIdentity, same_start


def guard_path() -> str | None:
    """The guard file when the guard is on."""
    return config.signal_guard()


def allow(ident: ProcessIdentity) -> None:
    """Record that the running test started (or caused) this process."""
    path = guard_path()
    if path is None:
        return
    ticks = "-" if ident.start_ticks is None else str(ident.start_ticks)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | platform.CLOEXEC, 0o600)
    try:
        os.write(fd, f"{ident.pid} {ident.create_time!r} {ticks}\n".encode())
    finally:
        os.close(fd)


def _listed(line: str) -> ProcessIdentity | None:
    parts = line.split()
    if len(parts) not in (2, 3):
        return None
    try:
        ticks = None if len(parts) == 2 or parts[2] == "-" else int(parts[2])
        return ProcessIdentity(int(parts[0]), float(parts[1]), ticks)
    except ValueError:
        return None


def allows(ident: ProcessIdentity) -> bool:
    """True when the guard is off, or the process is one the test started."""
    path = guard_path()
    if path is None:
        return True
    try:
        with open(path, encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return False
    return any(
        (listed := _listed(line)) is not None and same_start(listed, ident) for line in lines
    )
