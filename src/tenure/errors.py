"""Every error tenure raises; each subclasses a builtin so callers can catch broadly."""

from __future__ import annotations

from pathlib import Path


class TenureError(Exception):
    """Base of tenure's own errors."""


class ConfigError(TenureError, ValueError):
    """A configuration value (an environment variable, an option) is malformed or out of range.

    The message names the variable and the accepted range.
    """


class RootError(TenureError, PermissionError):
    """The daemon root is unsafe or unusable; the message names the path and the problem."""

    def __init__(self, path: Path, problem: str, kind: str = "other") -> None:
        super().__init__(f"daemon root {path}: {problem}")
        self.path = path
        self.problem = problem
        # missing / symlink / not_directory / foreign_owner / writable / uncreatable /
        # unwritable / other: what a remediation needs to know.
        self.kind = kind


class LockTimeout(TenureError, TimeoutError):
    """A lease lock could not be taken within its bound."""

    def __init__(self, lock_path: Path, timeout_s: float, holder_pid: int | None) -> None:
        who = f"held by pid {holder_pid}" if holder_pid is not None else "holder unknown"
        super().__init__(f"lock {lock_path} not acquired within {timeout_s:.1f}s ({who})")
        self.lock_path = lock_path
        self.holder_pid = holder_pid


class LeaseHeld(TenureError, RuntimeError):
    """Another live process holds the lease."""

    def __init__(
        self,
        family: str,
        pid: int,
        version: str,
        port: int | None,
        epoch: int,
        *,
        lives: str | None = None,
        expiry: str | None = None,
    ) -> None:
        where = f"on port {port}" if port is not None else "without a control port"
        text = f"{family} lease is held by pid {pid}, version {version}, {where}, at epoch {epoch}"
        if lives is not None:
            text += f"; it lives elsewhere ({lives}) and is never signalled from here"
        if expiry is not None:
            text += f"; {expiry}"
        super().__init__(text)
        self.lives = lives  # where a foreign holder lives (lease.md#foreign), else None
        self.family = family
        self.pid = pid
        self.version = version
        self.port = port
        self.epoch = epoch


class ScanIncomplete(TenureError, OSError):
    """A port scan could not open its sockets (too many open files): nothing was concluded."""


class LeaseUnreadable(TenureError, ValueError):
    """The lease record exists but cannot be parsed."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"lease record {path} is unreadable: {reason}")
        self.path = path
        self.reason = reason


class LeaseLost(TenureError, RuntimeError):
    """This process no longer holds the lease it thought it held."""


class Retiring(TenureError, RuntimeError):
    """The daemon is retiring and accepts no new work."""


class DaemonStartError(TenureError, RuntimeError):
    """A daemon did not become healthy; the message carries the log tail."""


class StopFailed(TenureError, RuntimeError):
    """A stop could not end the process it meant (it outlived SIGKILL, or no way to ask it)."""


class StopRefused(StopFailed):
    """The process is not provably the one meant (or lives elsewhere): no signal was sent."""


class NotRegularFile(OSError, TenureError):
    """A path in the root is a FIFO, device, socket or directory where a file belongs."""
