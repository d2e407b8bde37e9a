"""Rows 3-12 of docs/protocol/classification.md (pure): a lease-aware listener (tenure/1
health, or a `--tenure-family` marker) is left to govern itself unless it lingers past the
retirement grace after another holder took over. `tenure.core.classify.classify` routes here.
"""

from __future__ import annotations

from collections.abc import Mapping

from tenure.core.argv import argv_option
from tenure.core.hints import TYPE_CHECKING
from tenure.core.identity import ProcessIdentity, same_start
from tenure.core.record import PROTOCOL
from tenure.core.rules import NEVER, OPERATOR, SAFE, Context, Rule
from tenure.core.values import frozen, replace
from tenure.core.verdicts import (
    Governance,
    IdentitySource,
    LeaseView,
    ListenerFacts,
    Scope,
    SkipReason,
    int_of,
    text_of,
)

if TYPE_CHECKING:
    from typing import Any


def held_by(facts: ListenerFacts, lease: LeaseView) -> bool:
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


@frozen
class _Aware(Context):
    """A lease-aware listener (tenure/1 health or a `--tenure-family` marker), as the rules
    of rows 3-12 see it."""

    facts: ListenerFacts
    scope: Scope
    health: Mapping[str, Any] | None
    family: str | None
    root: str | None
    source: IdentitySource
    is_holder: bool
    lingering: float  # how long a non-holder has outlived the takeover
    governance: Governance = Governance.LEASE
    held: LeaseView | None = None  # the lease it holds, when that is another scope's

    def fields(self) -> dict[str, Any]:
        return {
            "daemon_family": self.family,
            "protocol": PROTOCOL,
            "scope_id": self.root,
            "root_marker_name": "tenure-root",
        }

    @property
    def lease(self) -> LeaseView | None:
        """The lease judged: the one it holds in another scope, else the user scope's."""
        return self.held or self.scope.lease

    @property
    def epoch(self) -> int | None:
        """The lease's epoch, when there is a lease."""
        return None if self.lease is None else self.lease.epoch

    @property
    def expired(self) -> bool:
        return self.lease is not None and self.lease.expired

    @property
    def foreign(self) -> str | None:
        """Where the lease's holder lives, when that is not here."""
        return None if self.scope.lease is None else self.scope.lease.foreign

    @property
    def elsewhere(self) -> bool:
        """The listener lives in a pid namespace other than the observer's."""
        seen, mine = self.facts.pid_ns, self.scope.pid_ns
        return seen is not None and mine is not None and seen != mine

    @property
    def health_says_holder(self) -> bool:
        """The health answer names the lease's holder pid."""
        lease = self.scope.lease
        return lease is not None and int_of(self.health, "pid") == lease.holder_pid

    @property
    def health_root_id(self) -> str | None:
        return text_of(self.health, "root_id")

    @property
    def ties(self) -> bool:
        """No health answer, or one naming this listener's pid and port."""
        h = self.health
        return h is None or (
            int_of(h, "pid") == self.facts.pid and int_of(h, "port") == self.facts.port
        )

    @property
    def removed_root(self) -> bool:
        """Its health names an instance of this root that was removed and recreated."""
        now = self.scope.root_id
        return self.health_root_id is not None and now is not None and self.health_root_id != now

    @property
    def grace(self) -> str:
        return f"grace {self.scope.retire_grace_s:.0f}s"


def aware_context(
    facts: ListenerFacts, scope: Scope, health: Mapping[str, Any] | None, argv_family: str | None
) -> _Aware:
    lease = scope.lease
    is_holder = lease is not None and lease.held and facts.pid == lease.holder_pid
    if is_holder and facts.create_time is not None and lease is not None:
        is_holder = held_by(facts, replace(lease, child_pid=None))
    held = None
    if not is_holder:
        # The holder of the family's lease in another scope is a holder all the same.
        held = next((v for v in scope.scoped if v.held and _holds(facts, v)), None)
        is_holder = held is not None
    if is_holder:
        source = IdentitySource.LEASE_RECORD
    else:
        health_said = health is not None
        source = IdentitySource.HEALTH_SELF_REPORT if health_said else IdentitySource.CMDLINE_MARKER
    # Not the holder: it is leaving on its own unless it lingers past the grace period.
    since = facts.create_time if facts.create_time is not None else scope.now_wall
    if lease is not None and lease.held:
        since = max(since, lease.holder_started_at)
    return _Aware(
        facts=facts,
        scope=scope,
        health=health,
        family=argv_family or text_of(health, "daemon_family"),
        root=argv_option(facts.cmdline, "tenure-root") or text_of(health, "root"),
        source=source,
        is_holder=is_holder,
        lingering=scope.now_wall - since,
        held=held,
    )


