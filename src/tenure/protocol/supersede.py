"""Supersession, requester side (driver): one path for `start`, `tenure.ensure` and `tenure run`.

The requester marks the record `superseded_by` under the record lock (every holder sees it at
its next heartbeat, HTTP or not) and, when the holder serves a control plane and left its token
in the root, also calls its authenticated `/api/retire` so it leaves at once.
spec: docs/protocol/lease.md#supersession
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from tenure.adapters import platform
from tenure.adapters.location import here
from tenure.adapters.procinfo import holder_liveness, liveness
from tenure.adapters.store import LeaseStore
from tenure.adapters.waiting import wait_until
from tenure.core.handover import decide_stop_request, decide_supersede, is_newer
from tenure.core.identity import is_foreign
from tenure.core.lease import SEEN, Liveness, confirm_s
from tenure.core.notify import Notify, quiet
from tenure.core.record import LeaseRecord, LeaseState, Unreadable
from tenure.core.timing import (
    HOLDER_STOP,
    POLL_S,
    StopPolicy,
    Timing,
    asked_leave_wait,
    leave_wait,
)
from tenure.core.values import frozen
from tenure.errors import LeaseHeld, StopRefused


def held_record(store: LeaseStore) -> LeaseRecord | None:
    """The record if a live holder holds it and its lease is fresh."""
    return fresh_lease(store, store.read())


def fresh_lease(store: LeaseStore, rec: LeaseRecord | Unreadable | None) -> LeaseRecord | None:
    """`rec` when a live (or foreign) holder holds it and still renews it, else None.

    Fresh by this process's wall clock is enough. Past its TTL by that clock, the record is
    judged on its own terms (lease.md#expiry): our clock may run ahead, so the holder counts as
    renewing if the record changes within `confirm_s` on our monotonic clock.
    """
    if not isinstance(rec, LeaseRecord) or rec.state is not LeaseState.HELD:
        return None
    live = holder_liveness(rec)
    if live not in SEEN:
        return None
    if time.time() - rec.renewed_at <= rec.ttl_s:
        return rec
    confirm = confirm_s(rec, foreign=live is Liveness.FOREIGN)
    changed = wait_until(lambda: store.read() != rec or None, confirm, POLL_S * 5)
    if changed is None:
        return None
    now = store.read()
    if (
        isinstance(now, LeaseRecord)
        and now.state is LeaseState.HELD
        and now.epoch == rec.epoch
        and now.holder.nonce == rec.holder.nonce
    ):
        return now
    return None


def answers_as_holder(rec: LeaseRecord) -> bool:
    """Whether `rec`'s holder answers health on its control port as that very holder (pid,
    epoch and root id agree): how a foreign holder in a shared network namespace is reused.

    Only a control port is asked (`holder.control`): a service port, such as a `tenure run`
    child's, gets no request.
    """
    h = rec.holder
    if h.port is None or not h.control:
        return False
    # HTTP only for a holder with a control plane: a host tool reusing a `tenure.hold`
    # daemon loads none of it.
    from tenure.adapters.http import health  # noqa: PLC0415
    from tenure.core.health import parse_health  # noqa: PLC0415

    doc = parse_health(health(h.port))
    return (
        doc is not None
        and doc.is_holder
        and doc.pid == h.pid
        and doc.epoch == rec.epoch
        and doc.root_id == rec.root_id
    )


def is_foreign_holder(rec: LeaseRecord) -> bool:
    """Whether the record's holder lives in another boot or namespace (lease.md#foreign).

    Decided from the record's location alone: no process is read.
    """
    return is_foreign(rec.holder.where, here())


def lease_held(rec: LeaseRecord) -> LeaseHeld:
    """The refusal naming `rec`'s holder: where it lives when foreign, and its expiry."""
    h = rec.holder
    foreign = is_foreign_holder(rec)
    left = rec.renewed_at + rec.ttl_s - time.time()
    if foreign:
        expiry = (
            f"its lease runs until its record stays unchanged for {rec.ttl_s:g}s "
            f"(by its own clock {max(left, 0.0):.1f}s from now)"
        )
    else:
        expiry = f"its lease expires in {max(left, 0.0):.1f}s unless renewed"
    lives = h.where.describe() if foreign and h.where is not None else None
    return LeaseHeld(rec.family, h.pid, h.version, h.port, rec.epoch, lives=lives, expiry=expiry)


def has_left(store: LeaseStore, rec: LeaseRecord) -> bool:
    """Whether the holder named by `rec` is gone, released, or no longer the record's holder."""
    cur = store.read()
    if (
        not isinstance(cur, LeaseRecord)
        or cur.epoch != rec.epoch
        or cur.state is LeaseState.RELEASED
    ):
        return True
    return liveness(rec.holder.ident) not in SEEN


def supersede(
    store: LeaseStore, rec: LeaseRecord, version: str, wait_s: float, notify: Notify = quiet
) -> bool:
    """Ask the older holder `rec` to retire for `version`; True once it left (within `wait_s`)."""
    h = rec.holder
    notify(f"asking {store.family} {h.version} (pid {h.pid}) to retire for {version}")
    store.transact(
        lambda cur: (None, decide_supersede(cur, version, os.getpid(), time.time()).write)
    )
    # A foreign holder is asked through the record only: its port and pid are not ours to
    # trust, and the token must never go to whoever listens on that port here.
    from tenure.adapters.http import request  # noqa: PLC0415
    from tenure.adapters.tokens import read_token  # noqa: PLC0415

    token = None if is_foreign_holder(rec) else read_token(store.root, store.key, h.pid)
    if token is not None and h.port is not None and h.control:
        request(
            h.port,
            "POST",
            "/api/retire",
            token=token,
            payload={"reason": "superseded", "by": version},
        )
    return wait_until(lambda: has_left(store, rec), wait_s, POLL_S) is not None


