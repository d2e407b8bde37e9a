"""Linux's /proc, read directly (adapter): the few process facts the hot paths need, as the
same numbers psutil computes (its ~15 ms import and ~4 MB stay out of `start` and the daemon).
Callers use these only where `platform.PROC_FACTS` holds and /proc is this process's own.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from tenure.adapters import platform
from tenure.adapters.location import here
from tenure.core.identity import ProcessIdentity


@dataclass(frozen=True, slots=True)
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
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read(4096)
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
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
    try:
        data = _read(f"/proc/{pid}/stat", 4096)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


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
        with open(f"/proc/{pid}/status", "rb") as fh:
            match = _UID.search(fh.read(8192))
        uid: int | None = int(match.group(1)) if match else None
    except OSError:
        uid = None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = split_cmdline(os.fsdecode(fh.read(1 << 20)))
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


def environ_value(pid: int, name: str) -> str | None:
    """One variable of `pid`'s environment, or None (absent, or not ours to read)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            env = fh.read(1 << 20)
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


def listening_pids() -> dict[int, int]:
    """port → pid for every listening TCP socket (IPv4 and IPv6) whose owner this process may
    read, as psutil's `net_connections` pairs them: a socket held by several processes (a
    listener inherited across fork) names the last of them in /proc order."""
    ports = listening_sockets()  # (inode, port)
    wanted = {inode for inode, _port in ports}
    owner: dict[int, int] = {}
    for name in os.listdir("/proc") if wanted else ():
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
            if link.startswith("socket:[") and (inode := int(link[8:-1])) in wanted:
                owner[inode] = int(name)
    out: dict[int, int] = {}
    for inode, port in ports:
        if inode in owner:
            out.setdefault(port, owner[inode])
    return out


def listening_sockets() -> list[tuple[int, int]]:
    """(inode, port) of every listening TCP socket, IPv4 then IPv6: asked of the kernel over
    sock_diag (only listeners come back, however many connections sit in TIME_WAIT), else
    read from /proc/net/tcp{,6}."""
    try:
        return [s for family in (socket.AF_INET, socket.AF_INET6) for s in _diag_listeners(family)]
    except OSError:
        pass
    found: list[tuple[int, int]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, "rb") as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == b"0A" and parts[9] != b"0":  # 0A: LISTEN
                found.append((int(parts[9]), int(parts[1].rsplit(b":", 1)[1], 16)))
    return found


_NL_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_DONE, _NLMSG_ERROR, _SOCK_DIAG_BY_FAMILY = 3, 2, 20
_TCP_LISTEN = 10
_DIAG_PORT_AT, _DIAG_INODE_AT = 4, 68  # in inet_diag_msg: sockid.sport (big-endian); idiag_inode


def _diag_listeners(family: int) -> list[tuple[int, int]]:
    """One sock_diag dump of the listening TCP sockets of `family` (this network namespace)."""
    if sys.platform != "linux":
        raise OSError(errno.ENOSYS, "sock_diag is Linux's")
    request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_LISTEN)
    request += bytes(48)  # an empty inet_diag_sockid: no filter but the state
    flags = _NLM_F_REQUEST | _NLM_F_DUMP
    head = _NL_HEADER.pack(_NL_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, flags, 1, 0)
    found: list[tuple[int, int]] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4) as nl:  # NETLINK_SOCK_DIAG
        nl.settimeout(1.0)
        nl.sendto(head + request, (0, 0))
        while True:
            data = nl.recv(65536)
            at = 0
            while at + _NL_HEADER.size <= len(data):
                size, kind = _NL_HEADER.unpack_from(data, at)[:2]
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR or size < _NL_HEADER.size:
                    raise OSError(errno.EIO, "sock_diag refused the dump")
                msg = at + _NL_HEADER.size
                if size >= _NL_HEADER.size + _DIAG_INODE_AT + 4:
                    (port,) = struct.unpack_from("!H", data, msg + _DIAG_PORT_AT)
                    (inode,) = struct.unpack_from("=I", data, msg + _DIAG_INODE_AT)
                    if inode:
                        found.append((inode, port))
                at += (size + 3) & ~3
            if not data:
                return found
