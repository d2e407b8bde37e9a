"""Process facts from psutil (adapter): identity, liveness, ownership, argv markers."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from tenure.adapters import guard
from tenure.core.argv import argv_option
from tenure.core.identity import same_create_time
from tenure.core.lease import Liveness
from tenure.core.record import LeaseRecord, LeaseState


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


def liveness(pid: int, create_time: float) -> Liveness:
    """Whether the recorded process still runs; fails closed (unknown identity counts as alive)."""
    facts = read_process(pid)
    if facts is None:
        return Liveness.DEAD
    if facts.create_time < 0:
        return Liveness.ALIVE
    return Liveness.ALIVE if same_create_time(facts.create_time, create_time) else Liveness.REUSED


def holder_liveness(rec: LeaseRecord) -> Liveness | None:
    """Whether a held record's holder still runs; None for a released record."""
    if rec.state is not LeaseState.HELD:
        return None
    return liveness(rec.holder.pid, rec.holder.create_time)


def own_identity() -> tuple[int, float]:
    """This process's pid and create_time."""
    pid = os.getpid()
    return pid, psutil.Process(pid).create_time()


class Mismatch(enum.StrEnum):
    """Why a process is not (provably) the one a verdict was made about."""

    GONE = "gone"
    ACCESS_DENIED = "access_denied"
    IDENTITY_CHANGED = "identity_changed"
    OTHER_USER = "other_user"
    TEST_GUARD = "test_guard"  # under a test, not a process the test started


def check_identity(
    pid: int, create_time: float | None, marker: tuple[str, str | None] | None
) -> Mismatch | None:
    """Re-read `pid` and compare: start time, our uid, and argv marker `--name=value`.

    `marker` is (name, expected value); an expected None means the argv must carry no such
    marker. None when every check passes: only then may a signal follow, at once.
    """
    facts = read_process(pid)
    if facts is None:
        return Mismatch.GONE
    if facts.create_time < 0:
        return Mismatch.ACCESS_DENIED
    if create_time is None or not same_create_time(facts.create_time, create_time):
        return Mismatch.IDENTITY_CHANGED
    if facts.uid != os.getuid():
        return Mismatch.OTHER_USER
    if not guard.allows(pid, facts.create_time):
        return Mismatch.TEST_GUARD
    if marker is not None and argv_option(facts.cmdline, marker[0]) != marker[1]:
        return Mismatch.IDENTITY_CHANGED
    return None


def lock_holder_pid(lock_path: Path) -> int | None:
    """The pid holding an flock on `lock_path`, from /proc/locks (Linux).

    Elsewhere (macOS, Windows) there is no /proc/locks: the answer is None ("holder unknown"),
    and callers say so instead of naming a pid.
    """
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
