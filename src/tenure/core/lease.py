"""Pure lease decisions: acquire, renew, expiry and status (leaving: `handover`).

Every function here takes facts (the record as read, what the observer knows about the holder
process, clock readings) and returns a verdict plus the record to write, if any. No I/O.
spec: docs/protocol/lease.md#transitions
"""

from __future__ import annotations

import enum

from tenure.core.handover import Decision, is_newer
from tenure.core.record import (
    MAX_ORPHANS,
    Child,
    Extra,
    Holder,
    LeaseRecord,
    LeaseScope,
    LeaseState,
    Readiness,
    Unreadable,
)
from tenure.core.values import frozen, replace


class Liveness(enum.StrEnum):
    """What an observer can prove about a recorded holder process."""

    ALIVE = "alive"  # pid exists with the recorded start (or we cannot tell: fail closed)
    DEAD = "dead"  # no such pid, or a zombie
    REUSED = "reused"  # the pid exists but with another start
    FOREIGN = "foreign"  # it lives in another boot, pid or time namespace: cannot be seen here


SEEN = frozenset({Liveness.ALIVE, Liveness.FOREIGN})  # a holder that may still be running


@frozen
class Observation:
    """An observer's view of a record.

    `unchanged_for` is how long (observer's monotonic clock) this exact record has been seen
    without change; `unchanged_for` for an unreadable record counts the same bytes unchanged.
    The observer's own heartbeat plays no part: expiry is judged on the record's terms.
    """

    current: LeaseRecord | Unreadable | None
    liveness: Liveness
    now_wall: float
    unchanged_for: float
    epoch_floor: int = 0  # highest epoch ever granted in this root, kept beside the record


class AcquireVerdict(enum.StrEnum):
    """Outcome of an acquire attempt (spec: lease.md#acquire)."""

    TAKE_FREE = "take_free"
    TAKE_RELEASED = "take_released"
    TAKE_DEAD_HOLDER = "take_dead_holder"
    TAKE_EXPIRED = "take_expired"
    TAKE_UNREADABLE = "take_unreadable"
    WAIT_CONFIRM = "wait_confirm"  # TTL passed by wall time, not yet confirmed on monotonic
    REFUSE_HELD = "refuse_held"
    REFUSE_UNREADABLE = "refuse_unreadable"


# An acquire that replaces a live-recorded holder: its governed tree becomes an orphan.
REPLACES = frozenset({AcquireVerdict.TAKE_DEAD_HOLDER, AcquireVerdict.TAKE_EXPIRED})

TAKES = frozenset(
    {
        AcquireVerdict.TAKE_FREE,
        AcquireVerdict.TAKE_RELEASED,
        AcquireVerdict.TAKE_DEAD_HOLDER,
        AcquireVerdict.TAKE_EXPIRED,
        AcquireVerdict.TAKE_UNREADABLE,
    }
)


@frozen
class AcquireDecision:
    """Verdict of `decide_acquire`; `write` is the record to store when the verdict takes."""

    verdict: AcquireVerdict
    write: LeaseRecord | None
    held_by: Holder | None = None
    wait_s: float = 0.0  # how much longer the observer must watch before it may take


def confirm_s(rec: LeaseRecord, foreign: bool = False) -> float:
    """How long an observer must see `rec` unchanged before wall time may expire it.

    The record's own terms: its heartbeat, never less than half its TTL — and the whole TTL
    for a foreign holder, whose wall clock is not comparable at all (lease.md#expiry). No
    observer's settings or clock can shorten it.
    """
    if foreign:
        return rec.ttl_s
    return max(rec.heartbeat_s or 0.0, rec.ttl_s / 2)


def is_expired(
    rec: LeaseRecord, now_wall: float, unchanged_for: float, foreign: bool = False
) -> bool:
    """Whether a live holder's lease may be taken over (spec: lease.md#expiry).

    Wall time past the TTL counts only when the observer has also seen the record unchanged for
    `confirm_s` on its own monotonic clock, so a wall-clock jump alone never expires a live
    lease. A record unchanged for longer than the TTL on the monotonic clock is expired whatever
    the wall clock says (a wall clock jumped backwards must not make a lease immortal). A
    foreign holder expires only by that second rule.
    """
    if unchanged_for > rec.ttl_s:
        return True
    wall_passed = now_wall - rec.renewed_at > rec.ttl_s
    return not foreign and wall_passed and unchanged_for >= confirm_s(rec)


def _expiry_wait(rec: LeaseRecord, obs: Observation, foreign: bool) -> float:
    by_monotonic = rec.ttl_s - obs.unchanged_for
    if foreign:
        return max(by_monotonic, 0.0)
    by_wall = max(rec.ttl_s - (obs.now_wall - rec.renewed_at), 0.0)
    combined = max(by_wall, confirm_s(rec) - obs.unchanged_for)
    return max(min(combined, by_monotonic), 0.0)


