"""Platform facts in one place (adapter), chosen once at import: the signals there are, the
user id, the open flags. Linux and macOS are POSIX; Windows has no SIGKILL (TerminateProcess
is the only hard stop), no SIGCONT or SIGHUP, no uids and none of the POSIX open flags.

`mypy --strict --platform {linux,darwin,win32}` checks every module against these facts.
spec: docs/protocol/index.md#platforms
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable

from tenure.core.values import frozen

WINDOWS = sys.platform == "win32"
LINUX = sys.platform.startswith("linux")
# Portable mode (TENURE_TEST_PORTABLE=1): behave as on a platform without Linux's own facts
# (/proc, prctl, pidfds, sock_diag, the host-wide socket table), so the generic fallbacks the
# other platforms rely on run, and are tested, here. spec: docs/protocol/index.md#platforms
PORTABLE = os.environ.get("TENURE_TEST_PORTABLE") == "1"
PROC_FACTS = LINUX and not PORTABLE  # /proc, prctl, pidfds and sock_diag may be used

if sys.platform == "win32":
    KILL = signal.SIGTERM  # TerminateProcess: Windows has no gentler or harder signal
    CONT: signal.Signals | None = None
    HANGUP: signal.Signals | None = None
    NOFOLLOW = 0
    NONBLOCK = 0
    CLOEXEC = getattr(os, "O_NOINHERIT", 0)
    DIRECTORY = 0

    def uid() -> int:
        """No uids on Windows: every process counts as this user's (ACLs guard the root)."""
        return 0

    def euid() -> int:
        """See `uid`."""
        return 0

    def set_blocking(_fd: int, _blocking: bool) -> None:
        """Regular files never block on Windows."""

else:
    KILL = signal.SIGKILL
    CONT = signal.SIGCONT
    HANGUP = signal.SIGHUP
    NOFOLLOW = os.O_NOFOLLOW
    NONBLOCK = os.O_NONBLOCK
    CLOEXEC = os.O_CLOEXEC
    DIRECTORY = os.O_DIRECTORY

    def uid() -> int:
        """This process's real user id."""
        return os.getuid()

    def euid() -> int:
        """This process's effective user id."""
        return os.geteuid()

    def set_blocking(fd: int, blocking: bool) -> None:
        """Set a descriptor (non-)blocking."""
        os.set_blocking(fd, blocking)


def _suspend_aware_clock() -> Callable[[], float]:
    """A monotonic clock that keeps counting while the machine sleeps, where there is one:
    Linux's CLOCK_BOOTTIME, macOS's CLOCK_MONOTONIC (Python's `time.monotonic` stops during
    sleep on both). Elsewhere `time.monotonic`."""
    if sys.platform == "linux":
        return lambda: time.clock_gettime(time.CLOCK_BOOTTIME)
    if sys.platform == "darwin":
        return lambda: time.clock_gettime(time.CLOCK_MONOTONIC)
    return time.monotonic


# A holder measures its own lease on this clock (lease.md#sleep): a laptop that slept past
# its TTL finds its lease gone when it wakes, however long `time.monotonic` says it slept.
lease_clock = _suspend_aware_clock()

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    s for s in (signal.SIGTERM, signal.SIGINT, HANGUP) if s is not None
)  # each asks a daemon to leave gracefully


def signal_named(name: str) -> signal.Signals:
    """The signal a stop policy names (`SIGINT`); SIGTERM where this platform lacks it."""
    found = getattr(signal, name, None)
    return found if isinstance(found, signal.Signals) else signal.SIGTERM


# Windows process-creation flags (winbase.h), named here so the choice is testable anywhere.
CREATE_NEW_PROCESS_GROUP = 0x00000200
DETACHED_PROCESS = 0x00000008


@frozen
class Detach:
    """How to start a child apart from its caller: Popen's `start_new_session` and
    `creationflags` (which must be 0 on POSIX)."""

    new_session: bool
    creationflags: int


def detach(system: str = sys.platform, *, daemon: bool = True) -> Detach:
    """Start a child out of reach of its caller's terminal: its own session on POSIX (no
    SIGHUP or Ctrl-C of the terminal reaches it); on Windows its own process group (no
    Ctrl+C event) and, for a daemon, no console at all. A `tenure run` child (`daemon=False`)
    keeps the wrapper's console, and its job (winjob.py)."""
    if system == "win32":
        return Detach(False, CREATE_NEW_PROCESS_GROUP | (DETACHED_PROCESS if daemon else 0))
    return Detach(True, 0)
