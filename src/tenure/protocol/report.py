"""The lease view (read-only): one family's lease as `status`, `tenure ls` and the doctor
report it. No spawn, no write (not even a lock file), no signal. spec: lease.md#status
"""

from __future__ import annotations

import time
from pathlib import Path

from tenure.adapters.http import health
from tenure.adapters.procinfo import holder_liveness, lock_holder_pid
from tenure.adapters.store import LeaseStore
from tenure.core.health import parse_health
from tenure.core.hints import TYPE_CHECKING
from tenure.core.lease import LeaseStatus, Liveness, lease_status
from tenure.core.record import LeaseScope, LeaseState, Unreadable
from tenure.core.values import frozen

if TYPE_CHECKING:
    from typing import Any

LOCK_STUCK_CONFIRM_S = 0.25  # a lock held across two looks this far apart is reported


@frozen
class LeaseReport:
    """One family's lease as the doctor sees it."""

    family: str
    state: LeaseStatus
    holder_pid: int | None = None
    port: int | None = None
    version: str | None = None
    epoch: int | None = None
    renewed_ago_s: float | None = None
    expires_in_s: float | None = None
    seq: int | None = None
    superseded_by: dict[str, object] | None = None  # object, not Any: get_type_hints resolves it
    holder_answers: bool | None = None
    holder_alive: bool | None = None
    unreadable_reason: str | None = None
    lock_holder_pid: int | None = None
    record_path: str = ""
    lives: str | None = None  # where a foreign holder lives (lease.md#foreign)
    scope: str | None = None  # the directory a scoped lease is for; None: the user scope


def lease_report(
    root: Path, family: str, now: float, scope: LeaseScope | None = None
) -> LeaseReport:
    """One family's lease (in `scope`; None: the user scope) as the doctor (and `tenure ls`)
    sees it. Read-only."""
    store = LeaseStore(root, family, scope)
    where = None if scope is None else scope.path
    lock_pid = lock_holder_pid(store.lock_path)
    if lock_pid is not None:
        time.sleep(LOCK_STUCK_CONFIRM_S)
        if lock_holder_pid(store.lock_path) != lock_pid:
            lock_pid = None
    rec = store.read()
    path = str(store.record_path)
    if rec is None:
        return LeaseReport(
            family, LeaseStatus.ABSENT, lock_holder_pid=lock_pid, record_path=path, scope=where
        )
    if isinstance(rec, Unreadable):
        return LeaseReport(
            family,
            LeaseStatus.UNREADABLE,
            unreadable_reason=rec.reason,
            lock_holder_pid=lock_pid,
            record_path=path,
            scope=where,
        )
    answers = None  # not asked: a holder without a control port is judged by its record
    if rec.state is LeaseState.HELD and rec.holder.control and rec.holder.port is not None:
        doc = parse_health(health(rec.holder.port))
        answers = doc is not None and doc.pid == rec.holder.pid
    live = holder_liveness(rec)
    alive = None if live is None else live is Liveness.ALIVE
    state = lease_status(rec, live, now)
    sup = rec.superseded_by
    return LeaseReport(
        family=family,
        state=state,
        holder_pid=rec.holder.pid,
        port=rec.holder.port,
        version=rec.holder.version,
        epoch=rec.epoch,
        renewed_ago_s=round(now - rec.renewed_at, 3),
        seq=rec.seq,
        expires_in_s=round(rec.renewed_at + rec.ttl_s - now, 3)
        if rec.state is LeaseState.HELD
        else None,
        superseded_by=None
        if sup is None
        else {"version": sup.version, "pid": sup.pid, "at": sup.at},
        holder_answers=answers,
        holder_alive=alive,
        lock_holder_pid=lock_pid,
        record_path=path,
        lives=rec.holder.where.describe()
        if live is Liveness.FOREIGN and rec.holder.where is not None
        else None,
        scope=where,
    )


def lease_json(lease: LeaseReport) -> dict[str, Any]:
    """One lease as the doctor's (and `tenure ls`'s) JSON shows it."""
    return {
        "family": lease.family,
        "state": lease.state,
        "holder_pid": lease.holder_pid,
        "port": lease.port,
        "version": lease.version,
        "epoch": lease.epoch,
        "renewed_ago_s": lease.renewed_ago_s,
        "expires_in_s": lease.expires_in_s,
        "superseded_by": lease.superseded_by,
        "holder_answers": lease.holder_answers,
        "holder_alive": lease.holder_alive,
        "unreadable_reason": lease.unreadable_reason,
        "lock_holder_pid": lease.lock_holder_pid,
        "lives": lease.lives,
        "scope": lease.scope,
    }
