"""Pure classifier: facts about one in-range listener → an identity record and a cleanup class.

First match wins, in the order of docs/protocol/classification.md; the unit tests walk the same
table. Version or executable mismatch is evidence of staleness, never a reason to skip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tenure.core.argv import argv_option
from tenure.core.classify_legacy import classify_legacy
from tenure.core.identity import CREATE_TIME_TOLERANCE_S, ProcessIdentity, same_start
from tenure.core.record import PROTOCOL
from tenure.core.verdicts import (
    CleanupClass,
    DaemonIdentityRecord,
    Governance,
    IdentitySource,
    LeaseView,
    ListenerFacts,
    Scope,
    SkipReason,
    Verdict,
    int_of,
    text_of,
)

__all__ = [
    "CleanupClass",
    "DaemonIdentityRecord",
    "Governance",
    "IdentitySource",
    "LeaseView",
    "ListenerFacts",
    "Scope",
    "SkipReason",
    "classify",
]


def classify(facts: ListenerFacts, scope: Scope) -> DaemonIdentityRecord:
    """Classify one listener; never raises on hostile facts."""
    health = facts.health if isinstance(facts.health, Mapping) else None
    base = {
        "port": facts.port,
        "pid": facts.pid,
        "create_time": facts.create_time,
        "start_ticks": facts.start_ticks,
        "package_version": text_of(health, "package_version"),
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
    if text_of(health, "protocol") == PROTOCOL or tenure_family is not None:
        return _classify_lease_aware(facts, scope, health, tenure_family, verdict)
    lease = scope.lease
    if lease is not None and lease.held and not lease.expired and _held_by(facts, lease):
        # The record's own holder (pid + start time), or the child a `tenure run` holder
        # governs: neither carries a tenure argv marker, both are part of a live lease.
        return verdict(
            never,
            SkipReason.LEASE_HOLDER,
            Governance.LEASE,
            IdentitySource.LEASE_RECORD,
            [f"holds epoch {lease.epoch} of the {scope.family.name} lease"],
            daemon_family=scope.family.name,
        )
    if lease is not None and _orphaned_member(facts, lease):
        # A process of the tree a gone holder governed (`tenure run`'s grandchild that outlived
        # a SIGKILLed wrapper): proven by the tree's cookie, our uid and its start.
        return verdict(
            CleanupClass.SAFE_AUTO,
            None,
            Governance.LEASE,
            IdentitySource.TREE_COOKIE,
            [
                f"member of tree {lease.tree} whose holder (pid {lease.holder_pid}, epoch "
                f"{lease.epoch}) is gone"
            ],
            daemon_family=scope.family.name,
            tree_cookie=lease.tree,
        )
    return classify_legacy(facts, scope, health, verdict)


def _orphaned_member(facts: ListenerFacts, lease: LeaseView) -> bool:
    """Whether the listener carries the cookie of the tree a gone holder governed and started
    no earlier than that tree's head (a cookie copied into an older process proves nothing)."""
    if lease.tree is None or not lease.holder_gone or lease.foreign is not None:
        return False
    if lease.tree not in facts.tree_cookies or facts.pid is None:
        return False
    if facts.start_ticks is not None and lease.child_start_ticks is not None:
        return facts.start_ticks >= lease.child_start_ticks
    return (
        facts.create_time is not None
        and lease.child_create_time is not None
        and facts.create_time >= lease.child_create_time - CREATE_TIME_TOLERANCE_S
    )


def _held_by(facts: ListenerFacts, lease: LeaseView) -> bool:
    """Whether the listener is the lease's holder, or the child its wrapper governs."""
    if facts.create_time is None or facts.pid is None:
        return False
    seen = ProcessIdentity(facts.pid, facts.create_time, facts.start_ticks)
    known = [ProcessIdentity(lease.holder_pid, lease.holder_create_time, lease.holder_start_ticks)]
    if lease.child_pid is not None and lease.child_create_time is not None:
        known.append(
            ProcessIdentity(lease.child_pid, lease.child_create_time, lease.child_start_ticks)
        )
    return any(same_start(ident, seen) for ident in known)


def _classify_lease_aware(
    facts: ListenerFacts,
    scope: Scope,
    health: Mapping[str, Any] | None,
    argv_family: str | None,
    verdict: Verdict,
) -> DaemonIdentityRecord:
    family = argv_family or text_of(health, "daemon_family")
    root = argv_option(facts.cmdline, "tenure-root") or text_of(health, "root")
    source = (
        IdentitySource.HEALTH_SELF_REPORT if health is not None else IdentitySource.CMDLINE_MARKER
    )
    lease = scope.lease
    is_holder = lease is not None and lease.held and facts.pid == lease.holder_pid
    if is_holder and facts.create_time is not None and lease is not None:
        is_holder = _held_by(facts, replace(lease, child_pid=None))
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
    health_pid = int_of(health, "pid")
    if lease is not None and lease.foreign is not None and health_pid == lease.holder_pid:
        # Its pid is another namespace's: never matched against ours, never signalled.
        return verdict(
            never,
            SkipReason.LEASE_HOLDER,
            lease_gov,
            IdentitySource.LEASE_RECORD,
            [f"holds epoch {lease.epoch} from another namespace ({lease.foreign})"],
            **extra,
        )
    if health is not None and (health_pid != facts.pid or int_of(health, "port") != facts.port):
        return verdict(
            operator,
            SkipReason.PID_PORT_MISMATCH,
            lease_gov,
            source,
            [
                f"health says pid {health_pid} port {int_of(health, 'port')}; "
                f"listener is pid {facts.pid}"
            ],
            **extra,
        )
    health_root_id = text_of(health, "root_id")
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
