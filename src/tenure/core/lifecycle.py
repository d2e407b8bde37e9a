"""The holder lifecycle as data (pure): states, events, and ONE transition table.

The holder driver (`tenure.holder.governor.Governor`) only turns what it observes into an
`Event`, asks `step` for the transition, and performs the `Action` it returns. Every
(state, event) pair is a row of `TABLE`; docs/protocol/lease.md#holder-lifecycle lists the
same rows and a test compares the two. An event the table does not expect is a retirement
(reason `fault`), never a silently dead thread.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class RetireReason(enum.StrEnum):
    """Why a daemon left (written to the tombstone log)."""

    LEASE_LOST = "lease_lost"
    LEASE_EXPIRED = "lease_expired"
    SUPERSEDED = "superseded"
    IDLE = "idle"
    ROOT_GONE = "root_gone"
    RECORD_GONE = "record_gone"
    RECORD_UNREADABLE = "record_unreadable"
    REQUESTED = "requested"  # authenticated /api/retire
    SHUTDOWN = "shutdown"  # authenticated /api/shutdown, or the holder's owner closed it
    SIGNAL = "signal"  # SIGTERM or SIGINT to a `tenure.hold` daemon
    FAULT = "fault"  # an unexpected error or event: leave rather than run ungoverned


class State(enum.StrEnum):
    """Where a holder is in its life."""

    ACQUIRING = "acquiring"
    HOLDING = "holding"
    RETIRING = "retiring"
    RETIRED = "retired"


class Event(enum.StrEnum):
    """What the driver observed."""

    ACQUIRED = "acquired"  # the lease is ours at a new epoch
    REFUSED = "refused"  # another holder has it (or the record is unreadable)
    RENEWED = "renewed"  # a heartbeat wrote the record
    RENEW_FAILED = "renew_failed"  # a transient I/O error, before our own lease deadline
    LEASE_LOST = "lease_lost"  # the record names another holder, epoch or state
    LEASE_EXPIRED = "lease_expired"  # no renewal for longer than the TTL on our clock
    SUPERSEDED = "superseded"  # a newer version asked (record or /api/retire)
    RECORD_GONE = "record_gone"
    RECORD_UNREADABLE = "record_unreadable"
    ROOT_GONE = "root_gone"  # the root was removed or replaced by another instance
    IDLE = "idle"  # no work for longer than the idle constant
    RETIRE_REQUESTED = "retire_requested"  # authenticated /api/retire
    SHUTDOWN_REQUESTED = "shutdown_requested"  # /api/shutdown or a signal: no drain
    SIGNALLED = "signalled"  # SIGTERM / SIGINT under `tenure.hold`: drain, release, record
    CLOSED = "closed"  # the owner ended the hold (left `hold`'s block): drain, release, record
    DRAINED = "drained"  # retirement finished its drain (or its bound passed)
    FAULT = "fault"  # an unexpected exception in the driver


class Action(enum.StrEnum):
    """What the driver must do now."""

    NONE = "none"  # nothing: keep going (or keep leaving)
    START = "start"  # we hold: start heartbeating and serving
    RETIRE = "retire"  # stop taking work, drain (bounded), release by CAS, tombstone
    RETIRE_NOW = "retire_now"  # as RETIRE, without waiting for in-flight work
    RETIRE_SILENTLY = "retire_silently"  # fenced: stop, and write nothing into the root
    CUT_DRAIN = "cut_drain"  # already retiring: stop waiting for in-flight work
    EXIT = "exit"  # the process may end


@dataclass(frozen=True, slots=True)
class Transition:
    """One row: where the holder goes, what to do, and (for retirements) why."""

    next: State
    action: Action
    reason: RetireReason | None = None


H, R, A, X = State.HOLDING, State.RETIRING, State.ACQUIRING, State.RETIRED

# Events that end a holding lease, with the retirement they cause.
_LEAVING: dict[Event, tuple[Action, RetireReason]] = {
    Event.LEASE_LOST: (Action.RETIRE, RetireReason.LEASE_LOST),
    Event.LEASE_EXPIRED: (Action.RETIRE, RetireReason.LEASE_EXPIRED),
    Event.SUPERSEDED: (Action.RETIRE, RetireReason.SUPERSEDED),
    Event.RECORD_GONE: (Action.RETIRE, RetireReason.RECORD_GONE),
    Event.RECORD_UNREADABLE: (Action.RETIRE, RetireReason.RECORD_UNREADABLE),
    Event.ROOT_GONE: (Action.RETIRE_SILENTLY, RetireReason.ROOT_GONE),
    Event.IDLE: (Action.RETIRE, RetireReason.IDLE),
    Event.RETIRE_REQUESTED: (Action.RETIRE, RetireReason.REQUESTED),
    Event.SHUTDOWN_REQUESTED: (Action.RETIRE_NOW, RetireReason.SHUTDOWN),
    Event.SIGNALLED: (Action.RETIRE, RetireReason.SIGNAL),
    Event.CLOSED: (Action.RETIRE, RetireReason.SHUTDOWN),
    Event.FAULT: (Action.RETIRE, RetireReason.FAULT),
}

_UNEXPECTED_WHILE_HOLDING = Transition(R, Action.RETIRE, RetireReason.FAULT)


def _build() -> dict[tuple[State, Event], Transition]:
    table: dict[tuple[State, Event], Transition] = {}
    for event in Event:
        # Acquiring: only ACQUIRED leads on; anything else means nothing is held: exit.
        table[A, event] = (
            Transition(H, Action.START) if event is Event.ACQUIRED else Transition(X, Action.EXIT)
        )
        if event in (Event.RENEWED, Event.RENEW_FAILED):
            table[H, event] = Transition(H, Action.NONE)  # a failed renew is retried next beat
        elif event in _LEAVING:
            action, reason = _LEAVING[event]
            table[H, event] = Transition(R, action, reason)
        else:  # ACQUIRED, REFUSED, DRAINED cannot happen while holding
            table[H, event] = _UNEXPECTED_WHILE_HOLDING
        # Retiring: already leaving; only the end of the drain, or "stop now", changes anything.
        if event is Event.DRAINED:
            table[R, event] = Transition(X, Action.EXIT)
        elif event in (Event.SHUTDOWN_REQUESTED, Event.SIGNALLED):
            # "Stop now", or a second Ctrl-C: stop waiting for in-flight work.
            table[R, event] = Transition(R, Action.CUT_DRAIN)
        else:
            table[R, event] = Transition(R, Action.NONE)
        table[X, event] = Transition(X, Action.NONE)
    return table


TABLE: dict[tuple[State, Event], Transition] = _build()


def step(state: State, event: Event) -> Transition:
    """The transition for `event` in `state`; an unknown pair is a retirement (`fault`)."""
    found = TABLE.get((state, event))
    if found is not None:
        return found
    if state in (State.RETIRING, State.RETIRED):
        return Transition(state, Action.NONE)
    return _UNEXPECTED_WHILE_HOLDING


def event_for(reason: RetireReason, drain: bool = False) -> Event:
    """The event behind a retirement asked for by reason (the public `retire()` API): a
    shutdown with `drain` is the owner closing the hold, without it "stop now"."""
    if reason is RetireReason.SHUTDOWN:
        return Event.CLOSED if drain else Event.SHUTDOWN_REQUESTED
    return {
        RetireReason.REQUESTED: Event.RETIRE_REQUESTED,
        RetireReason.FAULT: Event.FAULT,
        RetireReason.SIGNAL: Event.SIGNALLED,
    }.get(reason, Event(reason.value))
