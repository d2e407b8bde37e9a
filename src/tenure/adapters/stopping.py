"""The one verified stop (adapter): SIGTERM (+SIGCONT), then SIGKILL, identity re-checked each time.

Used by `tenure <family> stop`, `tenure.stop`, `tenure run` for its child, and a new holder
stopping a dead holder's surviving child. spec: docs/protocol/control.md#status-and-stop
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from tenure.adapters.procinfo import Mismatch, check_identity, liveness
from tenure.adapters.waiting import wait_until
from tenure.core.lease import Liveness
from tenure.core.notify import Notify, quiet
from tenure.errors import DaemonStartError

POLL_S = 0.01


class StopRefused(DaemonStartError):
    """The process is not provably the one we mean to stop; no signal was sent."""


def gone_within(pid: int, create_time: float, timeout: float) -> bool:
    """Wait until the process with this identity is gone (a zombie counts as gone)."""

    def gone() -> bool:
        return liveness(pid, create_time) is not Liveness.ALIVE

    return wait_until(gone, timeout, POLL_S) is not None


def stop_verified(
    pid: int,
    create_time: float,
    label: str,
    *,
    marker: tuple[str, str | None] | None = None,
    wait_s: float = 10.0,
    notify: Notify = quiet,
) -> signal.Signals | None:
    """Stop `pid`: SIGTERM (+SIGCONT, so a stopped process can act on it), then SIGKILL, each
    right after re-checking its identity (pid, start time, uid, the test guard, and `marker`
    in its argv when given). The signal that ended it, or None if it was gone before any.
    Raises `StopRefused` when the process is not provably the one meant."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        mismatch = check_identity(pid, create_time, marker)
        if mismatch is Mismatch.GONE:
            return None
        if mismatch is not None:
            raise StopRefused(f"not signalling {label} pid {pid}: {mismatch.value}")
        os.kill(pid, sig)
        if sig is signal.SIGTERM:
            os.kill(pid, signal.SIGCONT)
        notify(f"sent {sig.name} to {label} pid {pid}")
        if gone_within(pid, create_time, wait_s):
            return sig
    raise DaemonStartError(f"{label} pid {pid} still alive after SIGKILL")


def stop_in_background(pid: int, create_time: float, label: str) -> threading.Thread:
    """`stop_verified` in a daemon thread, saying on stderr what it did or why it did not."""

    def stop() -> None:
        try:
            if stop_verified(pid, create_time, label) is not None:
                print(f"tenure: stopped {label}, pid {pid}", file=sys.stderr)
        except DaemonStartError as exc:
            print(f"tenure: {exc}", file=sys.stderr)

    thread = threading.Thread(target=stop, name="tenure-stop", daemon=True)
    thread.start()
    return thread
