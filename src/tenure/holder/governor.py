"""The daemon side of the protocol: hold the lease, heartbeat, and retire on your own.

A daemon creates a `Governor`, calls `acquire()`, `start()`, wraps each unit of work in
`with governor.work():`, and waits on `wait_retired()`. spec: docs/protocol/lease.md#governor
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from tenure.adapters import config, platform
from tenure.adapters.location import here
from tenure.adapters.procinfo import own_identity
from tenure.adapters.root import RootIdentity, ensure_root_id, root_identity, root_stamp
from tenure.adapters.stopping import stop_in_background
from tenure.adapters.store import LeaseStore
from tenure.adapters.tree import Tree, stop_tree
from tenure.core import lease as machine
from tenure.core.identity import ProcessIdentity, is_foreign
from tenure.core.lease import (
    TAKES,
    AcquireDecision,
    AcquireVerdict,
    RenewDecision,
    RenewVerdict,
)
from tenure.core.lifecycle import Action, Event, RetireReason, State, Transition, event_for, step
from tenure.core.record import Child, Holder, LeaseRecord, LeaseState, Unreadable
from tenure.core.timing import TREE_STOP, Timing
from tenure.errors import (
    LeaseHeld,
    LeaseLost,
    LeaseUnreadable,
    LockTimeout,
    Retiring,
    RootError,
)
from tenure.protocol.observer import Watcher, observe, release_and_record
from tenure.protocol.supersede import lease_held

__all__ = ["ACQUIRE_POLL_S", "Governor", "RetireReason", "Watcher", "observe"]

ACQUIRE_POLL_S = 0.05


_RENEW_TO_EVENT = {
    RenewVerdict.RENEWED: Event.RENEWED,
    RenewVerdict.LOST: Event.LEASE_LOST,
    RenewVerdict.SELF_EXPIRED: Event.LEASE_EXPIRED,
    RenewVerdict.SUPERSEDED: Event.SUPERSEDED,
    RenewVerdict.STOP_REQUESTED: Event.RETIRE_REQUESTED,
    RenewVerdict.GONE: Event.RECORD_GONE,
    RenewVerdict.UNREADABLE: Event.RECORD_UNREADABLE,
}
_LEAVING_ACTIONS = frozenset({Action.RETIRE, Action.RETIRE_NOW, Action.RETIRE_SILENTLY})


class Governor:
    """Holds one family's lease for this process and retires it when the protocol says so."""

    def __init__(
        self,
        root: Path,
        family: str,
        version: str,
        *,
        port: int | None = None,
        ports: tuple[int, int] | None = None,
        timing: Timing | None = None,
        control: bool = False,
        on_retire: Callable[[RetireReason], None] | None = None,
        mono: Callable[[], float] = platform.lease_clock,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.ports = ports  # the family's port range, recorded for doctor, ls and reapers
        self.store = LeaseStore(root, family)
        self.root = root
        self.family = family
        self.version = version
        self.timing = timing or config.timing()
        ident = own_identity()
        self.me = Holder(
            pid=ident.pid,
            create_time=ident.create_time,
            nonce=secrets.token_hex(8),
            version=version,
            port=port,
            started_at=wall(),
            start_ticks=ident.start_ticks,
            where=ident.where,
            control=control and port is not None,
        )
        self._on_retire = on_retire
        self._mono, self._wall = mono, wall
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
        self._stop_beat = threading.Event()
        self._no_drain = threading.Event()
        self._finishing = False
        self._thread: threading.Thread | None = None
        # One observer memory per process: expiry is confirmed across acquire calls.
        self._watcher = Watcher(mono)
        # The root instance the lease was granted in; another instance means we are fenced.
        self._root_ident: RootIdentity | None = None
        self._root_stamp: tuple[int, int, int] | None = None
        self._fenced = False
        self._orphan: LeaseRecord | None = None  # a replaced holder whose tree must be stopped
        self._orphan_stop: threading.Thread | None = None
        self.last_fault: str | None = None  # the latest transient heartbeat error, for health
        self._abandoned = threading.Event()  # the caller gave up while we were acquiring
        self._attempt = threading.Lock()  # one acquire attempt, or `abandon`, at a time
        self._release_gate: threading.Event | None = None

    @property
    def forked(self) -> bool:
        """True in a child forked from the holding process: it never speaks for the lease.

        spec: lease.md#fork — the child must not write, release, tombstone or heartbeat, and
        must not take the parent's locks (another thread may have held them at fork time).
        """
        return os.getpid() != self.me.pid

    # --- acquiring -------------------------------------------------------------------------

    def acquire(
        self, wait_s: float = 0.0, on_wait: Callable[[AcquireDecision], None] | None = None
    ) -> LeaseRecord:
        """Take the lease, waiting up to `wait_s` for an expiring holder; raise if held."""
        if self.state is not State.ACQUIRING:
            # spec: lease.md#holder-lifecycle — a holder that retired never holds again.
            raise Retiring(f"{self.family} governor is {self.state.value}: start a new one")
        deadline = self._mono() + wait_s
        told = False
        while True:
            # One attempt at a time against `abandon`, so a caller that gives up never leaves
            # a lease taken behind its back (lease.md#holder-lifecycle).
            with self._attempt:
                if self._abandoned.is_set():
                    raise Retiring(f"{self.family}: the caller gave up acquiring the lease")
                decision = self._attempt_once()
                if decision.write is not None:
                    return decision.write
            if self._mono() >= deadline:
                break
            if on_wait is not None and not told:
                on_wait(decision)
                told = True
            self._abandoned.wait(ACQUIRE_POLL_S)
        current = self.store.read()
        if isinstance(current, Unreadable):
            raise LeaseUnreadable(self.store.record_path, current.reason)
        if isinstance(current, LeaseRecord) and current.state is LeaseState.HELD:
            raise lease_held(current)  # names where a foreign holder lives, and its expiry
        held = decision.held_by or self.me
        epoch = current.epoch if isinstance(current, LeaseRecord) else 0
        raise LeaseHeld(self.family, held.pid, held.version, held.port, epoch)

    def _attempt_once(self) -> AcquireDecision:
        """One acquire attempt; the decision, with `write` set only when we took the lease."""
        ident = root_identity(self.root)
        if ident is not None and ident.root_id is None:
            ensure_root_id(self.root)  # a root made by hand gets its instance id now
            ident = root_identity(self.root)
        root_id = None if ident is None else ident.root_id
        decision = self.store.transact(self._acquire_decider(self._watcher, root_id))
        if decision.verdict not in TAKES or decision.write is None:
            return AcquireDecision(decision.verdict, None, decision.held_by, decision.wait_s)
        self._stop_orphan()
        self._root_ident = ident
        self._root_stamp = root_stamp(self.root)
        self.epoch = decision.write.epoch
        self.handle(Event.ACQUIRED)
        self._last_renew = self._mono()
        self._last_activity = self._mono()
        return decision

    def _acquire_decider(
        self, watcher: Watcher, root_id: str | None
    ) -> Callable[[LeaseRecord | Unreadable | None], tuple[AcquireDecision, LeaseRecord | None]]:
        def decide(
            current: LeaseRecord | Unreadable | None,
        ) -> tuple[AcquireDecision, LeaseRecord | None]:
            obs = observe(self.store, watcher, current, self._wall)
            decision = machine.decide_acquire(
                obs,
                self.me,
                self.family,
                self.timing.ttl_s,
                root_id=root_id,
                ports=self.ports,
                heartbeat_s=self.timing.heartbeat_s,
            )
            # A replaced holder's tree is stopped; a foreign holder's pids are not ours.
            if (
                decision.verdict in (AcquireVerdict.TAKE_DEAD_HOLDER, AcquireVerdict.TAKE_EXPIRED)
                and isinstance(current, LeaseRecord)
                and current.child is not None
                and not is_foreign(current.holder.where, here())
            ):
                self._orphan = current
            return decision, decision.write

        return decide

    def _stop_orphan(self) -> None:
        """The governed tree of a `tenure run` holder we replaced (dead, or expired: stopped,
        wedged) is stopped, in the background: every member by its cookie, uid and start, or,
        in a record without a cookie, the child by its recorded identity. spec: control.md#run"""
        orphan, self._orphan = self._orphan, None
        if orphan is None or orphan.child is None:
            return
        child, ident = orphan.child, orphan.child_ident
        if child.tree is None:
            if ident is not None:
                self._orphan_stop = stop_in_background(
                    ident, f"{self.family} child of a dead holder", TREE_STOP
                )
            return
        tree = Tree(child.tree, None, child.start_ticks)
        self._orphan_stop = threading.Thread(
            target=stop_tree, args=(tree, None, TREE_STOP), name="tenure-orphans", daemon=True
        )
        self._orphan_stop.start()

    def release_after(self, gate: threading.Event) -> None:
        """Retirement releases the lease only once `gate` is set (within the drain bound):
        `tenure run` sets it when its whole tree is gone."""
        self._release_gate = gate

    @property
    def replaced_a_tree(self) -> bool:
        """Whether taking the lease meant stopping a replaced holder's tree (or child)."""
        return self._orphan_stop is not None

    def settle_takeover(self, timeout: float) -> bool:
        """Wait until the tree of the holder we replaced is stopped (break before make); True
        when it is (or there was none)."""
        if self._orphan_stop is not None:
            self._orphan_stop.join(timeout)
            return not self._orphan_stop.is_alive()
        return True

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the heartbeat thread (call after `acquire`)."""
        self._thread = threading.Thread(
            target=self._beat_loop, name="tenure-heartbeat", daemon=True
        )
        self._thread.start()

    def holding(self) -> bool:
        """True while this process may act as holder: not retiring and within its own TTL."""
        if self.forked:
            return False
        return self.state is State.HOLDING and self._mono() - self._last_renew <= self.timing.ttl_s

    def root_intact(self) -> bool:
        """Whether the root is still the instance the lease was granted in, by a stat of its
        `root.id` (health asks on every answer). Only when the stat differs is the root's
        identity read, so a `root.id` merely touched does not fence a healthy holder."""
        stamp = root_stamp(self.root)
        if stamp is not None and stamp == self._root_stamp:
            return True
        if stamp is None or self._root_changed_quietly():
            return False
        self._root_stamp = stamp
        return True

    @property
    def root_id(self) -> str | None:
        """The instance id of the root this lease was granted in."""
        return None if self._root_ident is None else self._root_ident.root_id

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
        with self._cond:
            accepted = self.holding()
            fenced = not accepted and self.state is State.HOLDING
            if accepted:
                self._in_flight += 1
                self._last_activity = self._mono()
        if fenced:
            self.handle(Event.LEASE_EXPIRED)
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
        while not self._stop_beat.wait(self.timing.heartbeat_s):
            try:
                event = self.observe()
            except Exception as exc:
                # spec: lease.md#faults — never a dead heartbeat thread in a live daemon.
                self.last_fault = f"{type(exc).__name__}: {exc}"
                print(f"tenure: heartbeat failed: {self.last_fault}", file=sys.stderr)
                event = Event.FAULT
            if self.handle(event).next is not State.HOLDING:
                return

    def _root_changed(self) -> bool:
        """True when the root we were granted the lease in is gone or was replaced."""
        now = root_identity(self.root)
        return now is None or now != self._root_ident

    def observe(self) -> Event:
        """One heartbeat: renew if we may, and say what happened as a lifecycle `Event`.

        A transient I/O failure (EMFILE, ENOSPC, EIO, EACCES, a lock timeout) is RENEW_FAILED
        until this holder's own lease deadline passes on its monotonic clock, then
        LEASE_EXPIRED (spec: lease.md#faults).
        """
        if self.forked:
            return Event.LEASE_LOST  # never heartbeat for the parent (lease.md#fork)
        with self._cond:
            idle_for = self._mono() - self._last_activity
            if self.timing.idle_enabled and self._in_flight == 0 and idle_for > self.timing.idle_s:
                return Event.IDLE
        since = self._mono() - self._last_renew

        def decide(
            current: LeaseRecord | Unreadable | None,
        ) -> tuple[RenewDecision, LeaseRecord | None]:
            d = machine.decide_renew(current, self.epoch, self.me.nonce, since, self._wall())
            return d, d.write

        try:
            if self._root_changed():
                return Event.ROOT_GONE  # a new root instance: its epochs are not ours
            decision = self.store.transact(decide, timeout_s=self.timing.heartbeat_s / 2)
        except RootError:
            return Event.ROOT_GONE
        except (OSError, LockTimeout) as exc:
            self.last_fault = f"{type(exc).__name__}: {exc}"
            print(f"tenure: heartbeat not renewed, will retry: {self.last_fault}", file=sys.stderr)
            return Event.LEASE_EXPIRED if since > self.timing.ttl_s else Event.RENEW_FAILED
        self.last_fault = None
        if decision.verdict is RenewVerdict.RENEWED:
            self._last_renew = self._mono()
        return _RENEW_TO_EVENT[decision.verdict]

    def beat(self) -> RetireReason | None:
        """One heartbeat without acting on it: the reason to retire, or None while holding."""
        transition = step(self.state, self.observe())
        return transition.reason if transition.action in _LEAVING_ACTIONS else None

    # --- the lifecycle table drives everything below ---------------------------------------

    def handle(self, event: Event) -> Transition:
        """Feed one event to the lifecycle table and perform the action it returns."""
        if self.forked:
            return step(self.state, event)  # a forked child acts on nothing (lease.md#fork)
        with self._cond:
            transition = step(self.state, event)
            self.state = transition.next
            action = transition.action
            if action in _LEAVING_ACTIONS:
                assert transition.reason is not None
                self._retiring = transition.reason
                self._fenced = self._fenced or action is Action.RETIRE_SILENTLY
            if action in (Action.RETIRE_NOW, Action.CUT_DRAIN):
                self._no_drain.set()  # "stop now" also cuts short a drain already running
                self._cond.notify_all()
        if action in _LEAVING_ACTIONS:
            assert transition.reason is not None
            for callback in self.on_retiring:
                callback(transition.reason)
            self._stop_beat.set()
            threading.Thread(
                target=self._finish, args=(transition.reason,), name="tenure-retire", daemon=True
            ).start()
        elif action is Action.EXIT and not self._finishing:
            self._retired.set()  # nothing was held: nothing to drain, release or record
        return transition

    def retire(self, reason: RetireReason, drain: bool = True) -> None:
        """Begin retirement in the background (idempotent); `wait_retired` tells when done."""
        self.handle(event_for(reason, drain))
        if not drain:
            self.handle(Event.SHUTDOWN_REQUESTED)

    def _finish(self, reason: RetireReason) -> None:
        self._finishing = True
        try:
            deadline = self._mono() + self.timing.drain_s
            with self._cond:
                while self._in_flight and self._mono() < deadline and not self._no_drain.is_set():
                    self._cond.wait(deadline - self._mono())
            if self._release_gate is not None:
                # What this holder governs must be gone before the lease is: break before make.
                self._release_gate.wait(max(deadline - self._mono(), 0.0))
            if not self._fenced and not self._root_changed_quietly():
                self._release_and_record(reason)
        finally:
            self.handle(Event.DRAINED)
            if self._on_retire is not None:
                self._on_retire(reason)
            self._retired.set()

    def _root_changed_quietly(self) -> bool:
        try:
            return self._root_changed()
        except OSError:
            return True  # cannot tell: writing nothing is the safe side

    def _release_and_record(self, reason: RetireReason) -> None:
        if self.forked:
            return
        release_and_record(
            self.store,
            self.me,
            epoch=self.epoch,
            version=self.version,
            reason=reason.value,
            now_wall=self._wall(),
        )

    def record_child(
        self, ident: ProcessIdentity, tree: str | None = None, port: int | None = None
    ) -> bool:
        """Name the process (and the tree cookie) this holder governs (`tenure run`) in the
        record, and the port it chose once it held; False if the record is not ours."""
        if self.forked:
            return False
        child = Child(ident.pid, ident.create_time, ident.start_ticks, tree)
        if port is not None:
            self.me = replace(self.me, port=port)

        def decide(current: LeaseRecord | Unreadable | None) -> tuple[bool, LeaseRecord | None]:
            write = machine.with_child(current, self.epoch, self.me.nonce, child, port)
            return write is not None, write

        return self.store.transact(decide)

    def abandon(self) -> None:
        """The caller gave up while acquiring (cancelled, interrupted): a lease taken on its
        behalf is released at once, with a tombstone, and this governor never holds."""
        self._abandoned.set()
        if self.forked:
            return
        with self._attempt:  # an attempt in flight finishes first: its result is seen below
            if self.state is State.ACQUIRING:
                # An interrupt between the write and ACQUIRED: the record says it is ours.
                current = self.store.read()
                if (
                    isinstance(current, LeaseRecord)
                    and current.holder.nonce == self.me.nonce
                    and current.state is LeaseState.HELD
                ):
                    self.epoch = current.epoch
                    self._release_and_record(RetireReason.SHUTDOWN)
                self.handle(Event.REFUSED)
                return
            if self.state is State.HOLDING:
                self.retire(RetireReason.SHUTDOWN, drain=False)
        self.wait_retired(self.timing.drain_s + 5)

    def wait_retired(self, timeout: float | None = None) -> RetireReason | None:
        """Block until retirement finished; the reason, or None on timeout."""
        if not self._retired.wait(timeout):
            return None
        return self._retiring

    def ensure_holding(self) -> None:
        """Raise `LeaseLost` unless this process may still act as holder."""
        if not self.holding():
            raise LeaseLost(f"{self.family} lease at epoch {self.epoch} is no longer ours")
