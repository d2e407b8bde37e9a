"""What the classifier decides about, and decides (pure): listener facts, scope, verdicts.

spec: docs/protocol/classification.md
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping

from tenure.core.families import Family
from tenure.core.hints import TYPE_CHECKING
from tenure.core.values import frozen

if TYPE_CHECKING:
    from typing import Any


class CleanupClass(enum.StrEnum):
    """What any cleanup may do with a listener."""

    SAFE_AUTO = "safe_auto"
    OPERATOR_REQUIRED = "operator_required"
    NEVER_TOUCH = "never_touch"


class SkipReason(enum.StrEnum):
    """Why a listener is not `safe_auto`."""

    OUT_OF_RANGE = "out_of_range"
    OTHER_USER = "other_user"
    THIRD_PARTY = "third_party"
    DASHBOARD_FAMILY = "dashboard_family"
    OTHER_FAMILY = "other_family"
    IS_RECORDED_SINGLETON = "is_recorded_singleton"
    LEASE_HOLDER = "lease_holder"
    RETIRING = "retiring"
    MISSING_PID = "missing_pid"
    PRE_MARKER = "pre_marker"
    CROSS_ROOT = "cross_root"
    UNRESPONSIVE = "unresponsive"
    PID_PORT_MISMATCH = "pid_port_mismatch"


class IdentitySource(enum.StrEnum):
    """Which fact identified the daemon."""

    HEALTH_SELF_REPORT = "health_self_report"
    CMDLINE_MARKER = "cmdline_marker"
    LEASE_RECORD = "lease_record"
    TREE_COOKIE = "tree_cookie"  # carries the cookie of the tree a gone holder governed
    NONE = "none"


class Governance(enum.StrEnum):
    """Whether a daemon governs itself with a lease."""

    LEASE = "lease"
    LEGACY = "legacy"
    UNKNOWN = "unknown"


@frozen
class ListenerFacts:
    """What the scanner found on one port. `health` is the parsed JSON of a 200 answer."""

    port: int
    pid: int | None = None
    uid: int | None = None
    create_time: float | None = None
    cmdline: tuple[str, ...] = ()
    health: Mapping[str, Any] | None = None
    start_ticks: int | None = None  # clock ticks since boot, where the platform has them
    tree_cookies: tuple[str, ...] = ()  # `TENURE_TREE` in its environment (our uid only)
    pid_ns: int | None = None  # its pid namespace (inode), where the platform can tell


@frozen
class LeaseView:
    """The scope family's lease as read from the record."""

    holder_pid: int
    holder_create_time: float
    holder_started_at: float
    epoch: int
    held: bool
    expired: bool
    child_pid: int | None = None  # a `tenure run` holder's governed child
    child_create_time: float | None = None
    holder_start_ticks: int | None = None
    child_start_ticks: int | None = None
    foreign: str | None = None  # where the holder lives, when that is not here (lease.md#foreign)
    tree: str | None = None  # the cookie of the tree the record's `child` heads (control.md#run)
    holder_gone: bool = False  # released, or its holder provably dead here (not foreign)
    service_port: int | None = None  # the holder's port when it serves no control plane
    # Replaced holders' trees not yet seen stopped (the record's `orphans`): (cookie, start
    # ticks, create_time) of each tree's head (control.md#run).
    orphan_trees: tuple[tuple[str, int | None, float], ...] = ()
    version: str | None = None  # the holder's version, shown for its listeners


@frozen
class Scope:
    """Who is asking: the family being cleaned, this user, the roots, the recorded singletons."""

    family: Family
    uid: int
    root: str
    legacy_root: str
    now_wall: float
    retire_grace_s: float
    lease: LeaseView | None = None
    legacy_singleton_pid: int | None = None
    legacy_singleton_port: int | None = None
    root_id: str | None = None  # this root's current instance id (root.md#instance)
    pid_ns: int | None = None  # the observer's pid namespace (inode), where it can tell
    # The family's leases in other scopes (lease.md#scopes): their holders and governed
    # children are holders too, never stale copies of the user scope's.
    scoped: tuple[LeaseView, ...] = ()


@frozen
class DaemonIdentityRecord:
    """The classifier's verdict plus the identity a reaper must re-check before any signal."""

    port: int
    pid: int | None
    daemon_family: str | None
    package_version: str | None
    protocol: str | None
    scope_id: str | None
    governance: Governance
    cleanup_class: CleanupClass
    skip_reason: SkipReason | None
    identity_source: IdentitySource
    evidence: tuple[str, ...] = ()
    create_time: float | None = None
    start_ticks: int | None = None
    token_leaked: bool = False
    root_marker_name: str | None = None
    tree_cookie: str | None = None  # the proof a reaper re-checks for a tree member

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (never contains a token)."""
        return {
            "port": self.port,
            "pid": self.pid,
            "daemon_family": self.daemon_family,
            "package_version": self.package_version,
            "protocol": self.protocol,
            "scope_id": self.scope_id,
            "governance": self.governance.value,
            "cleanup_class": self.cleanup_class.value,
            "skip_reason": None if self.skip_reason is None else self.skip_reason.value,
            "identity_source": self.identity_source.value,
            "evidence": list(self.evidence),
            "token_leaked": self.token_leaked,
        }


_MAX_TEXT = 200
Verdict = Callable[..., "DaemonIdentityRecord"]


def text_of(doc: Mapping[str, Any] | None, key: str) -> str | None:
    """A short string field from hostile JSON, or None."""
    if doc is None:
        return None
    value = doc.get(key)
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def int_of(doc: Mapping[str, Any] | None, key: str) -> int | None:
    if doc is None:
        return None
    value = doc.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
