"""The holder lifecycle as data (pure): states, events, and ONE transition table.

The holder driver (`tenure.holder.governor.Governor`) only turns what it observes into an
`Event`, asks `step` for the transition, and performs the `Action` it returns. Every
(state, event) pair is a row of `TABLE`; docs/protocol/lease.md#holder-lifecycle lists the
same rows and a test compares the two. An event the table does not expect is a retirement
(reason `fault`), never a silently dead thread.
"""

from __future__ import annotations

import enum

from tenure.core.values import frozen


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
    NOT_READY = "not_ready"  # a `tenure run` child did not serve within its ready bound
    UPGRADED = "upgraded"  # a watched file of the holder's install changed (control.md#installs)
    SCOPE_GONE = "scope_gone"  # a scoped holder's directory was removed, moved or replaced


# Not a retirement of the holder that writes it: the tombstone a superseded `tenure run`
# wrapper writes for the successor it replaced because that one failed before it was ready
# (control.md#readiness).
ROLLED_BACK = "rolled_back"


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
    NOT_READY = "not_ready"  # what the holder governs was not ready in time, or ended first
    UPGRADED = "upgraded"  # a new install of what the holder runs settled on disk
    SCOPE_GONE = "scope_gone"  # the scope's path no longer leads to its directory


class Action(enum.StrEnum):
    """What the driver must do now."""

    NONE = "none"  # nothing: keep going (or keep leaving)
    START = "start"  # we hold: start heartbeating and serving
    RETIRE = "retire"  # stop taking work, drain (bounded), release by CAS, tombstone
    RETIRE_NOW = "retire_now"  # as RETIRE, without waiting for in-flight work
    RETIRE_SILENTLY = "retire_silently"  # fenced: stop, and write nothing into the root
    CUT_DRAIN = "cut_drain"  # already retiring: stop waiting for in-flight work
    SILENCE = "silence"  # already retiring, and the root went: write nothing on the way out
    FINISH = "finish"  # the retirement is over (released and recorded, or silent): end
    EXIT = "exit"  # nothing was held: the process may end at once


@frozen
class Transition:
    """One row: where the holder goes, what to do, and (for retirements) why."""

    next: State
    action: Action
    reason: RetireReason | None = None


A, H, R, X = State.ACQUIRING, State.HOLDING, State.RETIRING, State.RETIRED
E = Event


def _leave(action: Action, reason: RetireReason) -> Transition:
    return Transition(R, action, reason)


# The rows, state by state, as docs/protocol/lease.md#holder-lifecycle lists them; an event a
# state does not name takes that state's OTHERWISE row.
ROWS: dict[State, dict[Event, Transition]] = {
    A: {
        E.ACQUIRED: Transition(H, Action.START),
        E.REFUSED: Transition(X, Action.EXIT),
    },
    H: {
        E.RENEWED: Transition(H, Action.NONE),
        E.RENEW_FAILED: Transition(H, Action.NONE),  # retried at the next beat
        E.LEASE_LOST: _leave(Action.RETIRE, RetireReason.LEASE_LOST),
        E.LEASE_EXPIRED: _leave(Action.RETIRE, RetireReason.LEASE_EXPIRED),
        E.SUPERSEDED: _leave(Action.RETIRE, RetireReason.SUPERSEDED),
        E.RECORD_GONE: _leave(Action.RETIRE, RetireReason.RECORD_GONE),
        E.RECORD_UNREADABLE: _leave(Action.RETIRE, RetireReason.RECORD_UNREADABLE),
        E.ROOT_GONE: _leave(Action.RETIRE_SILENTLY, RetireReason.ROOT_GONE),
        E.IDLE: _leave(Action.RETIRE, RetireReason.IDLE),
        E.RETIRE_REQUESTED: _leave(Action.RETIRE, RetireReason.REQUESTED),
        E.SHUTDOWN_REQUESTED: _leave(Action.RETIRE_NOW, RetireReason.SHUTDOWN),
        E.SIGNALLED: _leave(Action.RETIRE, RetireReason.SIGNAL),
        E.CLOSED: _leave(Action.RETIRE, RetireReason.SHUTDOWN),
        E.FAULT: _leave(Action.RETIRE, RetireReason.FAULT),
        E.NOT_READY: _leave(Action.RETIRE, RetireReason.NOT_READY),
        E.UPGRADED: _leave(Action.RETIRE, RetireReason.UPGRADED),
        E.SCOPE_GONE: _leave(Action.RETIRE, RetireReason.SCOPE_GONE),
    },
    R: {
        E.DRAINED: Transition(X, Action.FINISH),
        E.SHUTDOWN_REQUESTED: Transition(R, Action.CUT_DRAIN),  # "stop now"
        E.SIGNALLED: Transition(R, Action.CUT_DRAIN),  # a second Ctrl-C
        E.ROOT_GONE: Transition(R, Action.SILENCE),  # removed or replaced during the drain
    },
    X: {},
}
OTHERWISE: dict[State, Transition] = {
    A: Transition(X, Action.EXIT),  # nothing is held: nothing to drain, release or record
    H: _leave(Action.RETIRE, RetireReason.FAULT),  # cannot happen while holding: leave
    R: Transition(R, Action.NONE),  # already leaving
    X: Transition(X, Action.NONE),
}
LEAVING = frozenset({Action.RETIRE, Action.RETIRE_NOW, Action.RETIRE_SILENTLY})

TABLE: dict[tuple[State, Event], Transition] = {
    (state, event): ROWS[state].get(event, OTHERWISE[state]) for state in State for event in Event
}


def step(state: State, event: Event) -> Transition:
    """The transition for `event` in `state`; an unknown pair is a retirement (`fault`)."""
    found = TABLE.get((state, event))
    return found if found is not None else OTHERWISE[state]


def event_for(reason: RetireReason, drain: bool = False) -> Event:
    """The event behind a retirement asked for by reason (the public `retire()` API): a
    shutdown with `drain` is the owner closing the hold, without it "stop now"."""
    if reason is RetireReason.SHUTDOWN:
        return Event.CLOSED if drain else Event.SHUTDOWN_REQUESTED
    named = {
        RetireReason.REQUESTED: Event.RETIRE_REQUESTED,
        RetireReason.FAULT: Event.FAULT,
        RetireReason.SIGNAL: Event.SIGNALLED,
    }
    # Not `.get(reason, Event(...))`: that builds the default first, and `Event("signal")`
    # does not exist (retire(SIGNAL) and retire(REQUESTED) raised ValueError).
    return named[reason] if reason in named else Event(reason.value)
