"""Status, stop and restart of a family's daemon (driver): read-only status, verified stop.

spec: docs/protocol/control.md#status-and-stop
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tenure.adapters import platform
from tenure.adapters.http import LOOPBACK, request
from tenure.adapters.root import check_root
from tenure.adapters.stopping import gone_within
from tenure.adapters.store import LeaseStore, log_path
from tenure.adapters.tokens import read_token
from tenure.adapters.waiting import wait_until
from tenure.core.families import Family
from tenure.core.hints import TYPE_CHECKING
from tenure.core.notify import Notify, quiet
from tenure.core.record import LeaseRecord, LeaseScope
from tenure.core.timing import POLL_S
from tenure.core.values import frozen, replace
from tenure.errors import StopFailed
from tenure.protocol.supersede import (
    has_left,
    holder_policy,
    is_foreign_holder,
    stop_holder,
)
from tenure.requester.start import (
    DaemonInfo,
    healthy_holder,
    info_from_health,
    info_from_record,
    serves_by_record,
    start,
)

if TYPE_CHECKING:
    from typing import Any


@frozen
class Status:
    """What `status` knows: `state` is running, not_answering, foreign or absent."""

    state: str
    info: DaemonInfo | None = None
    pid: int | None = None
    port: int | None = None
    epoch: int | None = None
    expires_in_s: float | None = None
    log: str | None = None
    lives: str | None = None  # where a foreign holder lives (lease.md#foreign)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "state": self.state,
            "running": self.state == "running",
            "daemon": None if self.info is None else self.info.to_json(),
            "pid": self.pid,
            "port": self.port,
            "epoch": self.epoch,
            "expires_in_s": self.expires_in_s,
            "log": self.log,
            "lives": self.lives,
        }


def status(family: Family, root: Path, scope: LeaseScope | None = None) -> Status:
    """The family's daemon as seen now. Read-only: no spawn, no write, no signal.

    A holder that is alive but does not answer (stopped, wedged) is `not_answering`, with
    the time until its lease expires; it still holds the lease and its port.
    """
    root = check_root(root) if os.path.lexists(root) else root
    store = LeaseStore(root, family.name, scope)
    rec, doc = healthy_holder(store)
    log = str(log_path(root, store.key))
    if rec is None:
        return Status("absent", log=log)
    if doc is not None:
        info = info_from_health(doc, "running")
        return Status("running", info, info.pid, info.port, info.epoch, log=log)
    expires = round(rec.renewed_at + rec.ttl_s - time.time(), 1)
    if serves_by_record(rec):
        info = info_from_record(rec, "running")
        return Status("running", info, info.pid, info.port, info.epoch, expires, log)
    if is_foreign_holder(rec) and rec.holder.where is not None:
        lives = rec.holder.where.describe()
        h = rec.holder
        return Status("foreign", None, h.pid, h.port, rec.epoch, expires, log, lives)
    return Status("not_answering", None, rec.holder.pid, rec.holder.port, rec.epoch, expires, log)


def stop(
    family: Family, root: Path, notify: Notify = quiet, scope: LeaseScope | None = None
) -> DaemonInfo | None:
    """Stop the holder: authenticated shutdown, or for a holder that does not answer, SIGTERM
    then SIGKILL, each after re-checking its identity (pid, start time, this root's marker).
    """
    root = check_root(root) if os.path.lexists(root) else root
    store = LeaseStore(root, family.name, scope)
    rec, doc = healthy_holder(store)
    if rec is None:
        return None
    if doc is not None and rec.holder.port is not None:
        token = read_token(root, store.key, rec.holder.pid)
        if token is None:
            raise StopFailed(f"no token for {family.name} pid {rec.holder.pid}; cannot stop it")
        request(rec.holder.port, "POST", "/api/shutdown", token=token)
        if _wait_gone(store, rec, holder_policy(rec).grace_s):
            return info_from_health(doc, "stopped")
        notify(f"{family.name} pid {rec.holder.pid} did not leave after shutdown; escalating")
    elif rec.holder.control:
        notify(f"{family.name} holder pid {rec.holder.pid} is alive but not answering; escalating")
    # A reference daemon carries this root's marker in its argv; a `tenure run` wrapper or a
    # `tenure.hold` daemon is proved by the record's identity alone (pid, start, location).
    marker = ("tenure-root", str(root.resolve())) if rec.holder.control else None
    policy = holder_policy(rec)  # the stop it recorded (control.md#stop-policy)
    sig = stop_holder(store, rec, policy=policy, marker=marker, notify=notify)
    return DaemonInfo(
        url=f"http://{LOOPBACK}:{rec.holder.port}",
        port=rec.holder.port or 0,
        pid=rec.holder.pid,
        version=rec.holder.version,
        epoch=rec.epoch,
        action="killed" if sig is platform.KILL else "terminated" if sig is not None else "stopped",
    )


def restart(  # noqa: PLR0917  (the shape of `start`, which the hot CLI calls alike)
    family: Family,
    root: Path,
    version: str,
    notify: Notify = quiet,
    legacy_root: Path | None = None,
    scope: LeaseScope | None = None,
) -> DaemonInfo:
    """Graceful restart: stop the holder (if any), then start a fresh one (epoch + 1)."""
    stopped = stop(family, root, notify, scope)
    if stopped is not None:
        notify(f"stopped {family.name} pid {stopped.pid} (epoch {stopped.epoch})")
    info = start(family, root, version, notify, legacy_root, scope)
    return replace(info, action="restarted") if info.action == "started" else info


def _wait_gone(store: LeaseStore, rec: LeaseRecord, timeout: float) -> bool:
    if is_foreign_holder(rec):
        # Its process cannot be seen from here: it has gone when the record says so.
        return wait_until(lambda: has_left(store, rec), timeout, POLL_S) is not None
    return gone_within(rec.holder.ident, timeout)
