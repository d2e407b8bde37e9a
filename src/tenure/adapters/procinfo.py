"""Process facts from psutil (adapter): identity, liveness, ownership, argv markers."""

from __future__ import annotations

import enum
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from tenure.adapters import guard, platform
from tenure.adapters.location import here
from tenure.core.argv import argv_option
from tenure.core.identity import ProcessIdentity, is_foreign, same_start
from tenure.core.lease import Liveness
from tenure.core.record import LeaseRecord, LeaseState


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What psutil says about one live process. `cmdline` may be empty when access is denied."""

    pid: int
    create_time: float
    uid: int | None
    cmdline: tuple[str, ...]
    start_ticks: int | None = None

    @property
    def ident(self) -> ProcessIdentity:
        """The identity read now, here."""
        return ProcessIdentity(self.pid, self.create_time, self.start_ticks, here())


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux, field 22 of /proc/pid/stat).

    None where /proc is not this process's own or has no such file: the caller then falls back
    to psutil's create_time, which a wall-clock step moves.
    """
    if here() is None:
        return None
    found = parent_and_start(pid)
    return None if found is None else found[1]


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


TREE_COOKIE_ENV = "TENURE_TREE"  # the cookie `tenure run` gives its tree (control.md#run)


def tree_cookies(pid: int) -> tuple[str, ...]:
    """The tree cookies `pid` carries in its environment (`TENURE_TREE=a,b`: nested trees);
    () when it carries none or its environment cannot be read (another user's process)."""
    if not platform.PROC_FACTS:
        try:  # psutil reads the user's own processes' environments on macOS and Windows too
            value = psutil.Process(pid).environ().get(TREE_COOKIE_ENV, "")
        except psutil.Error:
            return ()
        return _cookies(value)
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            env = fh.read(1 << 20)
    except OSError:
        return ()
    prefix = f"{TREE_COOKIE_ENV}=".encode()
    for var in env.split(b"\0"):
        if var.startswith(prefix):
            return _cookies(var[len(prefix) :].decode("ascii", "replace"))
    return ()


def _cookies(value: str) -> tuple[str, ...]:
    return tuple(c for c in value.split(",")[:16] if c)


def read_process(pid: int) -> ProcessFacts | None:
    """Facts for `pid`, or None when there is no such process (or it is a zombie)."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            status = proc.status()
            create_time = proc.create_time()
            uid: int | None = platform.uid()  # Windows: no uids (platform.uid)
            if sys.platform != "win32":
                try:
                    uid = proc.uids().real
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
        return ProcessFacts(pid=pid, create_time=-1.0, uid=None, cmdline=())
    if status == psutil.STATUS_ZOMBIE:
        return None
    ticks = start_ticks(pid)
    return ProcessFacts(pid, create_time, uid, cmdline, start_ticks=ticks)


def liveness(ident: ProcessIdentity) -> Liveness:
    """Whether the recorded process still runs; fails closed (unknown identity counts as alive).

    A process recorded in another boot or namespace is FOREIGN: its pid means nothing here.
    """
    if is_foreign(ident.where, here()):
        return Liveness.FOREIGN
    facts = read_process(ident.pid)
    if facts is None:
        return Liveness.DEAD
    if facts.create_time < 0:
        return Liveness.ALIVE
    return Liveness.ALIVE if same_start(ident, facts.ident) else Liveness.REUSED


def holder_liveness(rec: LeaseRecord) -> Liveness | None:
    """Whether a held record's holder still runs; None for a released record."""
    if rec.state is not LeaseState.HELD:
        return None
    return liveness(rec.holder.ident)


def child_identity(pid: int) -> ProcessIdentity | None:
    """The identity of a child this process has not reaped yet — also when it already exited
    (a zombie keeps its pid and start until reaped)."""
    try:
        create_time = psutil.Process(pid).create_time()
    except psutil.Error:
        return None
    return ProcessIdentity(pid, create_time, start_ticks(pid), here())


