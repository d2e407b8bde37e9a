"""One engine behind every cleanup entry point: gather scope, scan, classify (adapter glue).

Entry points: the startup reaper (a new holder, safe_auto of its own family), the doctor
(read-only), the reset (safe_auto, plus operator_required when forced) and the dashboard
family's own cleanup. Each works on exactly one family's range.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tenure.adapters import config, platform
from tenure.adapters.files import read_nofollow
from tenure.adapters.location import here
from tenure.adapters.probe import PidLookup, listening_pids, scan
from tenure.adapters.procinfo import holder_liveness
from tenure.adapters.root import read_root_id
from tenure.adapters.store import LeaseStore
from tenure.core import speckitty
from tenure.core.classify import DaemonIdentityRecord, LeaseView, Scope, classify
from tenure.core.families import FAMILIES, Family
from tenure.core.lease import LeaseStatus, Liveness, lease_status
from tenure.core.record import LeaseRecord, LeaseScope, LeaseState
from tenure.core.timing import DRAIN_TIMEOUT_S, Timing
from tenure.core.values import frozen
from tenure.errors import ScanIncomplete
from tenure.protocol.leases import family_names, has_user_record, scoped_stores

__all__ = ["family_names", "has_user_record", "scoped_stores"]


def legacy_root(override: Path | None = None) -> Path:
    """The legacy spec-kitty root: the override, `$SPEC_KITTY_HOME`, or `~/.spec-kitty`."""
    if override is not None:
        return Path(override).expanduser().resolve()
    return Path(speckitty.legacy_root(config.legacy_env(), str(Path.home()))).expanduser().resolve()


def read_legacy_state(root: Path) -> speckitty.StateFile | None:
    """The legacy state file (the recorded singleton), if present and readable."""
    try:
        data = read_nofollow(root / speckitty.STATE_FILE, 4096)
    except OSError:
        return None
    return None if data is None else speckitty.parse_state_file(data.decode("utf-8", "replace"))


def retire_grace(timing: Timing) -> float:
    """How long a non-holder may linger before it counts as stale (TENURE_RETIRE_GRACE)."""
    return config.retire_grace(timing.ttl_s + 2 * timing.heartbeat_s + DRAIN_TIMEOUT_S)


def lease_view(
    root: Path, family: str, now: float, scope: LeaseScope | None = None
) -> LeaseView | None:
    """The family's lease (in `scope`) as seen right now (wall clock: a report, never a
    takeover)."""
    rec = LeaseStore(root, family, scope).read()
    if not isinstance(rec, LeaseRecord):
        return None
    live = holder_liveness(rec)
    status = lease_status(rec, live, now)
    return LeaseView(
        holder_pid=rec.holder.pid,
        holder_create_time=rec.holder.create_time,
        holder_started_at=rec.holder.started_at,
        epoch=rec.epoch,
        held=status in (LeaseStatus.HELD, LeaseStatus.EXPIRED, LeaseStatus.FOREIGN),
        expired=status is LeaseStatus.EXPIRED,
        child_pid=None if rec.child is None else rec.child.pid,
        child_create_time=None if rec.child is None else rec.child.create_time,
        holder_start_ticks=rec.holder.start_ticks,
        child_start_ticks=None if rec.child is None else rec.child.start_ticks,
        foreign=rec.holder.where.describe()
        if status is LeaseStatus.FOREIGN and rec.holder.where is not None
        else None,
        tree=None if rec.child is None else rec.child.tree,
        holder_gone=live is None or live in (Liveness.DEAD, Liveness.REUSED),
        service_port=rec.holder.port
        if rec.state is LeaseState.HELD and not rec.holder.control
        else None,
        orphan_trees=tuple(
            (c.tree, c.start_ticks, c.create_time) for c in rec.orphans if c.tree is not None
        ),
        version=rec.holder.version,
    )


def gather_scope(family: Family, root: Path, legacy: Path) -> Scope:
    """Facts about who asks: this uid, the resolved roots, the lease, the legacy singleton."""
    now = time.time()
    state = read_legacy_state(legacy) if family.name == "sync" else None
    return Scope(
        family=family,
        uid=platform.uid(),
        root=str(Path(root).expanduser().resolve()),
        legacy_root=str(legacy),
        now_wall=now,
        retire_grace_s=retire_grace(config.timing(family.idle_s)),
        lease=lease_view(root, family.name, now),
        scoped=tuple(
            view
            for store in scoped_stores(root, family.name)
            if (view := lease_view(root, family.name, now, store.scope)) is not None
        ),
        legacy_singleton_pid=None if state is None else state.pid,
        legacy_singleton_port=None if state is None else state.port,
        root_id=_root_id(root),
        pid_ns=None if (where := here()) is None else where.pid_ns,
    )


def _root_id(root: Path) -> str | None:
    try:
        return read_root_id(root)
    except OSError:
        return None


@frozen
class Survey:
    """Every in-range listener of one family, classified."""

    family: Family
    scope: Scope
    records: list[DaemonIdentityRecord]
    elapsed_s: float
    not_scanned: str | None = None  # why the ports were not scanned (too many open files)


def survey(
    family: Family, root: Path, legacy: Path, pid_lookup: PidLookup = listening_pids
) -> Survey:
    """Scan the family's ports and classify every listener. Read-only."""
    scope = gather_scope(family, root, legacy)
    try:
        result = scan(config.ports(family), pid_lookup, ask=_askable(family, scope.lease))
    except ScanIncomplete as exc:
        return Survey(family, scope, [], 0.0, not_scanned=exc.strerror or str(exc))
    records = [classify(facts, scope) for facts in result.listeners]
    return Survey(family, scope, sorted(records, key=lambda r: r.port), result.elapsed_s)


def _askable(family: Family, lease: LeaseView | None) -> Callable[[int], bool]:
    """Which listeners get `GET /api/health` (control.md#what-tenure-sends): only in the
    built-in families' ranges, where spec-kitty's daemons are recognised by their answer, and
    never the port of a holder without a control plane (a `tenure.hold` daemon's service, a
    `tenure run` child). In any other family's range a connect is all a listener gets."""
    if family.name not in FAMILIES:
        return lambda _port: False
    quiet = None if lease is None else lease.service_port
    return lambda port: port != quiet


def family_of(root: Path, name: str) -> Family | None:
    """A family with a port range: built in, or as its lease records say (None: no range)."""
    if name in FAMILIES:
        return FAMILIES[name]
    for store in [LeaseStore(root, name), *scoped_stores(root, name)]:
        rec = store.read()
        if isinstance(rec, LeaseRecord) and rec.ports is not None:
            return Family(name, rec.ports[0], rec.ports[1])
    return None


def scannable_families(root: Path) -> list[Family]:
    """Every family of the root whose port range is known: what the doctor scans."""
    found = (family_of(root, name) for name in family_names(root))
    return [f for f in found if f is not None]
