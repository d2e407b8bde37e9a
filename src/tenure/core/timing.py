"""Lease timing and its validation (pure): TTL, heartbeat, idle, drain.

The environment comes in as a mapping; adapters/config.py passes `os.environ`.
spec: docs/protocol/lease.md#timing
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tenure.core.record import StopSpec
from tenure.core.values import frozen, replace
from tenure.errors import ConfigError

DEFAULT_TTL_S = 15.0
DEFAULT_HEARTBEAT_S = 5.0
DEFAULT_IDLE_S = 900.0  # same as the legacy 3.2.4 daemons' idle retirement
DRAIN_TIMEOUT_S = 10.0  # bound on waiting for in-flight work when retiring
PRUNE_RELEASED_AFTER_S = 30 * 86_400.0  # a record released this long ago is removed (lease.md)

TTL_MIN_S, TTL_MAX_S = 1.0, 86_400.0
HEARTBEAT_MIN_S = 0.05
IDLE_MAX_S = 366 * 86_400.0  # idle 0 means "never retire for idleness"

TTL_ENV = "TENURE_LEASE_TTL"
HEARTBEAT_ENV = "TENURE_HEARTBEAT"
IDLE_ENV = "TENURE_IDLE_SECONDS"


def _check(name: str, value: float, lo: float, hi: float, what: str) -> float:
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"{name}={value!r} is out of range: {what}")
    return value


def _env_seconds(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw[:40]!r} is not a number of seconds") from None


@frozen
class Timing:
    """Lease timing. TTL in [1 s, 1 day]; heartbeat in [50 ms, TTL/2]; idle 0 = never."""

    ttl_s: float = DEFAULT_TTL_S
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    idle_s: float = DEFAULT_IDLE_S
    drain_s: float = DRAIN_TIMEOUT_S

    def __post_init__(self) -> None:
        _check(TTL_ENV, self.ttl_s, TTL_MIN_S, TTL_MAX_S, "the lease TTL is 1 to 86400 seconds")
        _check(
            HEARTBEAT_ENV,
            self.heartbeat_s,
            HEARTBEAT_MIN_S,
            self.ttl_s / 2,
            f"the heartbeat is 0.05 s to half the TTL ({self.ttl_s / 2:g} s)",
        )
        _check(IDLE_ENV, self.idle_s, 0.0, IDLE_MAX_S, "idle is 0 (never) to 31622400 seconds")
        _check("drain", self.drain_s, 0.0, TTL_MAX_S, "drain is 0 to 86400 seconds")

    @property
    def idle_enabled(self) -> bool:
        """Whether the daemon retires after `idle_s` without work (0 turns it off)."""
        return self.idle_s > 0

    @classmethod
    def from_env(cls, idle_default: float = DEFAULT_IDLE_S, *, env: Mapping[str, str]) -> Timing:
        """Read `TENURE_LEASE_TTL`, `TENURE_HEARTBEAT` (default TTL/3), `TENURE_IDLE_SECONDS`.

        A malformed or out-of-range value raises `ConfigError` naming the variable; it is
        never silently replaced by a default.
        """
        ttl = _env_seconds(env, TTL_ENV)
        ttl = DEFAULT_TTL_S if ttl is None else ttl
        _check(TTL_ENV, ttl, TTL_MIN_S, TTL_MAX_S, "the lease TTL is 1 to 86400 seconds")
        hb = _env_seconds(env, HEARTBEAT_ENV)
        idle = _env_seconds(env, IDLE_ENV)
        return cls(
            ttl_s=ttl,
            heartbeat_s=ttl / 3 if hb is None else hb,
            idle_s=idle_default if idle is None else idle,
        )


# Bounds on every wait, in one place (control.md#bounds). Each start path, stop and takeover
# reads them from here, so they cannot drift apart again.

WATCH_S = 0.1  # a holder's look at its record between heartbeats (a stat): how fast it learns
POLL_S = 0.01  # one cheap look (a record read, a process check) while waiting for an event
SCAN_POLL_S = 0.05  # one /proc scan (a tree's members) while waiting for a tree to end
SPAWN_TIMEOUT_S = 15.0  # spawn → holding (and healthy), on top of any wait for an old lease
REAPER_REPORT_WAIT_S = 5.0  # how long `start` waits to report its startup reaper's result
READY_HEALTH_TIMEOUT_S = 5.0  # `start` asking its own new holder, which answers once it serves
PORT_RELEASE_WAIT_S = 2.0  # for a replaced tree's listener to close once its processes are gone
DEFAULT_READY_S = 30.0  # a `tenure run` child's bound to be ready while a predecessor stands by
PORT_CLAIM_WAIT_S = 30.0  # waiting for the family's ports lock to choose a port (lease.md#scopes)
HANDOVER_WAIT_S = 2.0  # a superseded `tenure run --socket` waiting for its successor to take it
SOCKET_SETTLE_S = 1.0  # a child on a handed socket, up this long, is started (no port to probe)
ROLLBACK_WAIT_S = 5.0  # a rolled-back successor waiting (beyond a heartbeat) to see who is back
START_ATTEMPTS = 3  # a spawned daemon that stood down (the lease was taken meanwhile) is retried


def leave_wait(timing: Timing) -> float:
    """How long a superseded or expiring holder has to leave: one TTL and two heartbeats
    (it sees the mark within a heartbeat; a stopped one can only let its lease run out)."""
    return timing.ttl_s + 2 * timing.heartbeat_s


def asked_leave_wait(heartbeat_s: float, grace_s: float | None = None) -> float:
    """How long a holder asked through its record has to leave: one of its heartbeats to see
    the mark, then the grace a stopped holder gets (its own, else `HOLDER_STOP`'s)."""
    return heartbeat_s + (HOLDER_STOP.grace_s if grace_s is None else grace_s)


def start_lock_wait(timing: Timing) -> float:
    """How long a start waits for the family's start lock: another start may be waiting out
    an old holder's lease (`leave_wait`) and then the spawn (`SPAWN_TIMEOUT_S`) under it."""
    return 2 * timing.ttl_s + 60.0


@frozen
class StopPolicy:
    """How a process (or a whole tree) is stopped: SIGTERM (+SIGCONT, so a stopped process can
    act on it), `grace_s`, SIGKILL, `kill_wait_s` before it counts as surviving."""

    grace_s: float
    kill_wait_s: float = 5.0
    tree: bool = False  # every member of the tree, not only the process
    first: str = "SIGTERM"  # the signal that asks it to leave (control.md#stop-policy)
    head_only: bool = False  # a tree's first signal goes to its head alone (it ends the rest)

    @property
    def bound_s(self) -> float:
        """The longest a stop under this policy takes."""
        return self.grace_s + self.kill_wait_s

    def with_grace(self, grace_s: float) -> StopPolicy:
        """The same policy with another grace period (a caller's `wait_s`)."""
        return replace(self, grace_s=grace_s)

    def following(self, spec: StopSpec | None) -> StopPolicy:
        """This policy as the recorded `spec` (signal, grace, tree) asks; itself without one."""
        if spec is None:
            return self
        return replace(self, first=spec.signal, grace_s=spec.grace_s, head_only=not spec.tree)


# A governed child and its tree (`tenure run`, a replaced holder's orphans, the kit's command).
TREE_STOP = StopPolicy(grace_s=5.0, kill_wait_s=5.0, tree=True)
# A lease holder (`tenure <family> stop`, `tenure.stop`): its grace covers its own drain and,
# for a `tenure run` holder, ending its tree before it releases.
HOLDER_STOP = StopPolicy(grace_s=DRAIN_TIMEOUT_S + TREE_STOP.bound_s / 2, kill_wait_s=5.0)
# The wrapper's drain is its tree's whole stop (by the tree's policy) plus this, to release.
RUN_RELEASE_S = 2.0
