"""Pure classifier: facts about one in-range listener → an identity record and a cleanup class.

First match wins, in the order of docs/protocol/classification.md; the unit tests walk the same
table. Version or executable mismatch is evidence of staleness, never a reason to skip.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenure.core import speckitty
from tenure.core.argv import argv_option
from tenure.core.families import Family
from tenure.core.identity import same_create_time
from tenure.core.record import PROTOCOL


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
    NONE = "none"


class Governance(enum.StrEnum):
    """Whether a daemon governs itself with a lease."""

    LEASE = "lease"
    LEGACY = "legacy"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ListenerFacts:
    """What the scanner found on one port. `health` is the parsed JSON of a 200 answer."""

    port: int
    pid: int | None = None
    uid: int | None = None
    create_time: float | None = None
    cmdline: tuple[str, ...] = ()
    health: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class LeaseView:
    """The scope family's lease as read from the record."""

    holder_pid: int
    holder_create_time: float
    holder_started_at: float
    epoch: int
    held: bool
    expired: bool


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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
    token_leaked: bool = False
    root_marker_name: str | None = field(default=None)

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
_Verdict = Callable[..., "DaemonIdentityRecord"]


def _text(doc: Mapping[str, Any] | None, key: str) -> str | None:
    """A short string field from hostile JSON, or None."""
    if doc is None:
        return None
    value = doc.get(key)
    if isinstance(value, str):
        return value[:_MAX_TEXT]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _int(doc: Mapping[str, Any] | None, key: str) -> int | None:
    if doc is None:
        return None
    value = doc.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def classify(facts: ListenerFacts, scope: Scope) -> DaemonIdentityRecord:
    """Classify one listener; never raises on hostile facts."""
    health = facts.health if isinstance(facts.health, Mapping) else None
    base = {
        "port": facts.port,
        "pid": facts.pid,
        "create_time": facts.create_time,
        "package_version": _text(health, "package_version"),
    }

    def verdict(
        cls: CleanupClass,
        reason: SkipReason | None,
        governance: Governance,
        source: IdentitySource,
        evidence: list[str],
        **extra: Any,
    ) -> DaemonIdentityRecord:
        fields: dict[str, Any] = {
            "daemon_family": None,
            "protocol": None,
            "scope_id": None,
            **base,
            **extra,
        }
        return DaemonIdentityRecord(
            governance=governance,
            cleanup_class=cls,
            skip_reason=reason,
            identity_source=source,
            evidence=tuple(evidence),
            **fields,
        )

    never = CleanupClass.NEVER_TOUCH
    if not scope.family.contains(facts.port):
        return verdict(
            never,
            SkipReason.OUT_OF_RANGE,
            Governance.UNKNOWN,
            IdentitySource.NONE,
            [
                f"port {facts.port} outside {scope.family.name} range "
                f"[{scope.family.lo},{scope.family.hi})"
            ],
        )
    if facts.uid is not None and facts.uid != scope.uid:
        return verdict(
            never,
            SkipReason.OTHER_USER,
            Governance.UNKNOWN,
            IdentitySource.NONE,
            [f"listener owned by uid {facts.uid}, not {scope.uid}"],
        )
    tenure_family = argv_option(facts.cmdline, "tenure-family")
    if _text(health, "protocol") == PROTOCOL or tenure_family is not None:
        return _classify_lease_aware(facts, scope, health, tenure_family, verdict)
    return _classify_legacy(facts, scope, health, verdict)


