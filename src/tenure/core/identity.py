"""The one process-identity rule (pure): where a process lives, and which start of a pid it is.

A process is known by (boot id, pid namespace, time namespace) — its *location* — plus its pid
and its start time counted in clock ticks since boot. Ticks since boot cannot be moved by a
wall-clock step; psutil's `create_time` (boot time + ticks) can, so it is only the fallback
where no tick count is known. spec: docs/protocol/lease.md#identity
"""

from __future__ import annotations

from tenure.core.values import frozen

# Two create_time readings of one process agree to well under this; psutil rounds to 10 ms.
CREATE_TIME_TOLERANCE_S = 0.05


def same_create_time(a: float, b: float) -> bool:
    """Whether two create_time readings name the same process start (the weaker fallback)."""
    return abs(a - b) <= CREATE_TIME_TOLERANCE_S


@frozen
class Location:
    """Where pids and start ticks mean something: one boot, one pid and one time namespace.

    `host` is shown to people and never decides: the initial pid namespace has the same inode
    on every host, so the boot id always takes part in the comparison.
    """

    boot_id: str
    pid_ns: int
    time_ns: int | None
    host: str = ""

    def same_place(self, other: Location) -> bool:
        """Whether a pid and a start tick read here mean the same process as there."""
        return (self.boot_id, self.pid_ns, self.time_ns) == (
            other.boot_id,
            other.pid_ns,
            other.time_ns,
        )

    def describe(self) -> str:
        """A short human description: host, boot and pid namespace."""
        host = self.host or "?"
        return f"host {host}, boot {self.boot_id[:8]}, pid namespace {self.pid_ns}"


@frozen
class ProcessIdentity:
    """One process start: pid + start ticks (or create_time where ticks are unknown) + where."""

    pid: int
    create_time: float
    start_ticks: int | None = None
    where: Location | None = None


def is_foreign(recorded: Location | None, here: Location | None) -> bool:
    """Whether a recorded process lives where this reader cannot see it.

    A record without a location is judged by the pid as before (never foreign); a reader that
    cannot say where it is itself (no /proc of its own) cannot prove it is the same place, so
    every located holder is foreign to it (fail closed).
    """
    if recorded is None:
        return False
    return here is None or not recorded.same_place(here)


def same_start(recorded: ProcessIdentity, observed: ProcessIdentity) -> bool:
    """The one comparison: the same pid started at the same moment.

    Start ticks decide when both sides have them; create_time (which a clock step moves) only
    when one side has none.
    """
    if recorded.pid != observed.pid:
        return False
    if recorded.start_ticks is not None and observed.start_ticks is not None:
        return recorded.start_ticks == observed.start_ticks
    return same_create_time(recorded.create_time, observed.create_time)
