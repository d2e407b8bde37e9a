"""Process facts from psutil (adapter): identity, liveness, ownership, argv markers."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from tenure.machine import Liveness

# Two create_time readings of one process agree to well under this; psutil rounds to 10 ms.
CREATE_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What psutil says about one live process. `cmdline` may be empty when access is denied."""

    pid: int
    create_time: float
    uid: int | None
    cmdline: tuple[str, ...]
    zombie: bool


def read_process(pid: int) -> ProcessFacts | None:
    """Facts for `pid`, or None when there is no such process (or it is a zombie)."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            status = proc.status()
            create_time = proc.create_time()
            try:
                uid: int | None = proc.uids().real
            except psutil.AccessDenied:
                uid = None
            try:
                cmdline = tuple(proc.cmdline())
            except (psutil.AccessDenied, psutil.ZombieProcess):
                cmdline = ()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        # Exists but cannot be inspected: report as alive with unknown identity (fail closed).
        return ProcessFacts(pid=pid, create_time=-1.0, uid=None, cmdline=(), zombie=False)
    if status == psutil.STATUS_ZOMBIE:
        return None
    return ProcessFacts(pid=pid, create_time=create_time, uid=uid, cmdline=cmdline, zombie=False)


def same_create_time(a: float, b: float) -> bool:
    """Whether two create_time readings name the same process start."""
    return abs(a - b) <= CREATE_TIME_TOLERANCE_S


def liveness(pid: int, create_time: float) -> Liveness:
    """Whether the recorded process still runs; fails closed (unknown identity counts as alive)."""
    facts = read_process(pid)
    if facts is None:
        return Liveness.DEAD
    if facts.create_time < 0:
        return Liveness.ALIVE
    return Liveness.ALIVE if same_create_time(facts.create_time, create_time) else Liveness.REUSED


def own_identity() -> tuple[int, float]:
    """This process's pid and create_time."""
    pid = os.getpid()
    return pid, psutil.Process(pid).create_time()
