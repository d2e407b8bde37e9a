"""The holder's dealings with its record beyond renewing: watching it (how long it stayed
unchanged, the facts `decide_acquire` needs) and the last write (release by CAS, tombstone).
spec: docs/protocol/lease.md#expiry, lease.md#release
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from tenure.adapters.procinfo import liveness
from tenure.adapters.store import LeaseStore
from tenure.adapters.tombstones import append_tombstone
from tenure.core.handover import decide_release
from tenure.core.lease import Liveness, Observation
from tenure.core.record import Holder, LeaseRecord, Unreadable
from tenure.errors import LockTimeout, RootError


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
    wall: Callable[[], float] = time.time,
) -> Observation:
    """Gather the facts `machine.decide_acquire` needs about the current record."""
    live = Liveness.DEAD
    if isinstance(current, LeaseRecord):
        live = liveness(current.holder.ident)
    return Observation(
        current=current,
        liveness=live,
        now_wall=wall(),
        unchanged_for=watcher.unchanged_for(store.read_raw()),
        epoch_floor=store.epoch_floor(),
    )


def release_and_record(
    store: LeaseStore, me: Holder, *, epoch: int, version: str, reason: str, now_wall: float
) -> None:
    """Release by compare-and-set, then append a tombstone; each failure is reported, not
    raised (a full disk must not keep a retiring daemon alive)."""

    def decide(current: LeaseRecord | Unreadable | None) -> tuple[None, LeaseRecord | None]:
        return None, decide_release(current, epoch, me.nonce, now_wall).write

    try:
        store.transact(decide)
    except (OSError, LockTimeout, RootError) as exc:
        print(f"tenure: release failed: {exc}", file=sys.stderr)
    write_tombstone(store, me.pid, version, epoch, reason, now_wall)


def write_tombstone(  # noqa: PLR0917  (the tombstone's fields, in its order)
    store: LeaseStore, pid: int, version: str, epoch: int, reason: str, at: float
) -> None:
    """Append the tombstone of `pid`'s tenure at `epoch` (root.md#tombstones); a failure is
    reported on stderr, not raised."""
    entry = {
        "family": store.family,
        "pid": pid,
        "version": version,
        "epoch": epoch,
        "reason": reason,
        "at": at,
    }
    try:
        append_tombstone(store.root, entry)
    except (OSError, LockTimeout) as exc:
        print(f"tenure: tombstone not written: {exc}", file=sys.stderr)
