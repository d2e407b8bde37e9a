"""A superseded `tenure run` wrapper standing by (driver): watch the record until the
successor serves, or take the place back when it failed first. The decision is pure
(`core/standby.py`); this loop only reads the record and the holder's liveness.
spec: docs/protocol/control.md#readiness
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

from tenure.adapters.procinfo import holder_liveness
from tenure.adapters.store import LeaseStore
from tenure.adapters.waiting import wait_until
from tenure.core.handover import is_newer
from tenure.core.lease import SEEN
from tenure.core.lifecycle import ROLLED_BACK
from tenure.core.record import LeaseRecord, LeaseState, Unreadable
from tenure.core.standby import Standby, StandbyFacts, decide_standby
from tenure.core.timing import POLL_S, ROLLBACK_WAIT_S
from tenure.core.values import frozen
from tenure.errors import TenureError
from tenure.protocol.observer import write_tombstone


@frozen
class Watch:
    """The lease a wrapper released when superseded: its store, its epoch, its own heartbeat
    (one more heartbeat than the successor's bound) and TTL (how long a successor may take to
    come)."""

    store: LeaseStore
    epoch: int
    heartbeat_s: float
    ttl_s: float


def stand_by(watch: Watch, asked: threading.Event) -> tuple[Standby, LeaseRecord | None]:
    """Wait until the verdict is not `wait` (or a stop signal: `asked`); the verdict and the
    successor's record as last seen."""
    start = time.monotonic()
    seen_at: float | None = None
    successor: int | None = None
    while not asked.is_set():
        cur = watch.store.read()
        rec = cur if isinstance(cur, LeaseRecord) else None
        if rec is not None and rec.epoch > watch.epoch and successor is None:
            successor, seen_at = rec.epoch, time.monotonic()
        now = time.monotonic()
        verdict = decide_standby(
            StandbyFacts(
                current=cur,
                liveness=None if rec is None else holder_liveness(rec),
                my_epoch=watch.epoch,
                waited_s=now - start,
                successor_for_s=None if seen_at is None else now - seen_at,
                successor_epoch=successor,
                heartbeat_s=watch.heartbeat_s,
                arrival_s=watch.ttl_s,
            )
        )
        if verdict is not Standby.WAIT:
            return verdict, rec
        asked.wait(POLL_S * 5)
    return Standby.GIVE_UP, None


def stands_by(last: LeaseRecord | Unreadable | None, version: str) -> bool:
    """Whether the holder we are about to supersede is a `tenure run` wrapper that will stand
    by for our readiness: a live, older one that governs a child."""
    return (
        isinstance(last, LeaseRecord)
        and last.state is LeaseState.HELD
        and last.child is not None
        and is_newer(version, last.holder.version)
        and holder_liveness(last) in SEEN
    )


def tombstone_rolled_back(store: LeaseStore, failed: LeaseRecord) -> None:
    """The tombstone of a successor this wrapper rolled back (reason `rolled_back`, naming
    its version, pid and epoch)."""
    h = failed.holder
    write_tombstone(store, h.pid, h.version, failed.epoch, ROLLED_BACK, time.time())


def say_rolling_back(family: str, version: str, failed: LeaseRecord) -> None:
    """Say on stderr that the successor failed and this wrapper takes its place back."""
    h = failed.holder
    print(
        f"tenure: {family} {h.version} (pid {h.pid}) failed before it was ready; "
        f"{version} takes its place back",
        file=sys.stderr,
    )


def forget_never_started(store: LeaseStore, why: str) -> None:
    """The family's first holder ever, whose command failed before it was ready: its released
    record would list a family that never ran (`tenure ls`) until pruned in 30 days, so it goes
    now — the lock and epoch floor stay (lease.md#pruning); its tombstone stays."""
    with contextlib.suppress(OSError, TenureError):
        if store.prune_if_released_before(time.time() + 1):
            print(
                f"tenure: {store.family} never started (its command {why}); its lease record "
                "is removed",
                file=sys.stderr,
            )


def say_superseded(family: str, version: str, successor: LeaseRecord) -> None:
    """Say on stderr who took this wrapper's place, so a foreground `tenure run` does not end
    without a word."""
    h = successor.holder
    print(
        f"tenure: {family} {version} superseded by {h.version} (pid {h.pid}), which serves; "
        "leaving",
        file=sys.stderr,
    )


def report_not_ready(
    store: LeaseStore, me: tuple[str, int], last: LeaseRecord, outcome: tuple[int, str]
) -> int:
    """A successor that was not ready: say whether the wrapper it superseded took its place
    back (it stands by: control.md#readiness); exit non-zero either way."""
    version, epoch = me
    code, why = outcome
    h = last.holder

    def took_back() -> LeaseRecord | None:
        now = store.read()
        if (
            isinstance(now, LeaseRecord)
            and now.epoch > epoch
            and now.state is LeaseState.HELD
            and now.holder.pid == h.pid
        ):
            return now
        return None

    heartbeat = last.heartbeat_s if last.heartbeat_s is not None else last.ttl_s / 3
    back = wait_until(took_back, heartbeat + ROLLBACK_WAIT_S, POLL_S * 5)
    why = why or "was not ready"
    if back is not None:
        said = f"{h.version} (pid {h.pid}) holds the lease again (epoch {back.epoch})"
    else:
        said = f"{h.version} (pid {h.pid}) did not take its place back"
    print(f"tenure: {store.family} {version} rolled back: it {why}; {said}", file=sys.stderr)
    return code if code > 0 else 1
