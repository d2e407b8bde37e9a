"""Port scanner (adapter): concurrent connect gate, then a bounded health probe on listeners.

One socket-table lookup per scan maps port → pid; a wedged listener costs one health timeout
because every probe runs at once. spec: docs/protocol/classification.md#scanning
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable

from tenure.adapters import peers, platform, procfs
from tenure.adapters.http import health
from tenure.adapters.ports import MAX_SOCKETS, connect_gate
from tenure.adapters.procinfo import read_process, tree_cookies
from tenure.core.hints import TYPE_CHECKING
from tenure.core.values import frozen
from tenure.core.verdicts import ListenerFacts

if TYPE_CHECKING:
    from typing import Any

PidLookup = Callable[[], dict[int, int]]


def listening_pids() -> dict[int, int]:
    """port → pid for every listening TCP socket on this host (one socket-table read).

    Where the host-wide table needs privileges (macOS without root), or in portable mode, the
    user's own processes are asked one by one instead: their sockets need no privilege, and
    they are the only ones tenure may act on. Others' listeners then have no pid (`no_pid`).
    """
    if platform.PROC_FACTS:
        # As psutil's `net_connections` pairs them: the kernel's listeners, then their owners.
        sockets = peers.listening_sockets()  # (inode, port)
        owner = procfs.socket_owners({inode for inode, _port in sockets})
        out: dict[int, int] = {}
        for inode, port in sockets:
            if inode in owner:
                out.setdefault(port, owner[inode])
        return out
    import psutil  # noqa: PLC0415  (~15 ms and ~4 MB: only without /proc)

    if platform.WINDOWS:
        try:
            return _listeners(psutil.net_connections(kind="tcp"))
        except psutil.AccessDenied:
            pass
    return own_listening_pids()


def own_listening_pids() -> dict[int, int]:
    """port → pid for the listening TCP sockets of this user's own processes."""
    import psutil  # noqa: PLC0415

    out: dict[int, int] = {}
    me = platform.uid()
    for proc in psutil.process_iter():
        try:
            if sys.platform != "win32" and proc.uids().real != me:
                continue
            found = _listeners(proc.net_connections(kind="tcp"), proc.pid)
        except psutil.Error:
            continue
        for port, pid in found.items():
            out.setdefault(port, pid)
    return out


def _listeners(conns: Iterable[Any], pid: int | None = None) -> dict[int, int]:
    import psutil  # noqa: PLC0415

    out: dict[int, int] = {}
    for conn in conns:
        owner = getattr(conn, "pid", pid)
        if conn.status == psutil.CONN_LISTEN and owner is not None and conn.laddr:
            out.setdefault(conn.laddr.port, owner)
    return out


@frozen
class ScanResult:
    """Facts for every listener found, plus how long the scan took."""

    listeners: list[ListenerFacts]
    elapsed_s: float


def scan(
    ports: range, pid_lookup: PidLookup = listening_pids, ask: Callable[[int], bool] | None = None
) -> ScanResult:
    """Gather facts for every listener on `ports` (loopback only). `GET /api/health` goes only
    to the ports `ask` allows (default: all); the others get nothing but the connect."""
    t0 = time.monotonic()
    accepting, stalled = connect_gate(ports)
    live = sorted(accepting + stalled)  # a full accept queue hides no listener (never asked)
    if not live:
        return ScanResult([], time.monotonic() - t0)
    pids = pid_lookup()
    asked = [p for p in accepting if ask is None or ask(p)]
    found = dict(zip(asked, _at_once(health, asked, MAX_SOCKETS), strict=True))
    answers = [found.get(p) for p in live]
    listeners = []
    for port, doc in zip(live, answers, strict=True):
        pid = pids.get(port)
        proc = read_process(pid) if pid is not None else None
        listeners.append(
            ListenerFacts(
                port=port,
                pid=pid,
                uid=None if proc is None else proc.uid,
                create_time=None if proc is None or proc.create_time < 0 else proc.create_time,
                cmdline=() if proc is None else proc.cmdline,
                health=doc,
                start_ticks=None if proc is None else proc.start_ticks,
                tree_cookies=tree_cookies(proc.pid) if proc and proc.uid == platform.uid() else (),
                pid_ns=procfs.pid_namespace(pid)
                if pid is not None and platform.PROC_FACTS
                else None,
            )
        )
    return ScanResult(listeners, time.monotonic() - t0)


def _at_once(fn: Callable[[int], Any], items: list[int], width: int) -> list[Any]:
    """`fn` over `items`, at most `width` at a time, every probe started at once (a wedged
    listener costs one timeout, not one per listener); in order. (Not concurrent.futures:
    it costs the daemon's startup reaper ~4 ms and logging.)"""
    results: list[Any] = [None] * len(items)
    lanes = max(1, min(width, len(items)))

    def lane(first: int) -> None:
        for i in range(first, len(items), lanes):
            results[i] = fn(items[i])

    threads = [threading.Thread(target=lane, args=(i,), daemon=True) for i in range(1, lanes)]
    for thread in threads:
        thread.start()
    lane(0)
    for thread in threads:
        thread.join()
    return results
