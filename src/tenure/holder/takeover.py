"""The trees of holders this one replaced (adapter-driven): stopped before our child starts.

A `tenure run` holder that died or expired leaves its governed tree behind. The acquire that
replaces it lists that tree in the record's `orphans` (with any tree an earlier holder had not
finished stopping), and the new holder stops each in the background — every member by its
cookie and start, or, for a tree without a cookie, the child by its recorded identity — then
takes off the record exactly the trees it saw gone. A holder interrupted meanwhile leaves them
listed, so whoever holds next stops them (spec: control.md#run). `tenure run` waits for the
stop before starting its own child (break before make) — unless it was handed the listening
socket: then the stop waits until its own child is ready (make before break), and a successor
that never became ready leaves the tree listed for the wrapper that rolls back
(control.md#socket-handover).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from tenure.adapters.stopping import gone_within, stop_verified
from tenure.adapters.tree import Tree, stop_tree
from tenure.core.identity import ProcessIdentity
from tenure.core.record import Child
from tenure.core.timing import TREE_STOP
from tenure.errors import StopFailed

Confirm = Callable[[tuple[Child, ...]], None]


class Takeover:
    """The replaced holders' trees that must be stopped, and the stop in progress."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._stopping: threading.Thread | None = None
        self.bound_s = 0.0  # the longest the stop in progress may take, by the trees' policies
        self._gate: threading.Event | None = None  # set: the stop may begin
        self._cancelled = False
        self.spare: str | None = None  # the cookie of a tree this holder governs again

    def defer(self) -> None:
        """Hold the stop of the replaced trees back until `proceed` (or `cancel`)."""
        self._gate = threading.Event()

    def proceed(self) -> None:
        """Let a deferred stop begin."""
        if self._gate is not None:
            self._gate.set()

    def cancel(self) -> None:
        """Never stop the deferred trees: they stay listed for whoever holds next."""
        self._cancelled = True
        self.proceed()

    def stop(self, orphans: tuple[Child, ...], confirm: Confirm) -> None:
        """Stop every tree in `orphans` in the background; `confirm` gets those seen gone."""
        orphans = tuple(c for c in orphans if self.spare is None or c.tree != self.spare)
        if not orphans:
            return
        self.bound_s = sum(TREE_STOP.following(c.stop).bound_s for c in orphans)
        self._stopping = threading.Thread(
            target=self._stop_all, args=(orphans, confirm), name="tenure-orphans", daemon=True
        )
        self._stopping.start()

    def _stop_all(self, orphans: tuple[Child, ...], confirm: Confirm) -> None:
        if self._gate is not None:
            self._gate.wait()
            if self._cancelled:
                return
        gone = tuple(c for c in orphans if self._stop_one(c))
        if gone:
            confirm(gone)

    def _stop_one(self, child: Child) -> bool:
        """Stop one replaced tree (or lone child); True once nothing of it is left."""
        # The stop its own holder recorded for it (control.md#stop-policy).
        policy = TREE_STOP.following(child.stop)
        if child.tree is not None:
            tree = Tree(child.tree, None, child.start_ticks)
            return stop_tree(tree, None, policy, head=child.pid)
        label = f"{self.family} child of a replaced holder"
        ident = ProcessIdentity(child.pid, child.create_time, child.start_ticks)
        try:
            if stop_verified(ident, label, policy=policy) is not None:
                print(f"tenure: stopped {label}, pid {child.pid}", file=sys.stderr)
        except StopFailed as exc:
            print(f"tenure: {exc}", file=sys.stderr)
        return gone_within(ident, 0.0)  # refused because its pid is another process's: gone

    @property
    def replaced_a_tree(self) -> bool:
        """Whether taking the lease meant stopping a replaced holder's tree (or child)."""
        return self._stopping is not None

    def settle(self, timeout: float) -> bool:
        """Wait until the replaced trees are stopped; True when they are (or there were none)."""
        if self._stopping is not None:
            self._stopping.join(timeout)
            return not self._stopping.is_alive()
        return True