def _holds(facts: ListenerFacts, lease: LeaseView) -> bool:
    return facts.pid == lease.holder_pid and held_by(facts, replace(lease, child_pid=None))


def _elsewhere(c: _Aware) -> str:
    if c.foreign is not None and c.health_says_holder:
        return f"holds epoch {c.epoch} from another namespace ({c.foreign})"
    if c.foreign is not None:
        return (
            f"the lease's holder (epoch {c.epoch}) lives in another namespace ({c.foreign}); "
            "this listener may be it"
        )
    return (
        f"lives in pid namespace {c.facts.pid_ns}, not this one ({c.scope.pid_ns}): its pid "
        "means nothing against the record"
    )


# Rows 3-12 of docs/protocol/classification.md, in order.
AWARE_RULES: tuple[Rule[_Aware], ...] = (
    Rule(
        "lease-aware-other-family",
        lambda c: c.family != c.scope.family.name,
        NEVER,
        SkipReason.OTHER_FAMILY,
        lambda c: [f"lease-aware {c.family} daemon"],
    ),
    Rule(
        # A lease-aware daemon governs itself; only its own root's commands may stop it.
        "lease-aware-other-root",
        lambda c: c.root != c.scope.root,
        NEVER,
        SkipReason.CROSS_ROOT,
        lambda c: [f"lease-aware daemon of root {c.root}, not {c.scope.root}: it governs itself"],
    ),
    Rule(
        # A pid of another namespace is never matched against ours, answer or no answer: a
        # silent foreign holder would otherwise look like a lingering stranger here.
        "lease-aware-in-another-namespace",
        lambda c: c.foreign is not None or c.elsewhere,
        NEVER,
        SkipReason.LEASE_HOLDER,
        lambda c: [_elsewhere(c)],
        source=IdentitySource.LEASE_RECORD,
    ),
    Rule(
        "lease-aware-health-does-not-tie-to-listener",
        lambda c: not c.ties,
        OPERATOR,
        SkipReason.PID_PORT_MISMATCH,
        lambda c: [
            f"health says pid {int_of(c.health, 'pid')} port {int_of(c.health, 'port')}; "
            f"listener is pid {c.facts.pid}"
        ],
    ),
    Rule(
        "lease-aware-holder-of-a-removed-root-instance",
        lambda c: c.removed_root,
        NEVER,
        SkipReason.RETIRING,
        lambda c: [
            f"holds a lease of a removed instance of this root (root_id {c.health_root_id}, "
            f"now {c.scope.root_id}); it fences itself at its next heartbeat"
        ],
    ),
    Rule(
        "lease-aware-current-holder",
        lambda c: c.is_holder and not c.expired,
        NEVER,
        SkipReason.LEASE_HOLDER,
        lambda c: [f"holds epoch {c.epoch}"],
    ),
    Rule(
        "lease-aware-expired-holder-not-answering",
        lambda c: c.is_holder and c.health is None,
        OPERATOR,
        SkipReason.UNRESPONSIVE,
        lambda c: [f"holder of expired epoch {c.epoch} does not answer health"],
    ),
    Rule(
        "lease-aware-expired-holder-answering",
        lambda c: c.is_holder,
        NEVER,
        SkipReason.RETIRING,
        lambda c: [f"lease epoch {c.epoch} expired; the holder fences itself"],
    ),
    Rule(
        "lease-aware-non-holder-within-grace",
        lambda c: c.lingering <= c.scope.retire_grace_s,
        NEVER,
        SkipReason.RETIRING,
        lambda c: [f"not the holder for {c.lingering:.1f}s ({c.grace})"],
    ),
    Rule(
        "lease-aware-non-holder-past-grace",
        lambda c: True,
        SAFE,
        None,
        lambda c: [f"not the holder and lingering {c.lingering:.0f}s past takeover ({c.grace})"],
    ),
)