@frozen
class Prepared:
    """What a start does after `prepare_start`: reuse `reuse`, or take the lease (spawning
    when the caller spawns), waiting up to `wait_s` for an old lease to be let go."""

    action: str  # reused / started / superseded
    wait_s: float = 0.0
    reuse: LeaseRecord | None = None


def prepare_start(
    store: LeaseStore,
    version: str,
    timing: Timing,
    usable: Callable[[LeaseRecord], bool] | None,
    notify: Notify = quiet,
) -> Prepared:
    """The one start algorithm, run under the family's start lock (control.md#start) by
    `tenure <family> start`, `tenure.ensure` and `tenure run`:

    - a live holder at `version` or newer: reused when `usable` says so (e.g. it answers as
      holder); a foreign one that is not usable is refused (`LeaseHeld`), a local one that is
      not (wedged) is waited out; with `usable=None` (a holder that cannot reuse: `tenure run`
      by hand) it is refused;
    - an older live holder: superseded; if it has not left within `leave_wait` (stopped, it
      cannot see the mark) its lease is waited out;
    - an unreadable record or a live holder past its TTL: waited out (only a confirmed expiry
      takes it);
    - otherwise: started at once.
    """
    store.check_writable()  # a directory in the record's place is no lease to wait out
    bound = leave_wait(timing)
    current = store.read()
    rec = fresh_lease(store, current)
    if rec is not None:
        h = rec.holder
        if not is_newer(version, h.version):
            if usable is not None and usable(rec):
                return Prepared("reused", reuse=rec)
            if usable is None or is_foreign_holder(rec):
                raise lease_held(rec)
            notify(
                f"{store.family} holder pid {h.pid} is alive but not answering; waiting up to "
                f"{bound:.0f}s for its lease (epoch {rec.epoch}) to expire"
            )
            return Prepared("started", bound)
        if supersede(store, rec, version, bound, notify):
            return Prepared("superseded")
        # Stopped or wedged: it cannot see the mark. Its lease has run out by now; the new
        # holder takes it once its own watch confirms that.
        notify(f"{store.family} pid {h.pid} did not leave; taking over its lease")
        return Prepared("superseded", bound)
    if isinstance(current, Unreadable):
        # spec: lease.md#unreadable — taken only after it stayed unchanged for one TTL.
        notify(
            f"{store.family} lease record is unreadable ({current.reason}); waiting up to "
            f"{bound:.0f}s for it to stay unchanged one TTL, then taking it over"
        )
        return Prepared("started", bound)
    if isinstance(current, LeaseRecord) and holder_liveness(current) in SEEN:
        notify(
            f"{store.family} holder pid {current.holder.pid} is past its lease; waiting up to "
            f"{bound:.0f}s for its expiry to be confirmed"
        )
        return Prepared("started", bound)
    return Prepared("started")


def request_stop(store: LeaseStore, rec: LeaseRecord) -> bool:
    """Mark `rec`'s holder `stop_requested` in the record, under the record lock, when the
    record still holds that epoch (lease.md#stop); whether the mark was written."""

    def mark(cur: LeaseRecord | Unreadable | None) -> tuple[bool, LeaseRecord | None]:
        write = decide_stop_request(cur, rec.epoch, os.getpid(), time.time())
        return write is not None, write

    return store.transact(mark)


def holder_policy(rec: LeaseRecord, grace_s: float | None = None) -> StopPolicy:
    """How `rec`'s holder is stopped: the stop it recorded (control.md#stop-policy), else
    SIGTERM and the default grace; `grace_s` is a caller's own grace, which wins."""
    policy = HOLDER_STOP.following(rec.holder.stop)
    return policy if grace_s is None else policy.with_grace(grace_s)


def stop_holder(
    store: LeaseStore,
    rec: LeaseRecord,
    *,
    policy: StopPolicy,
    marker: tuple[str, str | None] | None = None,
    notify: Notify = quiet,
) -> signal.Signals | None:
    """The one stop of a lease holder (lease.md#stop): ask through the record first, on every
    platform — the only way to reach a foreign holder, whose pid means nothing here — then,
    for a holder that lives here, the verified stop under `policy` (`holder_policy`: its
    signal +SIGCONT, grace, SIGKILL). The signal that ended it, or None when it left on the
    request alone (or was gone already)."""
    request_stop(store, rec)
    heartbeat = rec.heartbeat_s if rec.heartbeat_s is not None else rec.ttl_s / 3
    bound = asked_leave_wait(heartbeat, policy.grace_s)
    # On Windows there is no graceful signal (SIGTERM is TerminateProcess): the mark is the
    # only way to let a holder drain and release; it is terminated only if it did not act.
    windows_left = (
        platform.WINDOWS
        and not is_foreign_holder(rec)
        and wait_until(lambda: has_left(store, rec), bound, POLL_S) is not None
    )
    if windows_left:
        return None
    if is_foreign_holder(rec):
        notify(f"asked {rec.family} pid {rec.holder.pid} (lives elsewhere) to leave")
        if wait_until(lambda: has_left(store, rec), bound, POLL_S) is None:
            raise StopRefused(
                f"{rec.family} holder pid {rec.holder.pid} lives elsewhere and did not leave "
                f"within {bound:.0f}s of being asked through the record; it is never signalled "
                "from here"
            )
        return None
    # The verified stop loads threading and select: a host tool reusing a holder never needs it.
    from tenure.adapters.stopping import stop_verified  # noqa: PLC0415

    return stop_verified(rec.holder.ident, rec.family, marker=marker, policy=policy, notify=notify)
