"""The holder of one family's lease: acquire, renew, release — the lease's side of the driver.

A daemon creates a `Governor`, calls `acquire()`, `start()`, wraps each unit of work in
`with governor.work():`, and waits on `wait_retired()`; the lifecycle itself is driven by
`holder/driver.py`. spec: docs/protocol/lease.md#governor
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tenure.adapters import config, platform
from tenure.adapters.procinfo import own_identity
from tenure.adapters.root import RootIdentity, ensure_root_id, root_identity, root_stamp
from tenure.adapters.store import LeaseStore
from tenure.core import lease as machine
from tenure.core.hints import TYPE_CHECKING
from tenure.core.identity import ProcessIdentity
from tenure.core.lease import TAKES, AcquireDecision, RenewDecision, RenewVerdict
from tenure.core.lifecycle import Event, RetireReason, State
from tenure.core.record import Child, Holder, LeaseRecord, LeaseState, StopSpec, Unreadable
from tenure.core.timing import Timing
from tenure.core.values import replace
from tenure.errors import LeaseHeld, LeaseUnreadable, LockTimeout, Retiring, RootError
from tenure.holder.driver import RENEW_TO_EVENT, Driver
from tenure.holder.takeover import Takeover
from tenure.protocol.observer import Watcher, observe, release_and_record
from tenure.protocol.supersede import lease_held

if TYPE_CHECKING:
    from tenure.adapters.installs import InstallWatch
    from tenure.adapters.recordwatch import RecordWatch
    from tenure.core.record import LeaseScope

__all__ = ["ACQUIRE_POLL_S", "Governor", "RetireReason"]

ACQUIRE_POLL_S = 0.05


class Governor(Driver):
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
        stop: StopSpec | None = None,
        ready_within: float | None = None,
        watch: tuple[str, ...] = (),
        scope: LeaseScope | None = None,
        on_retire: Callable[[RetireReason], None] | None = None,
        mono: Callable[[], float] = platform.lease_clock,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(timing or config.timing(), mono, on_retire)
        self.ports = ports  # the family's port range, recorded for doctor, ls and reapers
        self.store = LeaseStore(root, family, scope)
        self.scope = scope  # the directory this lease is for; None: the user's (lease.md#scopes)
        self.root = root
        self.family = family
        self.version = version
        ident = own_identity()
        self.me = Holder(
            pid=ident.pid,
            create_time=ident.create_time,
            nonce=os.urandom(8).hex(),
            version=version,
            port=port,
            started_at=wall(),
            start_ticks=ident.start_ticks,
            where=ident.where,
            control=control and port is not None,
            stop=stop,
        )
        self._wall = wall
        # Set: the record says this holder is starting until `mark_ready` (control.md#readiness).
        self.ready_within = ready_within
        # One observer memory per process: expiry is confirmed across acquire calls.
        self._watcher = Watcher(mono)
        # The root instance the lease was granted in; another instance means we are fenced.
        self._root_ident: RootIdentity | None = None
        self._root_stamp: tuple[int, int, int] | None = None
        self.takeover = Takeover(family)  # a replaced holder's tree, stopped before we serve
        self._abandoned = threading.Event()  # the caller gave up while we were acquiring
        self._record_seen: tuple[int, int, int] | None = None  # the record at the last look
        self._watch: RecordWatch | None = None
        # Files of this holder's install: a new install settled there retires it (`upgraded`).
        self._installs: InstallWatch | None = None
        if watch:
            from tenure.adapters.installs import InstallWatch  # noqa: PLC0415  (opt-in)

            self._installs = InstallWatch(watch)
        self._attempt = threading.Lock()  # one acquire attempt, or `abandon`, at a time

    # --- acquiring -------------------------------------------------------------------------

    def acquire(
        self, wait_s: float = 0.0, on_wait: Callable[[AcquireDecision], None] | None = None
    ) -> LeaseRecord:
        """Take the lease, waiting up to `wait_s` for an expiring holder; raise if held."""
        if self.state is not State.ACQUIRING:
            # spec: lease.md#holder-lifecycle — a holder that retired never holds again.
            raise Retiring(f"{self.family} governor is {self.state.value}: start a new one")
        self.store.check_writable()  # fail now, not after waiting out an "unreadable" record
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
        # Refused: this holder never holds (lease.md#holder-lifecycle); a new start is a new one.
        self.handle(Event.REFUSED)
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
        self._root_ident = ident
        self._root_stamp = root_stamp(self.root)
        self.epoch = decision.write.epoch
        self.handle(Event.ACQUIRED)
        self._last_renew = self._mono()
        self._last_activity = self._mono()
        self.takeover.stop(decision.write.orphans, self._confirm_stopped)
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
                ready_within=self.ready_within,
                scope=self.scope,
            )
            return decision, decision.write

        return decide

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

    def _root_changed(self) -> bool:
        """True when the root we were granted the lease in is gone or was replaced."""
        now = root_identity(self.root)
        return now is None or now != self._root_ident

    def _renew(self) -> Event:
        """Renew if we may, and say what happened as a lifecycle `Event`.

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
        if self._installs is not None and self._installs.upgraded():
            return Event.UPGRADED  # old code never keeps running (control.md#installs)
        if self._scope_gone():
            return Event.SCOPE_GONE  # removed, moved away or replaced (lease.md#scopes)
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
        return RENEW_TO_EVENT[decision.verdict]

    def _await_news(self, timeout: float) -> bool:
        # The watch is made here, in the heartbeat thread: its cost (on Linux, ctypes for
        # inotify) is off the path from start to serving.
        if self._watch is None:
            from tenure.adapters.recordwatch import RecordWatch  # noqa: PLC0415

            self._watch = RecordWatch(self.store.record_path.parent)
        self._watch.wait(timeout, self._stop_beat)
        return self._news() or self._scope_gone()

    def _scope_gone(self) -> bool:
        """Whether a scoped holder's directory is gone, by a stat at every look: within a
        second of it, the heartbeat that follows retires it (lease.md#scopes)."""
        if self.scope is None:
            return False
        from tenure.adapters.scopes import scope_intact  # noqa: PLC0415  (scoped holders)

        return not scope_intact(self.scope)

    def _stop_watching(self) -> None:
        if self._watch is not None:
            self._watch.close()

    def _news(self) -> bool:
        """The record's identity (inode, mtime, size) changed since the last look and it now
        ends this tenure (the pure renew decision, without writing)."""
        if self.forked:
            return False
        try:
            st = os.lstat(self.store.record_path)
            seen: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            seen = None  # gone: the heartbeat says why (record or root)
        except OSError:
            return False  # cannot look now (EMFILE, EACCES): the next heartbeat will
        if seen == self._record_seen:
            return False
        self._record_seen = seen
        if seen is None:
            return True
        current = self.store.read()
        decision = machine.decide_renew(current, self.epoch, self.me.nonce, 0.0, self._wall())
        return decision.verdict is not RenewVerdict.RENEWED

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
        self,
        ident: ProcessIdentity | None,
        tree: str | None = None,
        port: int | None = None,
        stop: StopSpec | None = None,
    ) -> bool:
        """Name the process (and the tree cookie, and how to end the tree) this holder governs
        (`tenure run`; None: the port alone) in the record, and the port it chose once it held;
        False if the record is not ours."""
        if self.forked:
            return False
        child = (
            None
            if ident is None
            else Child(ident.pid, ident.create_time, ident.start_ticks, tree, stop)
        )
        if port is not None:
            self.me = replace(self.me, port=port)

        def decide(current: LeaseRecord | Unreadable | None) -> tuple[bool, LeaseRecord | None]:
            write = machine.with_child(current, self.epoch, self.me.nonce, child, port)
            return write is not None, write

        return self.store.transact(decide)

    def mark_ready(self) -> bool:
        """Say in the record that what this holder governs serves now (control.md#readiness);
        False if the record is not ours or did not say it was starting."""
        if self.forked:
            return False

        def decide(current: LeaseRecord | Unreadable | None) -> tuple[bool, LeaseRecord | None]:
            write = machine.with_ready(current, self.epoch, self.me.nonce, self._wall())
            return write is not None, write

        return self.store.transact(decide)

    def list_own_tree(self) -> bool:
        """List the tree this holder governs in the record's `orphans` (members outlived its
        stop: control.md#run), so its release hands it on; False if the record is not ours."""
        if self.forked:
            return False

        def decide(current: LeaseRecord | Unreadable | None) -> tuple[bool, LeaseRecord | None]:
            write = machine.with_own_tree_orphaned(current, self.epoch, self.me.nonce)
            return write is not None, write

        return self.store.transact(decide)

    def _confirm_stopped(self, gone: tuple[Child, ...]) -> None:
        """Take the replaced trees seen gone off the record (control.md#run); a record no
        longer ours keeps them for its holder, who finds nobody left to stop."""
        if self.forked:
            return

        def decide(current: LeaseRecord | Unreadable | None) -> tuple[None, LeaseRecord | None]:
            return None, machine.without_orphans(current, self.epoch, self.me.nonce, gone)

        try:
            self.store.transact(decide)
        except (OSError, LockTimeout) as exc:
            print(f"tenure: replaced trees not struck off the record: {exc}", file=sys.stderr)

    def abandon(self, reason: RetireReason = RetireReason.SHUTDOWN) -> None:
        """The caller gave up while acquiring (cancelled, interrupted; `reason` for the
        tombstone): a lease taken on its behalf is released at once, with a tombstone, and
        this governor never holds."""
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
                    self._release_and_record(reason)
                self.handle(Event.REFUSED)
                return
            if self.state is State.HOLDING:
                self.retire(reason, drain=False)
        self.wait_retired(self.timing.drain_s + 5)