def _classify_lease_aware(
    facts: ListenerFacts,
    scope: Scope,
    health: Mapping[str, Any] | None,
    argv_family: str | None,
    verdict: _Verdict,
) -> DaemonIdentityRecord:
    family = argv_family or _text(health, "daemon_family")
    root = argv_option(facts.cmdline, "tenure-root") or _text(health, "root")
    source = (
        IdentitySource.HEALTH_SELF_REPORT if health is not None else IdentitySource.CMDLINE_MARKER
    )
    lease = scope.lease
    is_holder = lease is not None and lease.held and facts.pid == lease.holder_pid
    if is_holder and facts.create_time is not None and lease is not None:
        is_holder = same_create_time(facts.create_time, lease.holder_create_time)
    if is_holder:
        source = IdentitySource.LEASE_RECORD
    extra = {
        "daemon_family": family,
        "protocol": PROTOCOL,
        "scope_id": root,
        "root_marker_name": "tenure-root",
    }
    lease_gov = Governance.LEASE
    never, operator = CleanupClass.NEVER_TOUCH, CleanupClass.OPERATOR_REQUIRED
    if family != scope.family.name:
        return verdict(
            never,
            SkipReason.OTHER_FAMILY,
            lease_gov,
            source,
            [f"lease-aware {family} daemon"],
            **extra,
        )
    if root != scope.root:
        # A lease-aware daemon governs itself; only its own root's commands may stop it.
        return verdict(
            never,
            SkipReason.CROSS_ROOT,
            lease_gov,
            source,
            [f"lease-aware daemon of root {root}, not {scope.root}: it governs itself"],
            **extra,
        )
    health_pid = _int(health, "pid")
    if health is not None and (health_pid != facts.pid or _int(health, "port") != facts.port):
        return verdict(
            operator,
            SkipReason.PID_PORT_MISMATCH,
            lease_gov,
            source,
            [
                f"health says pid {health_pid} port {_int(health, 'port')}; "
                f"listener is pid {facts.pid}"
            ],
            **extra,
        )
    health_root_id = _text(health, "root_id")
    if health_root_id is not None and scope.root_id is not None and health_root_id != scope.root_id:
        return verdict(
            never,
            SkipReason.RETIRING,
            lease_gov,
            source,
            [
                f"holds a lease of a removed instance of this root (root_id {health_root_id}, "
                f"now {scope.root_id}); it fences itself at its next heartbeat"
            ],
            **extra,
        )
    if is_holder and lease is not None:
        if not lease.expired:
            return verdict(
                never,
                SkipReason.LEASE_HOLDER,
                lease_gov,
                source,
                [f"holds epoch {lease.epoch}"],
                **extra,
            )
        if health is None:
            return verdict(
                operator,
                SkipReason.UNRESPONSIVE,
                lease_gov,
                source,
                [f"holder of expired epoch {lease.epoch} does not answer health"],
                **extra,
            )
        return verdict(
            never,
            SkipReason.RETIRING,
            lease_gov,
            source,
            [f"lease epoch {lease.epoch} expired; the holder fences itself"],
            **extra,
        )
    # Not the holder: it is leaving on its own unless it lingers past the grace period.
    since = facts.create_time if facts.create_time is not None else scope.now_wall
    if lease is not None and lease.held:
        since = max(since, lease.holder_started_at)
    lingering = scope.now_wall - since
    if lingering <= scope.retire_grace_s:
        return verdict(
            never,
            SkipReason.RETIRING,
            lease_gov,
            source,
            [f"not the holder for {lingering:.1f}s (grace {scope.retire_grace_s:.0f}s)"],
            **extra,
        )
    return verdict(
        CleanupClass.SAFE_AUTO,
        None,
        lease_gov,
        source,
        [
            f"not the holder and lingering {lingering:.0f}s past takeover "
            f"(grace {scope.retire_grace_s:.0f}s)"
        ],
        **extra,
    )


REDACTED = "<redacted>"


def _leaked_token(health: Mapping[str, Any] | None) -> str | None:
    """The raw token a health answer gives away; a redacted or empty one is no leak."""
    token = _text(health, "token")
    return None if not token or token == REDACTED else token


