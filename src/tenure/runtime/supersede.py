"""Supersession, requester side (driver): one path for `start`, `tenure.ensure` and `tenure run`.

The requester marks the record `superseded_by` under the record lock (every holder sees it at
its next heartbeat, HTTP or not) and, when the holder serves a control plane and left its token
in the root, also calls its authenticated `/api/retire` so it leaves at once.
spec: docs/protocol/lease.md#supersession
"""

from __future__ import annotations

import os
import time

from tenure.adapters.http import request
from tenure.adapters.procinfo import holder_liveness, liveness
from tenure.adapters.store import LeaseStore
from tenure.adapters.tokens import read_token
from tenure.adapters.waiting import wait_until
from tenure.core.lease import LeaseStatus, Liveness, decide_supersede, lease_status
from tenure.core.notify import Notify, quiet
from tenure.core.record import LeaseRecord, LeaseState, Unreadable

POLL_S = 0.01


def held_record(store: LeaseStore) -> LeaseRecord | None:
    """The record if a live holder holds it and its lease is fresh."""
    return fresh_lease(store.read())


def fresh_lease(rec: LeaseRecord | Unreadable | None) -> LeaseRecord | None:
    """`rec` when a live holder holds it and its lease is fresh, else None."""
    if not isinstance(rec, LeaseRecord):
        return None
    if lease_status(rec, holder_liveness(rec), time.time()) is not LeaseStatus.HELD:
        return None
    return rec


def has_left(store: LeaseStore, rec: LeaseRecord) -> bool:
    """Whether the holder named by `rec` is gone, released, or no longer the record's holder."""
    cur = store.read()
    if (
        not isinstance(cur, LeaseRecord)
        or cur.epoch != rec.epoch
        or cur.state is LeaseState.RELEASED
    ):
        return True
    return liveness(rec.holder.pid, rec.holder.create_time) is not Liveness.ALIVE


def supersede(
    store: LeaseStore, rec: LeaseRecord, version: str, wait_s: float, notify: Notify = quiet
) -> bool:
    """Ask the older holder `rec` to retire for `version`; True once it left (within `wait_s`)."""
    h = rec.holder
    notify(f"asking {store.family} {h.version} (pid {h.pid}) to retire for {version}")
    store.transact(
        lambda cur: (None, decide_supersede(cur, version, os.getpid(), time.time()).write)
    )
    token = read_token(store.root, store.family, h.pid)
    if token is not None and h.port is not None:
        request(
            h.port,
            "POST",
            "/api/retire",
            token=token,
            payload={"reason": "superseded", "by": version},
        )
    return wait_until(lambda: has_left(store, rec), wait_s, POLL_S) is not None
