"""`tenure stop --all`: every holder of a root — every family, every scope — stopped, each
through the one stop of a lease holder (asked through its record, then its own stop signal
after its identity is re-proved), and exactly what was stopped reported.
spec: docs/protocol/control.md#status-and-stop
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tenure.adapters.procinfo import holder_liveness
from tenure.adapters.store import LeaseStore
from tenure.core.hints import TYPE_CHECKING
from tenure.core.lease import SEEN
from tenure.core.record import LeaseRecord, LeaseScope
from tenure.core.values import asdict, frozen
from tenure.errors import TenureError
from tenure.protocol.leases import every_store
from tenure.protocol.supersede import holder_policy, stop_holder

if TYPE_CHECKING:
    from typing import Any

MAX_AT_ONCE = 8  # holders stopped in parallel: each stop mostly waits for a holder to leave


@frozen
class Stopped:
    """One holder `stop --all` found live: whether it is gone now, and if not, why."""

    family: str
    scope: str | None
    pid: int
    version: str
    stopped: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def stop_all(
    root: Path, family: str | None = None, scope: LeaseScope | None = None
) -> list[Stopped]:
    """Stop every live holder of the root (of `family`, of `scope` when given)."""
    wanted = [
        s
        for s in every_store(root)
        if (family is None or s.family == family)
        and (scope is None or (s.scope is not None and s.scope.digest == scope.digest))
    ]
    live = []
    for store in wanted:
        rec = store.read()
        if isinstance(rec, LeaseRecord) and holder_liveness(rec) in SEEN:
            live.append((store, rec))
    with ThreadPoolExecutor(max_workers=MAX_AT_ONCE) as pool:
        return list(pool.map(lambda held: _stop(*held), live))


def _stop(store: LeaseStore, rec: LeaseRecord) -> Stopped:
    where = None if rec.scope is None else rec.scope.path
    h = rec.holder
    try:
        stop_holder(store, rec, policy=holder_policy(rec, None))
    except (TenureError, OSError) as exc:
        return Stopped(rec.family, where, h.pid, h.version, False, str(exc))
    return Stopped(rec.family, where, h.pid, h.version, True)
