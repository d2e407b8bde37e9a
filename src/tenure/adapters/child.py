"""Starting `tenure run`'s child (adapter): its own session, the parent-death signal where
there is one, the Windows job, and the watchdog where neither exists. spec: control.md#run"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
from collections.abc import Sequence

from tenure.adapters import platform
from tenure.adapters.watchdog import DONE
from tenure.core.record import StopSpec
from tenure.core.values import frozen

PR_SET_PDEATHSIG = 1


def _load_prctl() -> object | None:
    # Resolved once, in the parent: the child runs between fork and exec, where loading a
    # library (dlopen) could wait for a lock another thread of the wrapper held at fork time.
    if not platform.PROC_FACTS:  # prctl is Linux's (and off in portable mode)
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_JOB: int | None = None  # Windows: the kill-on-close job the wrapper and its tree live in
_WRAPPER_PID = os.getpid()  # the parent the child checks it still has (set again before Popen)


def _pdeathsig() -> None:  # pragma: no cover - runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, platform.KILL)  # type: ignore[operator]
        # The wrapper may have died between fork and prctl: no signal would come then.
        if os.getppid() != _WRAPPER_PID:
            os.kill(os.getpid(), platform.KILL)


@frozen
class Watchdog:
    """The watchdog process and the write end of the pipe only the wrapper holds."""

    proc: subprocess.Popen[bytes]
    write_end: int

    def stand_down(self, wait_s: float) -> None:
        """The wrapper ended the tree itself: the watchdog exits without acting."""
        with contextlib.suppress(OSError):
            os.write(self.write_end, DONE)
        os.close(self.write_end)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(wait_s)


def _start_watchdog(cookie: str, stop: StopSpec | None) -> Watchdog | None:
    """The watchdog (adapters/watchdog.py), told the tree's stop policy; None if it could not
    start (the next holder still ends a dead wrapper's tree by its cookie)."""
    read_end, write_end = os.pipe()  # not inheritable: the child never holds the write end
    policy = [] if stop is None else [stop.signal, repr(stop.grace_s)]
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tenure.adapters.watchdog", cookie, *policy],
            stdin=read_end,
            start_new_session=True,  # a Ctrl-C for the wrapper's group is the wrapper's to handle
        )
    except OSError:
        os.close(write_end)
        return None
    finally:
        os.close(read_end)
    return Watchdog(proc, write_end)


def start_child(
    argv: Sequence[str],
    env: dict[str, str],
    cookie: str,
    stop: StopSpec | None = None,
    *,
    pass_fds: tuple[int, ...] = (),
) -> tuple[subprocess.Popen[bytes], Watchdog | None]:
    """Start the governed child in its own session and group, tied to the wrapper's life by
    the parent-death signal (Linux), a kill-on-close job (Windows) or a watchdog (elsewhere);
    `pass_fds` are inherited (the listening socket of `--socket`)."""
    global _WRAPPER_PID, _JOB  # noqa: PLW0603  (read by _pdeathsig in the forked child)
    _WRAPPER_PID = os.getpid()
    pdeathsig = _pdeathsig if _PRCTL else None  # prctl only, see _load_prctl
    if sys.platform == "win32":
        from tenure.adapters.winjob import Kernel32Jobs, contain_self  # noqa: PLC0415

        if _JOB is None:  # open for the wrapper's life: closing it ends the tree
            _JOB = contain_self(Kernel32Jobs())
    watch = _start_watchdog(cookie, stop) if pdeathsig is None and sys.platform != "win32" else None
    apart = platform.detach(daemon=False)
    child = subprocess.Popen(
        list(argv),
        env=env,
        start_new_session=apart.new_session,
        creationflags=apart.creationflags,
        pass_fds=pass_fds,
        preexec_fn=pdeathsig,  # noqa: PLW1509  (one prctl, no lock: see _load_prctl)
    )
    return child, watch