def replaced_trees(
    cur: LeaseRecord, verdict: AcquireVerdict, *, foreign: bool
) -> tuple[Child, ...]:
    """The trees a new holder inherits the duty to stop (control.md#run): those the record
    still lists, plus the child of a holder that died or expired while governing one (a
    released holder ended its own). A foreign holder's processes are not ours to stop."""
    if foreign:
        return ()
    found = cur.orphans
    if cur.child is not None and verdict in REPLACES and cur.child not in found:
        found = (*found, cur.child)
    return found[-MAX_ORPHANS:]


def without_orphans(
    current: LeaseRecord | Unreadable | None, epoch: int, nonce: str, stopped: tuple[Child, ...]
) -> LeaseRecord | None:
    """The record with the `stopped` trees off its list, when it is still ours (a new holder
    lists them again and stops them again: stopping a stopped tree finds nobody)."""
    if (
        isinstance(current, LeaseRecord)
        and current.epoch == epoch
        and current.holder.nonce == nonce
        and any(c in stopped for c in current.orphans)
    ):
        return replace(current, orphans=tuple(c for c in current.orphans if c not in stopped))
    return None


def with_own_tree_orphaned(
    current: LeaseRecord | Unreadable | None, epoch: int, nonce: str
) -> LeaseRecord | None:
    """The record listing its own `child` in `orphans` (the holder could not end that tree),
    when it is still ours and lists it not yet."""
    if (
        isinstance(current, LeaseRecord)
        and current.epoch == epoch
        and current.holder.nonce == nonce
        and current.child is not None
        and current.child not in current.orphans
    ):
        return replace(current, orphans=(*current.orphans, current.child)[-MAX_ORPHANS:])
    return None


def decide_acquire(
    obs: Observation,
    me: Holder,
    family: str,
    ttl_s: float,
    *,
    root_id: str | None = None,
    ports: tuple[int, int] | None = None,
    heartbeat_s: float | None = None,
    ready_within: float | None = None,
    scope: LeaseScope | None = None,
) -> AcquireDecision:
    """Decide whether `me` may take the family's lease now (in root instance `root_id`, for
    `scope`: None is the user scope);
    `ready_within` says the holder is not serving yet, and by when it will be or will have
    released (control.md#readiness)."""
    cur = obs.current
    floor = obs.epoch_floor

    def take(verdict: AcquireVerdict, prior_epoch: int) -> AcquireDecision:
        orphans: tuple[Child, ...] = ()
        extra: Extra = ()
        if isinstance(cur, LeaseRecord):
            extra = cur.extra  # the lease's keys this release does not know (versioning.md)
            orphans = replaced_trees(cur, verdict, foreign=obs.liveness is Liveness.FOREIGN)
        rec = LeaseRecord(
            orphans=orphans,
            extra=extra,
            family=family,
            epoch=max(prior_epoch, floor) + 1,
            holder=me,
            ttl_s=ttl_s,
            renewed_at=obs.now_wall,
            seq=0,
            state=LeaseState.HELD,
            root_id=root_id,
            ports=ports,
            heartbeat_s=heartbeat_s,
            ready=None if ready_within is None else Readiness(ready_within),
            scope=scope,
        )
        return AcquireDecision(verdict, rec)

    if cur is None:
        return take(AcquireVerdict.TAKE_FREE, 0)
    if isinstance(cur, Unreadable):
        # Any live holder sees the same bytes at its next heartbeat and retires, so after
        # one TTL of unchanged garbage nobody can still believe it holds (lease.md#unreadable).
        # A newer protocol's record that states its TTL is judged by that TTL, and its epoch
        # is never granted again.
        wait = ttl_s if cur.ttl_s is None else max(ttl_s, cur.ttl_s)
        if obs.unchanged_for > wait:
            return take(AcquireVerdict.TAKE_UNREADABLE, cur.epoch or 0)
        return AcquireDecision(
            AcquireVerdict.REFUSE_UNREADABLE, None, wait_s=wait - obs.unchanged_for
        )
    if cur.state is LeaseState.RELEASED:
        return take(AcquireVerdict.TAKE_RELEASED, cur.epoch)
    if obs.liveness not in SEEN:
        return take(AcquireVerdict.TAKE_DEAD_HOLDER, cur.epoch)
    if cur.holder.nonce == me.nonce:
        # Our own record: acquiring again is a no-op renewal, never a new epoch.
        return AcquireDecision(AcquireVerdict.REFUSE_HELD, None, held_by=cur.holder)
    foreign = obs.liveness is Liveness.FOREIGN
    if is_expired(cur, obs.now_wall, obs.unchanged_for, foreign):
        return take(AcquireVerdict.TAKE_EXPIRED, cur.epoch)
    wall_passed = not foreign and obs.now_wall - cur.renewed_at > cur.ttl_s
    verdict = AcquireVerdict.WAIT_CONFIRM if wall_passed else AcquireVerdict.REFUSE_HELD
    wait = _expiry_wait(cur, obs, foreign)
    return AcquireDecision(verdict, None, held_by=cur.holder, wait_s=wait)


