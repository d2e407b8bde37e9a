"""Linux's /proc, read directly (adapter): the few process facts the hot paths need, as the
same numbers psutil computes (its ~15 ms import and ~4 MB stay out of `start` and the daemon).
Callers use these only where `platform.PROC_FACTS` holds and /proc is this process's own.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from pathlib import Path

from tenure.adapters import platform
from tenure.adapters.location import here
from tenure.core.identity import ProcessIdentity
from tenure.core.values import frozen


@frozen
class ProcessFacts:
    """What one live process shows. `cmdline` may be empty when access is denied."""

    pid: int
    create_time: float
    uid: int | None
    cmdline: tuple[str, ...]
    start_ticks: int | None = None

    @property
    def ident(self) -> ProcessIdentity:
        """The identity read now, here."""
        return ProcessIdentity(self.pid, self.create_time, self.start_ticks, here())


def parent_and_start(pid: int) -> tuple[int, int] | None:
    """(parent pid, start ticks since boot) from /proc/pid/stat (fields 4 and 22); None when
    there is no such process or no /proc."""
    if not platform.PROC_FACTS:
        return None
    try:
        fields = _stat_fields(pid)
        return None if fields is None else (int(fields[1]), int(fields[19]))
    except (OSError, IndexError, ValueError):
        return None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_UID = re.compile(rb"^Uid:\s+(\d+)", re.MULTILINE)


def boot_time() -> float:
    """/proc/stat's `btime`, read every time as psutil does (a wall-clock step moves it)."""
    data = _read("/proc/stat", 1 << 20)
    at = data.find(b"\nbtime ")
    if at < 0:
        raise OSError(errno.ENOENT, "no btime in /proc/stat")
    return float(data[at + 7 : data.index(b"\n", at + 1)])


def stat(pid: int) -> tuple[bytes, int] | None:
    """(state letter, start ticks) from /proc/pid/stat; None when there is no such process."""
    fields = _stat_fields(pid)
    try:
        return None if fields is None else (fields[0], int(fields[19]))
    except (IndexError, ValueError):
        return None


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/pid/stat's fields from the state (field 3) on; None when there is no such
    process. Other errors (EACCES under hidepid) are the caller's to judge."""
    try:
        data = _read(f"/proc/{pid}/stat", 4096)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return data[data.rfind(b")") + 2 :].split()


def _read(path: str, limit: int) -> bytes:
    # One open and one read: /proc files are generated whole on the first read.
    fd = os.open(path, os.O_RDONLY | platform.CLOEXEC)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def create_time(ticks: int) -> float:
    # The same arithmetic as psutil's Linux create_time, so the two always agree.
    return float(ticks) / _CLOCK_TICKS + boot_time()


def read(pid: int) -> ProcessFacts | None:
    """`read_process` from /proc alone (Linux): the facts psutil would give, without it."""
    try:
        found = stat(pid)
    except PermissionError:
        return ProcessFacts(pid=pid, create_time=-1.0, uid=None, cmdline=())
    except OSError:
        return None
    if found is None or found[0] == b"Z":
        return None
    ticks = found[1]
    try:
        match = _UID.search(_read(f"/proc/{pid}/status", 8192))
        uid: int | None = int(match.group(1)) if match else None
    except OSError:
        uid = None
    try:
        cmdline = split_cmdline(os.fsdecode(_read(f"/proc/{pid}/cmdline", 1 << 20)))
    except OSError:
        cmdline = ()
    try:
        started = create_time(ticks)
    except OSError:
        return ProcessFacts(pid=pid, create_time=-1.0, uid=uid, cmdline=cmdline)
    return ProcessFacts(pid, started, uid, cmdline, start_ticks=ticks)


def split_cmdline(data: str) -> tuple[str, ...]:
    """argv as psutil splits /proc/pid/cmdline: NUL-separated, or spaces for a process that
    rewrote its title."""
    if not data:
        return ()
    sep = "\x00" if data.endswith("\x00") else " "
    if data.endswith(sep):
        data = data[:-1]
    parts = data.split(sep)
    if sep == "\x00" and len(parts) == 1 and " " in data:
        parts = data.split(" ")
    return tuple(parts)


def pid_namespace(pid: int) -> int | None:
    """The inode of `pid`'s pid namespace (`/proc/<pid>/ns/pid`), or None when it cannot be
    read (gone, another user's without privilege, no /proc)."""
    try:
        return os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return None


def environ_value(pid: int, name: str) -> str | None:
    """One variable of `pid`'s environment, or None (absent, or not ours to read)."""
    try:
        env = _read(f"/proc/{pid}/environ", 1 << 20)
    except OSError:
        return None
    prefix = f"{name}=".encode()
    for var in env.split(b"\0"):
        if var.startswith(prefix):
            return var[len(prefix) :].decode("ascii", "replace")
    return None


def proc_locks_holder(lock_path: Path) -> int | None:
    """`lock_holder_pid` read from /proc/locks whatever the mode (a test's own instrument)."""
    if sys.platform == "win32":
        return None
    try:
        st = os.stat(lock_path)
        with open("/proc/locks", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; blocked waiters carry "->".
        if "->" in parts:
            continue
        if len(parts) >= 6 and parts[5] == want and parts[4].isdigit():
            return int(parts[4])
    return None


def socket_owners(inodes: set[int]) -> dict[int, int]:
    """inode → pid for the sockets among `inodes` that a process this one may read holds, as
    psutil pairs them: a socket held by several processes (a listener inherited across fork)
    names the last of them in /proc order."""
    owner: dict[int, int] = {}
    for name in os.listdir("/proc") if inodes else ():
        if not name.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{name}/fd")
        except OSError:
            continue  # gone, or another user's: its sockets have no pid here
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{name}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and (inode := int(link[8:-1])) in inodes:
                owner[inode] = int(name)
    return owner
