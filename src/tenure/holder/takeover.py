"""The tree of a holder this one replaced (adapter-driven): stopped before our child starts.

A `tenure run` holder that died or expired leaves its governed tree behind; whoever takes the
lease stops that tree in the background — every member by its cookie, uid and start, or, in a
record without a cookie, the child by its recorded identity (spec: control.md#run) — and
`tenure run` waits for it before starting its own child (break before make).
"""

from __future__ import annotations

import threading

from tenure.adapters.location import here
from tenure.adapters.stopping import stop_in_background
from tenure.adapters.tree import Tree, stop_tree
from tenure.core.identity import is_foreign
from tenure.core.record import LeaseRecord
from tenure.core.timing import TREE_STOP


class Takeover:
    """The replaced holder whose tree must be stopped, and the stop in progress."""

    def __init__(self, family: str) -> None:
        self.family = family
        self._orphan: LeaseRecord | None = None
        self._stopping: threading.Thread | None = None

    def note(self, replaced: LeaseRecord | None) -> None:
        """Remember the holder an acquire is about to replace (dead or expired) when it
        governed a tree; a foreign holder's pids are not ours."""
        if (
            replaced is not None
            and replaced.child is not None
            and not is_foreign(replaced.holder.where, here())
        ):
            self._orphan = replaced

    def stop(self) -> None:
        """Stop the replaced holder's tree (or child) in the background."""
        orphan, self._orphan = self._orphan, None
        if orphan is None or orphan.child is None:
            return
        child, ident = orphan.child, orphan.child_ident
        if child.tree is None:
            if ident is not None:
                self._stopping = stop_in_background(
                    ident, f"{self.family} child of a dead holder", TREE_STOP
                )
            return
        tree = Tree(child.tree, None, child.start_ticks)
        self._stopping = threading.Thread(
            target=stop_tree, args=(tree, None, TREE_STOP), name="tenure-orphans", daemon=True
        )
        self._stopping.start()

    @property
    def replaced_a_tree(self) -> bool:
        """Whether taking the lease meant stopping a replaced holder's tree (or child)."""
        return self._stopping is not None

    def settle(self, timeout: float) -> bool:
        """Wait until the replaced tree is stopped; True when it is (or there was none)."""
        if self._stopping is not None:
            self._stopping.join(timeout)
            return not self._stopping.is_alive()
        return True