class RenewVerdict(enum.StrEnum):
    """Outcome of a heartbeat (spec: lease.md#renew)."""

    RENEWED = "renewed"
    SUPERSEDED = "superseded"  # renewed is refused: a newer version asked us to go
    STOP_REQUESTED = "stop_requested"  # renewal refused: a stop was asked through the record
    SELF_EXPIRED = "self_expired"  # no successful renew for > TTL on our clock: fence ourselves
    LOST = "lost"  # the record no longer names us at our epoch
    GONE = "gone"  # the record does not exist
    UNREADABLE = "unreadable"


RenewDecision = Decision[RenewVerdict]  # `write` is set only for RENEWED


def decide_renew(
    current: LeaseRecord | Unreadable | None,
    epoch: int,
    nonce: str,
    since_last_renew: float,
    now_wall: float,
) -> RenewDecision:
    """Decide a heartbeat: renew only while the record still names us at our epoch."""
    if current is None:
        return Decision(RenewVerdict.GONE, None)
    if isinstance(current, Unreadable):
        return Decision(RenewVerdict.UNREADABLE, None)
    if (
        current.epoch != epoch
        or current.holder.nonce != nonce
        or current.state is not LeaseState.HELD
    ):
        return Decision(RenewVerdict.LOST, None)
    # spec: lease.md#fencing — checked after ownership so a stale holder reports why it lost.
    if since_last_renew > current.ttl_s:
        return Decision(RenewVerdict.SELF_EXPIRED, None)
    if current.superseded_by is not None and is_newer(
        current.superseded_by.version, current.holder.version
    ):
        return Decision(RenewVerdict.SUPERSEDED, None)
    if current.stop_requested is not None:
        return Decision(RenewVerdict.STOP_REQUESTED, None)
    renewed = replace(current, renewed_at=now_wall, seq=current.seq + 1)
    return Decision(RenewVerdict.RENEWED, renewed)


class LeaseStatus(enum.StrEnum):
    """A lease as a report shows it (spec: lease.md#status)."""

    HELD = "held"
    EXPIRED = "expired"  # held by a dead holder, or past its TTL by the record's own clock
    FOREIGN = "foreign"  # held by a process in another boot or namespace (lease.md#foreign)
    RELEASED = "released"
    ABSENT = "absent"
    UNREADABLE = "unreadable"


def lease_status(
    current: LeaseRecord | Unreadable | None, liveness: Liveness | None, now_wall: float
) -> LeaseStatus:
    """The one status rule every report uses (`tenure auth doctor`, `tenure ls`, the survey).

    A report may say `expired` on the wall clock alone; a takeover never does: it needs
    `is_expired`'s confirmation on the observer's monotonic clock (lease.md#expiry).
    """
    if current is None:
        return LeaseStatus.ABSENT
    if isinstance(current, Unreadable):
        return LeaseStatus.UNREADABLE
    if current.state is LeaseState.RELEASED:
        return LeaseStatus.RELEASED
    if liveness is Liveness.FOREIGN:
        return LeaseStatus.FOREIGN  # its wall clock and pids are not ours to judge
    if liveness is not None and liveness is not Liveness.ALIVE:
        return LeaseStatus.EXPIRED
    if now_wall - current.renewed_at > current.ttl_s:
        return LeaseStatus.EXPIRED
    return LeaseStatus.HELD


def with_child(
    current: LeaseRecord | Unreadable | None,
    epoch: int,
    nonce: str,
    child: Child | None,
    port: int | None = None,
) -> LeaseRecord | None:
    """The record naming `child` as the holder's governed process (None: the same as now)
    and `port` as the holder's, when given; None unless the record is ours. A tree governed
    again (a rollback takes back the tree it had listed) is no longer anyone's to stop: it
    leaves `orphans`."""
    if (
        isinstance(current, LeaseRecord)
        and current.epoch == epoch
        and current.holder.nonce == nonce
        and current.state is LeaseState.HELD
    ):
        holder = current.holder if port is None else replace(current.holder, port=port)
        if child is None:
            return replace(current, holder=holder)
        orphans = tuple(o for o in current.orphans if not _same_tree(o, child))
        return replace(current, child=child, holder=holder, orphans=orphans)
    return None


def _same_tree(a: Child, b: Child) -> bool:
    if a.tree is not None and b.tree is not None:
        return a.tree == b.tree
    return (a.pid, a.start_ticks, a.create_time) == (b.pid, b.start_ticks, b.create_time)


def with_ready(
    current: LeaseRecord | Unreadable | None, epoch: int, nonce: str, now_wall: float
) -> LeaseRecord | None:
    """The record saying its holder is ready (serving) since `now_wall`, when it is still
    ours and said it was starting (control.md#readiness)."""
    if (
        isinstance(current, LeaseRecord)
        and current.epoch == epoch
        and current.holder.nonce == nonce
        and current.state is LeaseState.HELD
        and current.ready is not None
        and current.ready.at is None
    ):
        return replace(current, ready=replace(current.ready, at=now_wall))
    return None