def _classify_legacy(
    facts: ListenerFacts, scope: Scope, health: Mapping[str, Any] | None, verdict: _Verdict
) -> DaemonIdentityRecord:
    never, operator = CleanupClass.NEVER_TOUCH, CleanupClass.OPERATOR_REQUIRED
    legacy = Governance.LEGACY
    leaked = _leaked_token(health) is not None
    if health is not None and speckitty.looks_like_legacy_dashboard_health(health):
        evidence = ["legacy spec-kitty dashboard (project_path in health)"]
        if leaked:
            evidence.append("leaks its control token on /api/health")
        return verdict(
            never,
            SkipReason.DASHBOARD_FAMILY,
            legacy,
            IdentitySource.HEALTH_SELF_REPORT,
            evidence,
            daemon_family="dashboard",
            token_leaked=leaked,
        )
    shape = speckitty.spawn_shape(facts.cmdline)
    health_legacy = health is not None and speckitty.looks_like_legacy_sync_health(health)
    if shape is None and not (health_legacy and facts.pid is None):
        return verdict(
            never,
            SkipReason.THIRD_PARTY,
            Governance.UNKNOWN,
            IdentitySource.NONE,
            ["no tenure marker and no legacy spawn shape"],
        )
    source = (
        IdentitySource.CMDLINE_MARKER if shape is not None else IdentitySource.HEALTH_SELF_REPORT
    )
    extra: dict[str, Any] = {
        "daemon_family": "sync",
        "protocol": None if health is None else f"legacy/{_int(health, 'protocol_version')}",
        "scope_id": shape.root_marker if shape is not None else _text(health, "singleton_scope_id"),
        "token_leaked": leaked,
        "root_marker_name": speckitty.ROOT_MARKER,
    }
    version = _text(health, "package_version")
    evidence = [f"legacy spec-kitty sync daemon {version or '(version unknown)'}"]
    if scope.family.name != "sync":
        return verdict(never, SkipReason.OTHER_FAMILY, legacy, source, evidence, **extra)
    by_pid = facts.pid is not None and facts.pid == scope.legacy_singleton_pid
    by_port = scope.legacy_singleton_pid is None and facts.port == scope.legacy_singleton_port
    if by_pid or by_port:
        return verdict(
            never,
            SkipReason.IS_RECORDED_SINGLETON,
            legacy,
            source,
            [*evidence, "named by the legacy state file"],
            **extra,
        )
    if facts.pid is None:
        return verdict(
            operator,
            SkipReason.MISSING_PID,
            legacy,
            source,
            [*evidence, "no pid owns the listener"],
            **extra,
        )
    assert shape is not None  # a pid with no shape was third_party above
    if shape.root_marker is None:
        return verdict(
            operator,
            SkipReason.PRE_MARKER,
            legacy,
            source,
            [*evidence, f"no --{speckitty.ROOT_MARKER}= marker in argv"],
            **extra,
        )
    if shape.root_marker != scope.legacy_root:
        return verdict(
            operator,
            SkipReason.CROSS_ROOT,
            legacy,
            source,
            [*evidence, f"root {shape.root_marker} is not {scope.legacy_root}"],
            **extra,
        )
    if health is None or not health_legacy:
        return verdict(
            operator,
            SkipReason.UNRESPONSIVE,
            legacy,
            source,
            [*evidence, "accepts connections but gives no health answer"],
            **extra,
        )
    health_token = _leaked_token(health)
    if shape.port != facts.port or (health_token is not None and health_token != shape.token):
        return verdict(
            operator,
            SkipReason.PID_PORT_MISMATCH,
            legacy,
            source,
            [*evidence, f"argv names port {shape.port}; the answer does not tie to this listener"],
            **extra,
        )
    evidence.append("same legacy root, not the recorded singleton: stale holdout")
    if leaked:
        evidence.append("leaks its control token on /api/health")
    return verdict(
        CleanupClass.SAFE_AUTO, None, legacy, IdentitySource.HEALTH_SELF_REPORT, evidence, **extra
    )
