"""The one verified stop (adapter): SIGTERM (+SIGCONT), then SIGKILL, identity re-checked each time.

Used by `tenure <family> stop`, `tenure.stop`, and a new holder stopping a dead holder's
surviving child. A process tenure started itself and has not reaped (`tenure run`'s child, the
conformance kit's command) is stopped through its `Popen` instead: its pid cannot be reused
before we reap it, so no identity check can refuse it (`stop_own_child`).
spec: docs/protocol/control.md#status-and-stop
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading

from tenure.adapters import platform
from tenure.adapters.procinfo import Mismatch, liveness, signal_verified
from tenure.adapters.waiting import wait_until
from tenure.core.hints import TYPE_CHECKING
from tenure.core.identity import ProcessIdentity
from tenure.core.lease import Liveness
from tenure.core.notify import Notify, quiet
from tenure.core.timing import HOLDER_STOP, POLL_S, StopPolicy
from tenure.errors import StopFailed, StopRefused

if TYPE_CHECKING:
    import subprocess


def gone_within(ident: ProcessIdentity, timeout: float) -> bool:
    """Wait until the process with this identity is gone (a zombie counts as gone)."""

    def gone() -> bool:
        return liveness(ident) not in (Liveness.ALIVE, Liveness.FOREIGN)

    return wait_until(gone, timeout, POLL_S) is not None


def stop_verified(
    ident: ProcessIdentity,
    label: str,
    *,
    marker: tuple[str, str | None] | None = None,
    policy: StopPolicy = HOLDER_STOP,
    notify: Notify = quiet,
) -> signal.Signals | None:
    """Stop the process `ident` names under `policy`: its first signal, SIGTERM unless the
    policy names another (+SIGCONT, so a stopped process can act on it), the grace period,
    then SIGKILL, each sent through `signal_verified`
    (location, start, uid, the test guard, and `marker` in its argv when given). The signal
    that ended it, or None if it was gone before any. Raises `StopRefused` when the process is
    not provably the one meant."""
    pid = ident.pid
    first = platform.signal_named(policy.first)
    for sig, wait in ((first, policy.grace_s), (platform.KILL, policy.kill_wait_s)):
        mismatch = signal_verified(ident, sig, marker)
        if mismatch is Mismatch.GONE:
            return None
        if mismatch is not None:
            raise StopRefused(f"not signalling {label} pid {pid}: {mismatch.value}")
        if sig is first and platform.CONT is not None:
            signal_verified(ident, platform.CONT, marker)
        notify(f"sent {sig.name} to {label} pid {pid}")
        if gone_within(ident, wait):
            return sig
    raise StopFailed(f"{label} pid {pid} still alive after SIGKILL")


def exited_within(child: subprocess.Popen[bytes], timeout: float) -> bool:
    """Wait for our own child to exit, told by its pidfd the moment it does (Popen.wait with a
    timeout polls with a backoff of up to 50 ms); True once it exited."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None and child.poll() is None:
        try:
            fd = pidfd_open(child.pid)
        except OSError:
            pass  # e.g. a kernel without pidfds: Popen's own wait below
        else:
            try:
                select.select([fd], [], [], timeout)
            finally:
                os.close(fd)
    import subprocess  # noqa: PLC0415  (only a process that has children loads it)

    try:
        child.wait(0 if pidfd_open is not None else timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def stop_own_child(child: subprocess.Popen[bytes], policy: StopPolicy) -> int:
    """Stop a child this process started and has not reaped: the policy's first signal
    (+SIGCONT), the grace period, SIGKILL. Returns its exit status."""
    if child.poll() is None:
        child.send_signal(platform.signal_named(policy.first))
        if platform.CONT is not None:
            child.send_signal(platform.CONT)
        if not exited_within(child, policy.grace_s):
            child.kill()
    return child.wait()


def stop_in_background(ident: ProcessIdentity, label: str, policy: StopPolicy) -> threading.Thread:
    """`stop_verified` in a daemon thread, saying on stderr what it did or why it did not."""

    def stop() -> None:
        try:
            if stop_verified(ident, label, policy=policy) is not None:
                print(f"tenure: stopped {label}, pid {ident.pid}", file=sys.stderr)
        except StopFailed as exc:
            print(f"tenure: {exc}", file=sys.stderr)

    thread = threading.Thread(target=stop, name="tenure-stop", daemon=True)
    thread.start()
    return thread