def own_identity() -> ProcessIdentity:
    """This process's identity, with where it lives."""
    pid = os.getpid()
    return ProcessIdentity(pid, psutil.Process(pid).create_time(), start_ticks(pid), here())


class Mismatch(enum.StrEnum):
    """Why a process is not (provably) the one a verdict was made about."""

    GONE = "gone"
    ACCESS_DENIED = "access_denied"
    IDENTITY_CHANGED = "identity_changed"
    OTHER_USER = "other_user"
    FOREIGN = "foreign"  # recorded in another boot or namespace: never signalled from here
    TEST_GUARD = "test_guard"  # under a test, not a process the test started


def check_identity(
    ident: ProcessIdentity, marker: tuple[str, str | None] | None
) -> Mismatch | None:
    """Re-read the process and compare: location, start, our uid, and argv marker `--name=value`.

    `marker` is (name, expected value); an expected None means the argv must carry no such
    marker. None when every check passes: only then may a signal follow, at once.
    """
    if is_foreign(ident.where, here()):
        return Mismatch.FOREIGN
    facts = read_process(ident.pid)
    if facts is None:
        return Mismatch.GONE
    if facts.create_time < 0:
        return Mismatch.ACCESS_DENIED
    if not same_start(ident, facts.ident):
        return Mismatch.IDENTITY_CHANGED
    if facts.uid != platform.uid():
        return Mismatch.OTHER_USER
    if not guard.allows(facts.ident):
        return Mismatch.TEST_GUARD
    if marker is not None and argv_option(facts.cmdline, marker[0]) != marker[1]:
        return Mismatch.IDENTITY_CHANGED
    return None


def signal_verified(
    ident: ProcessIdentity,
    sig: signal.Signals,
    marker: tuple[str, str | None] | None = None,
    proof: Callable[[int], bool] | None = None,
) -> Mismatch | None:
    """Send `sig` only to the process `ident` names; None when sent, else why not. `proof`,
    when given, must also hold for the pid (a tree member's descent or cookie).

    Where the platform has pidfds the order is open → verify → signal through the pidfd: a pid
    recycled after the check can never receive it. Elsewhere: verify, then kill at once.
    """
    fd: int | None = None
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None and platform.PROC_FACTS and not is_foreign(ident.where, here()):
        try:
            fd = pidfd_open(ident.pid)
        except ProcessLookupError:
            return Mismatch.GONE
        except OSError:
            fd = None  # e.g. a kernel without pidfds: the weaker order below
    try:
        mismatch = check_identity(ident, marker)
        if mismatch is None and proof is not None and not proof(ident.pid):
            mismatch = Mismatch.IDENTITY_CHANGED
        if mismatch is not None:
            return mismatch
        try:
            if fd is not None and sys.platform == "linux":
                signal.pidfd_send_signal(fd, sig)
            else:
                os.kill(ident.pid, sig)
        except ProcessLookupError:
            return Mismatch.GONE
        except PermissionError:
            return Mismatch.ACCESS_DENIED
        return None
    finally:
        if fd is not None:
            os.close(fd)


def lock_holder_pid(lock_path: Path) -> int | None:
    """The pid holding an flock on `lock_path`, from /proc/locks (Linux).

    Elsewhere (macOS, Windows) there is no /proc/locks: the answer is None ("holder unknown"),
    and callers say so instead of naming a pid.
    """
    return proc_locks_holder(lock_path) if platform.PROC_FACTS else None


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


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether `pid` is a descendant of `ancestor` (a launcher that forked instead of exec-ing)."""
    try:
        return any(k.pid == pid for k in psutil.Process(ancestor).children(recursive=True))
    except psutil.Error:
        return False


def argv_and_environ(pid: int) -> tuple[list[str], dict[str, str]] | None:
    """What another process of ours shows of itself (argv and environment), or None."""
    try:
        proc = psutil.Process(pid)
        return proc.cmdline(), proc.environ()
    except psutil.Error:
        return None
