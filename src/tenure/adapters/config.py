"""Every `TENURE_*` environment variable is read here, and validated here (spec: lease.md#timing).

A malformed or out-of-range value is a `ConfigError` naming the variable and what it accepts;
it is never silently replaced by a default. Modules elsewhere ask this one, so `grep TENURE_`
over the code lands on one page.
"""

from __future__ import annotations

import os
from pathlib import Path

from tenure.core.families import Family
from tenure.core.inputs import parse_ports
from tenure.core.timing import DEFAULT_IDLE_S, Timing
from tenure.errors import ConfigError

ROOT_ENV = "TENURE_ROOT"  # the daemon root (default: the platform's user state dir)
GRACE_ENV = "TENURE_RETIRE_GRACE"  # how long a non-holder may linger before it is stale
JOURNAL_ENV = "TENURE_SIGNAL_JOURNAL"  # test hook: append every signal sent, as JSON lines
GUARD_ENV = "TENURE_TEST_SIGNAL_GUARD"  # test kit: only processes the test started
FAULT_ENV = "TENURE_FAULT_CRASH_BEFORE_RENAME"  # test-only fault injection, off unless "1"
# What `tenure.ensure` / `tenure run` pass to the daemon they spawn (control.md#ensure).
FAMILY_ENV, PORT_ENV, PORTS_ENV = "TENURE_FAMILY", "TENURE_PORT", "TENURE_PORTS"
WAIT_ENV = "TENURE_ACQUIRE_WAIT"  # how long a spawned daemon may wait for an expiring lease


def timing(idle_default: float = DEFAULT_IDLE_S) -> Timing:
    """`TENURE_LEASE_TTL`, `TENURE_HEARTBEAT`, `TENURE_IDLE_SECONDS`, validated."""
    return Timing.from_env(idle_default, env=os.environ)


def ports(family: Family) -> range:
    """The family's ports: its range, or the `TENURE_<FAMILY>_PORTS` narrowing of it."""
    return family.ports(os.environ)


def root_override() -> Path | None:
    """`TENURE_ROOT`, when set."""
    raw = os.environ.get(ROOT_ENV)
    return Path(raw).expanduser() if raw else None


def retire_grace(default: float) -> float:
    """`TENURE_RETIRE_GRACE` in seconds (>= 0), else `default`."""
    raw = os.environ.get(GRACE_ENV)
    return _seconds(GRACE_ENV, raw) if raw else default


def _seconds(name: str, raw: str) -> float:
    """A number of seconds in 0..86400, or a `ConfigError` naming the variable."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw[:40]!r} is not a number of seconds") from None
    if not 0 <= value <= 86_400:
        raise ConfigError(f"{name}={raw[:40]!r} is out of range: 0 to 86400 seconds")
    return value


def signal_journal() -> str | None:
    """The test signal journal's path, when a test set one."""
    return os.environ.get(JOURNAL_ENV) or None


def signal_guard() -> str | None:
    """The test kit's signal-guard file, when the guard is on."""
    return os.environ.get(GUARD_ENV) or None


def crash_before_rename() -> bool:
    """Test-only: simulate a crash between a temp write and its rename."""
    return os.environ.get(FAULT_ENV) == "1"


def legacy_env() -> dict[str, str]:
    """The environment a legacy root is resolved from (`SPEC_KITTY_HOME`)."""
    return dict(os.environ)


def parse_port_range(raw: str, name: str = PORTS_ENV) -> tuple[int, int]:
    """`LO-HI` (inclusive, within 1..65535, at most 1024 ports) or one port `P`."""
    return parse_ports(raw, name)


def launched_for(family: str) -> bool:
    """Whether a launcher (`tenure.ensure`, the conformance kit) spawned this process for
    `family`: it sets `TENURE_FAMILY`."""
    return os.environ.get(FAMILY_ENV) == family


def spawned_as(family: str) -> tuple[int | None, tuple[int, int] | None]:
    """The port and port range a launcher gave this process, when it spawned it for `family`."""
    if not launched_for(family):
        return None, None
    raw_port, raw_ports = os.environ.get(PORT_ENV), os.environ.get(PORTS_ENV)
    port = parse_port_range(raw_port, PORT_ENV)[0] if raw_port else None
    ports = parse_port_range(raw_ports) if raw_ports else None
    return port, ports


def spawned_scope(family: str) -> str | None:
    """The scope (a directory) a launcher gave this process, when it spawned it for `family`:
    `TENURE_SCOPE` (lease.md#scopes)."""
    return (os.environ.get("TENURE_SCOPE") or None) if launched_for(family) else None


def acquire_wait(family: str) -> float:
    """`TENURE_ACQUIRE_WAIT` (seconds, 0..86400) when a launcher spawned us for `family`, else 0.

    `tenure.ensure` sets it when the lease it found can only be taken after it expires (a holder
    that is stopped, or an unreadable record), so the daemon waits instead of exiting held.
    """
    raw = os.environ.get(WAIT_ENV)
    if not raw or not launched_for(family):
        return 0.0
    return _seconds(WAIT_ENV, raw)
