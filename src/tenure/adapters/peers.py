"""Sockets the kernel knows (adapter): who is on the other end of a loopback connection (the
peer socket's owner uid), and which sockets listen (for the doctor's pid lookup).

On Linux the kernel answers one exact question over sock_diag netlink ("the TCP socket bound
to 127.0.0.1:<peer port> and connected to 127.0.0.1:<server port>: whose is it?"), in
microseconds whatever the number of sockets; where that is not available the socket table
(`/proc/net/tcp`) is read; elsewhere the answer is None ("unknown"), which callers treat as
another user's. spec: docs/protocol/control.md#limits
"""

from __future__ import annotations

import errno
import socket
import struct
import sys
from collections.abc import Iterable, Iterator

from tenure.adapters import platform

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_LISTEN = 10
NO_COOKIE = 0xFFFFFFFF
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_REQUEST = struct.Struct("=BBBBI")  # inet_diag_req_v2: family, protocol, ext, pad, states
_UID_AT = _HEADER.size + 4 + 48 + 12  # inet_diag_msg: 4 bytes, sockid, expires/rq/wq, uid
_PORT_AT, _INODE_AT = 4, 4 + 48 + 12 + 4  # in inet_diag_msg: sockid.sport (big-endian), inode
LOOPBACK4 = socket.inet_pton(socket.AF_INET, "127.0.0.1") + bytes(12)
TABLE = "/proc/net/tcp"
MAX_TABLE_BYTES = 8 * 1024 * 1024


def _diag(peer_port: int, server_port: int) -> int | None:
    if sys.platform != "linux":
        return None  # sock_diag is Linux's; elsewhere the peer's uid is not known
    sockid = struct.pack("!HH16s16s", peer_port, server_port, LOOPBACK4, LOOPBACK4)
    sockid += struct.pack("=III", 0, NO_COOKIE, NO_COOKIE)
    body = _REQUEST.pack(socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
    head = _HEADER.pack(_HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(0.5)
        nl.sendto(head + body, (0, 0))
        reply = nl.recv(8192)
    if len(reply) < _UID_AT + 4:
        return None
    kind = _HEADER.unpack_from(reply)[1]
    if kind != SOCK_DIAG_BY_FAMILY:
        return None
    uid: int = struct.unpack_from("=I", reply, _UID_AT)[0]
    return uid


def _table_rows(*tables: str) -> Iterator[list[bytes]]:
    """The rows of /proc/net/tcp-style tables, split into fields (header skipped, at most
    MAX_TABLE_BYTES each; a table that cannot be read has no rows):
    sl local rem st tx:rx tr:when retr uid timeout inode ..."""
    for table in tables:
        try:
            with open(table, "rb") as fh:
                data = fh.read(MAX_TABLE_BYTES)
        except OSError:
            continue
        for raw in data.splitlines()[1:]:
            yield raw.split()


def _table(peer_port: int, server_port: int) -> int | None:
    want_local, want_remote = f":{peer_port:04X}".encode(), f":{server_port:04X}".encode()
    for parts in _table_rows(TABLE):
        if len(parts) > 7 and parts[1].endswith(want_local) and parts[2].endswith(want_remote):
            return int(parts[7]) if parts[7].isdigit() else None
    return None


def established_on(port: int, owners: Iterable[int] = ()) -> int:
    """How many established TCP connections have `port` as their local port (this network
    namespace). Without the socket table, only the connections of `owners` (the user's own
    processes, whose sockets psutil reads without privileges) are counted."""
    if not platform.PROC_FACTS:
        return _owned_established(port, owners)
    want = f":{port:04X}".encode()
    return sum(
        len(parts) > 3 and parts[1].endswith(want) and parts[3] == b"01"
        for parts in _table_rows(TABLE, TABLE + "6")
    )


def _owned_established(port: int, owners: Iterable[int]) -> int:
    import psutil  # noqa: PLC0415  (only without the socket table)

    count = 0
    for pid in owners:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        count += sum(
            1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
        )
    return count


def peer_uid(peer_port: int, server_port: int) -> int | None:
    """The uid owning the IPv4 loopback client socket (local port `peer_port`, remote
    `server_port`), or None when it cannot be told."""
    if not hasattr(socket, "AF_NETLINK") or not platform.PROC_FACTS:
        return None
    try:
        return _diag(peer_port, server_port)
    except OSError:
        return _table(peer_port, server_port)


def listening_sockets() -> list[tuple[int, int]]:
    """(inode, port) of every listening TCP socket, IPv4 then IPv6: asked of the kernel over
    sock_diag (only listeners come back, however many connections sit in TIME_WAIT), else
    read from /proc/net/tcp{,6}."""
    try:
        return [s for family in (socket.AF_INET, socket.AF_INET6) for s in _diag_listeners(family)]
    except OSError:
        pass
    return [
        (int(parts[9]), int(parts[1].rsplit(b":", 1)[1], 16))
        for parts in _table_rows(TABLE, TABLE + "6")
        if len(parts) > 9 and parts[3] == b"0A" and parts[9] != b"0"  # 0A: LISTEN
    ]


def _diag_listeners(family: int) -> list[tuple[int, int]]:
    """One sock_diag dump of the listening TCP sockets of `family` (this network namespace)."""
    if sys.platform != "linux":
        raise OSError(errno.ENOSYS, "sock_diag is Linux's")
    request = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN)
    request += bytes(48)  # an empty inet_diag_sockid: no filter but the state
    flags = NLM_F_REQUEST | NLM_F_DUMP
    head = _HEADER.pack(_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, flags, 1, 0)
    found: list[tuple[int, int]] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.sendto(head + request, (0, 0))
        while data := nl.recv(65536):
            at = 0
            while at + _HEADER.size <= len(data):
                size, kind = _HEADER.unpack_from(data, at)[:2]
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR or size < _HEADER.size:
                    raise OSError(errno.EIO, "sock_diag refused the dump")
                msg = at + _HEADER.size
                if size >= _HEADER.size + _INODE_AT + 4:
                    (port,) = struct.unpack_from("!H", data, msg + _PORT_AT)
                    (inode,) = struct.unpack_from("=I", data, msg + _INODE_AT)
                    if inode:
                        found.append((inode, port))
                at += (size + 3) & ~3
    return found
