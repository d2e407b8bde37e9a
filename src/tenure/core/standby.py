"""A superseded `tenure run` wrapper in standby (pure): hand over, or take its place back.

The wrapper stopped its tree and released; it watches the record until its successor is ready
(handed over), or has failed before it was — released while still starting, or died — and
then takes the lease back through a normal acquire (a rollback). It waits at most its
successor's stated ready bound plus one of its own heartbeats, and at most `arrival_s` for a
successor to take the lease at all. spec: docs/protocol/control.md#readiness
"""

from __future__ import annotations

import enum

from tenure.core.lease import SEEN, Liveness
from tenure.core.record import LeaseRecord, LeaseState, Unreadable
from tenure.core.values import frozen


class Standby(enum.StrEnum):
    """What a wrapper in standby does now."""

    WAIT = "wait"
    HANDED_OVER = "handed_over"  # the successor serves (or never said it would be starting)
    ROLL_BACK = "roll_back"  # the successor failed before it was ready: take the lease back
    GIVE_UP = "give_up"  # no successor came, it took too long, or the root went


@frozen
class StandbyFacts:
    """What the wrapper knows: the record now, its holder's liveness, its own released epoch,
    how long it has waited (monotonic) since it released and since it first saw a successor."""

    current: LeaseRecord | Unreadable | None
    liveness: Liveness | None
    my_epoch: int
    waited_s: float
    successor_for_s: float | None  # None: no successor seen yet
    successor_epoch: int | None  # the first holder after us: the one this standby judges
    heartbeat_s: float  # the waiting wrapper's own heartbeat
    arrival_s: float  # how long a successor may take to take the lease


def decide_standby(facts: StandbyFacts) -> Standby:
    """The standby's next step (control.md#readiness)."""
    cur = facts.current
    if cur is None:
        return Standby.GIVE_UP  # the record went with its root: nothing to come back to
    if not isinstance(cur, LeaseRecord) or cur.epoch <= facts.my_epoch:
        # Nobody took the lease after us yet (or its record cannot be read now).
        return Standby.GIVE_UP if facts.waited_s > facts.arrival_s else Standby.WAIT
    if facts.successor_epoch is not None and cur.epoch != facts.successor_epoch:
        return Standby.HANDED_OVER  # someone came after our successor: not ours to judge
    gone = cur.state is LeaseState.RELEASED or facts.liveness not in SEEN
    if not cur.starting:
        return Standby.HANDED_OVER  # ready, or a holder that never said it was starting
    if gone:
        return Standby.ROLL_BACK  # it left (or died) while still starting
    assert cur.ready is not None  # `starting` says so
    bound = cur.ready.within_s + facts.heartbeat_s
    waited = facts.successor_for_s or 0.0
    return Standby.GIVE_UP if waited > bound else Standby.WAIT
