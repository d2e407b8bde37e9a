"""The driver of the holder lifecycle table: state, work in flight, heartbeats, retirement.

Every state change goes through `handle`, which asks `tenure.core.lifecycle.step` and performs
the action it returns; nothing here decides on its own. What renewing, releasing and the root
mean for a lease is the `Governor`'s (holder/governor.py), behind three hooks.
spec: docs/protocol/lease.md#holder-lifecycle
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator

from tenure.core.lease import RenewVerdict
from tenure.core.lifecycle import (
    LEAVING,
    Action,
    Event,
    RetireReason,
    State,
    Transition,
    event_for,
    step,
)
from tenure.core.timing import Timing
from tenure.errors import LeaseLost, Retiring

# What a renewal's verdict is to the lifecycle.
RENEW_TO_EVENT = {
    RenewVerdict.RENEWED: Event.RENEWED,
    RenewVerdict.LOST: Event.LEASE_LOST,
    RenewVerdict.SELF_EXPIRED: Event.LEASE_EXPIRED,
    RenewVerdict.SUPERSEDED: Event.SUPERSEDED,
    RenewVerdict.STOP_REQUESTED: Event.RETIRE_REQUESTED,
    RenewVerdict.GONE: Event.RECORD_GONE,
    RenewVerdict.UNREADABLE: Event.RECORD_UNREADABLE,
}


class Driver:
    """One holder's walk through the lifecycle table (subclassed by `Governor`)."""

    family: str

    def __init__(
        self,
        timing: Timing,
        mono: Callable[[], float],
        on_retire: Callable[[RetireReason], None] | None,
    ) -> None:
        self.timing = timing
        self._pid = os.getpid()
        self._on_retire = on_retire
        self._mono = mono
        self._cond = threading.Condition()
        self._in_flight = 0
        self._last_activity = mono()
        self._last_renew = mono()
        self.epoch = 0
        self.state = State.ACQUIRING
        self._retiring: RetireReason | None = None
        self._retired = threading.Event()
        # Called (outside the lock) with the reason when retirement begins; `tenure.hold` uses it.
        self.on_retiring: list[Callable[[RetireReason], None]] = []
        self.on_retired: list[Callable[[RetireReason], None]] = []  # after the release
        self._stop_beat = threading.Event()
        self._no_drain = threading.Event()
        self._silent = False  # set by the table's retire_silently / silence: write nothing
        self._thread: threading.Thread | None = None
        self.last_fault: str | None = None  # the latest transient heartbeat error, for health
        self._release_gate: threading.Event | None = None

    # --- hooks: what renewing, the root and releasing mean for a lease ---------------------

    def _renew(self) -> Event:
        """Renew if we may; what happened, as a lifecycle event."""
        raise NotImplementedError

    def _root_changed_quietly(self) -> bool:
        """Whether the root we hold in is gone or replaced (True when we cannot tell)."""
        raise NotImplementedError

    def _release_and_record(self, reason: RetireReason) -> None:
        """Release the lease by CAS and append a tombstone."""
        raise NotImplementedError

    def _await_news(self, timeout: float) -> bool:
        """Between heartbeats: wait up to `timeout` (less when the stop is asked); whether the
        record changed in a way that ends this tenure (a newer version's mark, a stop asked,
        another holder), so the heartbeat runs now."""
        self._stop_beat.wait(timeout)
        return False

    def _stop_watching(self) -> None:
        """The heartbeat thread ends: let go of what `_await_news` holds."""

    @property
    def forked(self) -> bool:
        """True in a child forked from the holding process: it never speaks for the lease.

        spec: lease.md#fork — the child must not write, release, tombstone or heartbeat, and
        must not take the parent's locks (another thread may have held them at fork time).
        """
        return os.getpid() != self._pid

    def release_after(self, gate: threading.Event) -> None:
        """Retirement releases the lease only once `gate` is set (within the drain bound):
        `tenure run` sets it when its whole tree is gone."""
        self._release_gate = gate

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the heartbeat thread (call after `acquire`)."""
        self._thread = threading.Thread(
            target=self._beat_loop, name="tenure-heartbeat", daemon=True
        )
        self._thread.start()

    def holding(self) -> bool:
        """True while this process may act as holder: not retiring and within its own TTL.

        A holder whose own clock says its lease ran out retires the moment anyone asks, not
        at its next heartbeat: the clock fence is the table's `lease_expired` (lease.md#fencing).
        """
        if self.forked:
            return False
        if self.state is State.HOLDING and self._mono() - self._last_renew > self.timing.ttl_s:
            self.handle(Event.LEASE_EXPIRED)
        return self.state is State.HOLDING

    @property
    def retiring(self) -> RetireReason | None:
        """The retirement reason once retirement began."""
        return self._retiring

    @property
    def in_flight(self) -> int:
        """Units of work in progress."""
        return self._in_flight

    @contextlib.contextmanager
    def work(self) -> Iterator[None]:
        """Mark one unit of in-flight work; refuses (`Retiring`) when retiring or no longer
        holder. A holder whose own clock says its lease ran out retires at once, not at its
        next heartbeat (spec: lease.md#fencing)."""
        if self.forked:
            raise Retiring(f"{self.family}: a forked child does not hold its parent's lease")
        accepted = self.holding()
        with self._cond:
            # Retirement may have begun since: the drain counts only work taken while holding.
            accepted = accepted and self.state is State.HOLDING
            if accepted:
                self._in_flight += 1
                self._last_activity = self._mono()
        if not accepted:
            raise Retiring(f"{self.family} daemon is not accepting work")
        try:
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._last_activity = self._mono()
                self._cond.notify_all()

    def _beat_loop(self) -> None:
        # A heartbeat every `heartbeat_s`; between them the record is watched, so a
        # supersession or a stop asked through it is acted on at once, not at the next beat
        # (lease.md#supersession).
        next_beat = self._mono() + self.timing.heartbeat_s
        try:
            while not self._stop_beat.is_set():
                pause = next_beat - self._mono()
                news = pause > 0 and self._await_news(pause)
                if self._stop_beat.is_set():
                    return
                if self._mono() < next_beat and not news:
                    continue
                next_beat = self._mono() + self.timing.heartbeat_s
                if self.heartbeat().next is not State.HOLDING:
                    return
        finally:
            self._stop_watching()

    def heartbeat(self) -> Transition:
        """One heartbeat, acted on: renew if we may and feed what happened to the table."""
        try:
            event = self._renew()
        except Exception as exc:
            # spec: lease.md#faults — never a dead heartbeat thread in a live daemon.
            self.last_fault = f"{type(exc).__name__}: {exc}"
            print(f"tenure: heartbeat failed: {self.last_fault}", file=sys.stderr)
            event = Event.FAULT
        return self.handle(event)

    # --- the lifecycle table drives everything below ---------------------------------------

    def handle(self, event: Event) -> Transition:
        """Feed one event to the lifecycle table and perform the action it returns."""
        if self.forked:
            return step(self.state, event)  # a forked child acts on nothing (lease.md#fork)
        with self._cond:
            transition = step(self.state, event)
            self.state = transition.next
            action = transition.action
            if action in LEAVING:
                assert transition.reason is not None
                self._retiring = transition.reason
            if action in (Action.RETIRE_SILENTLY, Action.SILENCE):
                self._silent = True  # fenced: nothing more is written into the root
            if action in (Action.RETIRE_NOW, Action.CUT_DRAIN):
                self._no_drain.set()  # "stop now" also cuts short a drain already running
                self._cond.notify_all()
        if action in LEAVING:
            assert transition.reason is not None
            for callback in self.on_retiring:
                callback(transition.reason)
            self._stop_beat.set()
            threading.Thread(
                target=self._finish, args=(transition.reason,), name="tenure-retire", daemon=True
            ).start()
        elif action is Action.EXIT:
            self._retired.set()  # nothing was held: nothing to drain, release or record
        return transition

    def retire(self, reason: RetireReason, drain: bool = True) -> None:
        """Begin retirement in the background (idempotent); `wait_retired` tells when done."""
        self.handle(event_for(reason, drain))
        if not drain:
            self.handle(Event.SHUTDOWN_REQUESTED)

    def _finish(self, reason: RetireReason) -> None:
        try:
            deadline = self._mono() + self.timing.drain_s
            with self._cond:
                while self._in_flight and self._mono() < deadline and not self._no_drain.is_set():
                    self._cond.wait(deadline - self._mono())
            if self._release_gate is not None:
                # What this holder governs must be gone before the lease is: break before make.
                self._release_gate.wait(max(deadline - self._mono(), 0.0))
            if self._root_changed_quietly():
                self.handle(Event.ROOT_GONE)  # removed or replaced meanwhile: `silence`
            if not self._silent:
                self._release_and_record(reason)
        finally:
            self.handle(Event.DRAINED)
            if self._on_retire is not None:
                self._on_retire(reason)
            for callback in self.on_retired:
                callback(reason)
            self._retired.set()

    def wait_retired(self, timeout: float | None = None) -> RetireReason | None:
        """Block until retirement finished; the reason, or None on timeout."""
        if not self._retired.wait(timeout):
            return None
        return self._retiring

    def ensure_holding(self) -> None:
        """Raise `LeaseLost` unless this process may still act as holder."""
        if not self.holding():
            raise LeaseLost(f"{self.family} lease at epoch {self.epoch} is no longer ours")
