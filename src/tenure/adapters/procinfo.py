"""Process facts (adapter): identity, liveness, ownership, argv markers — from /proc on Linux
(the same numbers psutil gives, without its ~15 ms import), from psutil elsewhere."""

from __future__ import annotations

import enum
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from tenure.adapters import guard, platform, procfs
from tenure.adapters.location import here
from tenure.adapters.procfs import ProcessFacts
from tenure.core.argv import argv_option
from tenure.core.identity import ProcessIdentity, is_foreign, same_start
from tenure.core.lease import Liveness
from tenure.core.record import LeaseRecord, LeaseState


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux, field 22 of /proc/pid/stat).

    None where /proc is not this process's own or has no such file: the caller then falls back
    to psutil's create_time, which a wall-clock step moves.
    """
    if here() is None:
        return None
    found = procfs.parent_and_start(pid)
    return None if found is None else found[1]


TREE_COOKIE_ENV = "TENURE_TREE"  # the cookie `tenure run` gives its tree (control.md#run)


def tree_cookies(pid: int) -> tuple[str, ...]:
    """The tree cookies `pid` carries in its environment (`TENURE_TREE=a,b`: nested trees);
    () when it carries none or its environment cannot be read (another user's process)."""
    if platform.PROC_FACTS:
        return _cookies(procfs.environ_value(pid, TREE_COOKIE_ENV) or "")
    import psutil  # noqa: PLC0415

    try:  # psutil reads the user's own processes' environments on macOS and Windows too
        value = psutil.Process(pid).environ().get(TREE_COOKIE_ENV, "")
    except psutil.Error:
        return ()
    return _cookies(value)


def _cookies(value: str) -> tuple[str, ...]:
    return tuple(c for c in value.split(",")[:16] if c)


def read_process(pid: int) -> ProcessFacts | None:
    """Facts for `pid`, or None when there is no such process (or it is a zombie)."""
    if platform.PROC_FACTS and here() is not None:
        return procfs.read(pid)
    import psutil  # noqa: PLC0415  (~15 ms and ~4 MB: only where /proc cannot answer)

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
    return ProcessFacts(pid, create_time, uid, cmdline)  # no /proc here: no start ticks


def liveness(ident: ProcessIdentity) -> Liveness:
    """Whether the recorded process still runs; fails closed (unknown identity counts as alive).

    A process recorded in another boot or namespace is FOREIGN: its pid means nothing here.
    """
    where = here()
    if is_foreign(ident.where, where):
        return Liveness.FOREIGN
    if platform.PROC_FACTS and where is not None:
        # Only the start is compared: one /proc read, not the argv and uid `read_process` adds.
        try:
            found = procfs.stat(ident.pid)
            if found is None or found[0] == b"Z":
                return Liveness.DEAD
            # Start ticks decide when the record has them: no need to read the boot time.
            started = -1.0 if ident.start_ticks is not None else procfs.create_time(found[1])
            now = ProcessIdentity(ident.pid, started, found[1], where)
        except OSError:
            return Liveness.ALIVE  # exists but cannot be read: fail closed
        return Liveness.ALIVE if same_start(ident, now) else Liveness.REUSED
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
    return _identity(pid)


def own_identity() -> ProcessIdentity:
    """This process's identity, with where it lives."""
    ident = _identity(os.getpid())
    assert ident is not None  # this process exists
    return ident


def _identity(pid: int) -> ProcessIdentity | None:
    """`pid`'s identity (zombies included): one read of /proc/pid/stat where /proc answers,
    psutil's create_time (no start ticks) elsewhere."""
    where = here()
    if platform.PROC_FACTS and where is not None:
        try:
            found = procfs.stat(pid)
            if found is None:
                return None
            return ProcessIdentity(pid, procfs.create_time(found[1]), found[1], where)
        except OSError:
            pass  # e.g. hidepid: ask psutil, which may know better
    import psutil  # noqa: PLC0415

    try:
        return ProcessIdentity(pid, float(psutil.Process(pid).create_time()), None, where)
    except psutil.Error:
        return None


class Mismatch(enum.StrEnum):
    """Why a process is not (provably) the one a verdict was made about."""

    GONE = "gone"
    ACCESS_DENIED = "access_denied"
    IDENTITY_CHANGED = "identity_changed"
    OTHER_USER = "other_user"
    FOREIGN = "foreign"  # recorded in another boot or namespace: never signalled from here
    TEST_GUARD = "test_guard"  # under a test, not a process the test started


def check_identity(
    ident: ProcessIdentity, marker: tuple[str, str | None] | None, *, any_uid: bool = False
) -> Mismatch | None:
    """Re-read the process and compare: location, start, our uid, and argv marker `--name=value`.

    `marker` is (name, expected value); an expected None means the argv must carry no such
    marker. `any_uid` drops the uid check for a process proven otherwise (a tree member, by
    descent or cookie). None when every check passes: only then may a signal follow, at once.
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
    if facts.uid != platform.uid() and not any_uid:
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
    *,
    any_uid: bool = False,
) -> Mismatch | None:
    """Send `sig` only to the process `ident` names; None when sent, else why not. `proof`,
    when given, must also hold for the pid (a tree member's descent or cookie); with it,
    `any_uid` lets a member of another uid be signalled where the kernel permits it.

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
        mismatch = check_identity(ident, marker, any_uid=any_uid and proof is not None)
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
    return procfs.proc_locks_holder(lock_path) if platform.PROC_FACTS else None


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether `pid` is a descendant of `ancestor` (a launcher that forked instead of exec-ing)."""
    import psutil  # noqa: PLC0415

    try:
        return any(k.pid == pid for k in psutil.Process(ancestor).children(recursive=True))
    except psutil.Error:
        return False


def argv_and_environ(pid: int) -> tuple[list[str], dict[str, str]] | None:
    """What another process of ours shows of itself (argv and environment), or None."""
    import psutil  # noqa: PLC0415

    try:
        proc = psutil.Process(pid)
        return proc.cmdline(), proc.environ()
    except psutil.Error:
        return None
