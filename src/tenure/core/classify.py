"""Pure classifier: facts about one in-range listener → an identity record and a cleanup class.

First match wins, in the order of docs/protocol/classification.md: rows 1-2 and 13-15 here,
the lease-aware rows 3-12 and the legacy rows 16-25 as rule tables (`classify_aware`,
`classify_legacy`); the tests walk the same table. Version or executable mismatch is evidence
of staleness, never a reason to skip.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from tenure.core.argv import argv_option
from tenure.core.classify_aware import AWARE_RULES, aware_context, held_by
from tenure.core.classify_legacy import classify_legacy
from tenure.core.hints import TYPE_CHECKING
from tenure.core.identity import CREATE_TIME_TOLERANCE_S
from tenure.core.record import PROTOCOL
from tenure.core.rules import decide
from tenure.core.verdicts import (
    CleanupClass,
    DaemonIdentityRecord,
    Governance,
    IdentitySource,
    LeaseView,
    ListenerFacts,
    Scope,
    SkipReason,
    text_of,
)

if TYPE_CHECKING:
    from typing import Any

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
    verdict = partial(_verdict, base)
    never = CleanupClass.NEVER_TOUCH
    if not scope.family.contains(facts.port):
        return verdict(
            never,
            SkipReason.OUT_OF_RANGE,
            Governance.UNKNOWN,
            IdentitySource.NONE,
            [
                f"port {facts.port} outside {scope.family.name} range "
                f"{scope.family.lo}-{scope.family.hi}"
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
        ctx = aware_context(facts, scope, health, tenure_family)
        return decide(AWARE_RULES, ctx, verdict)
    views = [v for v in (scope.lease, *scope.scoped) if v is not None]
    live = [v for v in views if v.held and not v.expired]
    holding = next((v for v in live if held_by(facts, v)), None)
    member = None if holding is not None else next((v for v in live if _member(facts, v)), None)
    if holding is not None or member is not None:
        # Row 13. The record's own holder (pid + start time), the child a `tenure run` holder
        # governs, or any process of that child's tree (its cookie: `sh -c`, `npm start`):
        # none carries a tenure argv marker, all are part of a live lease — of the user
        # scope or of any other (lease.md#scopes).
        v = holding or member
        assert v is not None
        how = "holds" if holding is not None else "is of the tree that holds"
        return verdict(
            never,
            SkipReason.LEASE_HOLDER,
            Governance.LEASE,
            IdentitySource.LEASE_RECORD if holding is not None else IdentitySource.TREE_COOKIE,
            [f"{how} epoch {v.epoch} of the {scope.family.name} lease"],
            daemon_family=scope.family.name,
            package_version=v.version,
        )
    stopped = next(
        (v for v in views if v.held and v.expired and not v.holder_gone and _member(facts, v)),
        None,
    )
    if stopped is not None:
        # Row 14. Its holder is alive but past its TTL (stopped, wedged): the tree is still
        # that holder's — the next holder stops it on takeover; until then, an operator's call.
        return verdict(
            CleanupClass.OPERATOR_REQUIRED,
            SkipReason.UNRESPONSIVE,
            Governance.LEASE,
            IdentitySource.TREE_COOKIE,
            [
                f"of the tree of a holder past its TTL ({scope.family.name} lease, epoch "
                f"{stopped.epoch}, pid {stopped.holder_pid})"
            ],
            daemon_family=scope.family.name,
            package_version=stopped.version,
            tree_cookie=stopped.tree,
        )
    gone = next((v for v in views if _orphaned_member(facts, v)), None)
    if gone is not None:
        # Row 15. A process of a tree a gone holder governed (`tenure run`'s grandchild that
        # outlived a SIGKILLed wrapper, or survived an interrupted takeover): proven by the
        # tree's cookie, our uid and its start.
        return verdict(
            CleanupClass.SAFE_AUTO,
            None,
            Governance.LEASE,
            IdentitySource.TREE_COOKIE,
            [
                f"member of a tree whose holder is gone ({scope.family.name} lease, "
                f"epoch {gone.epoch})"
            ],
            daemon_family=scope.family.name,
            package_version=gone.version,
            tree_cookie=_cookie_of(facts, gone),
        )
    return classify_legacy(facts, scope, health, verdict)


def _member(facts: ListenerFacts, lease: LeaseView) -> bool:
    """Whether the listener is of the tree the record's `child` heads: its cookie, started no
    earlier than the child (never for a foreign holder, whose tree is not ours to see)."""
    if lease.tree is None or lease.foreign is not None or lease.child_create_time is None:
        return False
    return lease.tree in facts.tree_cookies and _started_since(
        facts, lease.child_start_ticks, lease.child_create_time
    )


def _verdict(  # noqa: PLR0917  (the shape of `Verdict`, which the rule tables call)
    base: dict[str, Any],
    cls: CleanupClass,
    reason: SkipReason | None,
    governance: Governance,
    source: IdentitySource,
    evidence: list[str],
    **extra: Any,
) -> DaemonIdentityRecord:
    """The identity record: the listener's own facts (`base`) plus what the row says."""
    fields: dict[str, Any] = {"daemon_family": None, "protocol": None, "scope_id": None}
    return DaemonIdentityRecord(
        governance=governance,
        cleanup_class=cls,
        skip_reason=reason,
        identity_source=source,
        evidence=tuple(evidence),
        **{**fields, **base, **extra},
    )


def _orphaned_member(facts: ListenerFacts, lease: LeaseView) -> bool:
    """Whether the listener carries the cookie of a tree a gone holder governed — the record's
    `child` once its holder is gone, or a replaced tree the record still lists — and started
    no earlier than that tree's head (a cookie copied into an older process proves nothing)."""
    if lease.foreign is not None or facts.pid is None:
        return False
    heads = list(lease.orphan_trees)
    if lease.tree is not None and lease.holder_gone and lease.child_create_time is not None:
        heads.append((lease.tree, lease.child_start_ticks, lease.child_create_time))
    return any(
        cookie in facts.tree_cookies and _started_since(facts, ticks, created)
        for cookie, ticks, created in heads
    )


def _cookie_of(facts: ListenerFacts, lease: LeaseView) -> str | None:
    """The cookie that proves the membership (the reaper re-checks it before each signal)."""
    cookies = [lease.tree, *(c for c, _t, _ct in lease.orphan_trees)]
    return next((c for c in cookies if c is not None and c in facts.tree_cookies), None)


def _started_since(facts: ListenerFacts, ticks: int | None, created: float) -> bool:
    if facts.start_ticks is not None and ticks is not None:
        return facts.start_ticks >= ticks
    return facts.create_time is not None and facts.create_time >= created - CREATE_TIME_TOLERANCE_S
