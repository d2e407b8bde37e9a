"""Where this process lives (adapter): boot id, pid namespace, time namespace, host.

spec: docs/protocol/lease.md#identity
"""

from __future__ import annotations

import os
import sys

from tenure.adapters import platform
from tenure.core.identity import Location

_cache: dict[int, Location | None] = {}


def _ns_inode(kind: str) -> int | None:
    try:
        return os.stat(f"/proc/self/ns/{kind}").st_ino
    except OSError:
        return None


def _read_location() -> Location | None:
    if not platform.PROC_FACTS:
        return None
    try:
        # A /proc mounted for another pid namespace shows other processes under our pids:
        # nothing read from it identifies anything, so this process has no location.
        if os.readlink("/proc/self") != str(os.getpid()):
            return None
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot_id = fh.read(64).strip()
    except OSError:
        return None
    pid_ns = _ns_inode("pid")
    if not boot_id or pid_ns is None:
        return None
    if sys.platform == "win32":  # unreachable (no /proc); os.uname is POSIX only
        return None
    host = os.uname().nodename  # what gethostname() returns, without loading socket
    return Location(boot_id, pid_ns, _ns_inode("time"), host[:256])


def here() -> Location | None:
    """This process's location, or None where the platform cannot say (not Linux, no /proc).

    Read once per process (a forked child re-reads: `unshare`-style helpers fork into new
    namespaces).
    """
    pid = os.getpid()
    if pid not in _cache:
        _cache.clear()
        _cache[pid] = _read_location()
    return _cache[pid]
