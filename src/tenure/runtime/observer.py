"""An observer of a lease record (driver helper): how long it stayed unchanged, and the facts
`decide_acquire` needs. spec: docs/protocol/lease.md#expiry
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tenure.adapters.procinfo import liveness
from tenure.adapters.store import LeaseStore
from tenure.core.lease import Liveness, Observation
from tenure.core.record import LeaseRecord, Unreadable


class Watcher:
    """Tracks how long one observer has seen the same record bytes (monotonic clock)."""

    def __init__(self, mono: Callable[[], float]) -> None:
        self._mono = mono
        self._bytes: bytes | None = None
        self._since = mono()

    def unchanged_for(self, raw: bytes | None) -> float:
        """Seconds the record has been byte-for-byte unchanged, as seen by this observer."""
        now = self._mono()
        if raw != self._bytes:
            self._bytes, self._since = raw, now
        return now - self._since


def observe(
    store: LeaseStore,
    watcher: Watcher,
    current: LeaseRecord | Unreadable | None,
    heartbeat_s: float,
    wall: Callable[[], float] = time.time,
) -> Observation:
    """Gather the facts `machine.decide_acquire` needs about the current record."""
    live = Liveness.DEAD
    if isinstance(current, LeaseRecord):
        live = liveness(current.holder.pid, current.holder.create_time)
    return Observation(
        current=current,
        liveness=live,
        now_wall=wall(),
        unchanged_for=watcher.unchanged_for(store.read_raw()),
        heartbeat_s=heartbeat_s,
        epoch_floor=store.epoch_floor(),
    )
