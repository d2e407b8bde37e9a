"""`tenure.ensure` / `status` / `stop`: the CLI side of adoption, for any family (public API).

A tool calls `tenure.ensure(family, command, version=...)` at the top of every command: exactly
one daemon for the family (under the family's start lock), reused when the holder is equal or
newer and alive, superseded when older (the record's `superseded_by`; the holder leaves within a
heartbeat), taken over when dead; otherwise `command` is spawned detached with `{port}`
substituted and TENURE_FAMILY / TENURE_ROOT / TENURE_VERSION / TENURE_PORT / TENURE_PORTS in
its environment, and `ensure` returns once the child holds the lease.
spec: docs/protocol/control.md#ensure
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext

from tenure.adapters import config
from tenure.adapters.files import locked
from tenure.adapters.procinfo import holder_liveness
from tenure.adapters.root import RootLayout, ensure_root, given_or_default
from tenure.adapters.store import LeaseStore
from tenure.adapters.waiting import wait_until
from tenure.core.handover import is_newer
from tenure.core.hints import TYPE_CHECKING
from tenure.core.inputs import check_daemon, check_family
from tenure.core.lease import SEEN
from tenure.core.notify import Notify, quiet
from tenure.core.record import LeaseRecord, LeaseScope, LeaseState
from tenure.core.timing import POLL_S, SPAWN_TIMEOUT_S, start_lock_wait
from tenure.core.values import asdict, frozen
from tenure.errors import ConfigError, DaemonStartError
from tenure.protocol.supersede import (
    answers_as_holder,
    held_record,
    holder_policy,
    is_foreign_holder,
    lease_held,
    prepare_start,
    stop_holder,
)

if TYPE_CHECKING:
    import subprocess
    from typing import Any

    from tenure.protocol.report import LeaseReport

READY = ("lease", "port")


@frozen
class Ensured:
    """The family's daemon after `ensure`: who holds the lease, and what `ensure` did."""

    family: str
    pid: int
    port: int | None
    version: str
    epoch: int
    action: str  # started / reused / superseded
    scope: str | None = None  # the directory the lease is for; None: the user scope

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _ensured(rec: LeaseRecord, action: str) -> Ensured:
    h = rec.holder
    where = None if rec.scope is None else rec.scope.path
    return Ensured(rec.family, h.pid, h.port, h.version, rec.epoch, action, where)


def _usable(rec: LeaseRecord) -> bool:
    """An equal or newer live holder is reused; a foreign one only when it answers on loopback
    as that holder (a shared network namespace), else `LeaseHeld` (lease.md#foreign)."""
    return not is_foreign_holder(rec) or answers_as_holder(rec)


def _reuse(rec: LeaseRecord) -> Ensured:
    if not _usable(rec):
        raise lease_held(rec)
    return _ensured(rec, "reused")


def free_port(
    ports: tuple[int, int] | None, prefer: int | None = None, avoid: set[int] | None = None
) -> int | None:
    """The first free port of the range, not in `avoid` (other scopes' holders' ports);
    `prefer` (the previous holder's port) when it is in the range and free again, so an
    upgrade keeps the port clients know."""
    if ports is None:
        return None
    from tenure.adapters.ports import open_ports  # noqa: PLC0415  (spawning only: socket)

    candidates = range(ports[0], ports[1] + 1)
    busy = set(open_ports(candidates))
    free = [p for p in candidates if p not in busy and p not in (avoid or ())]
    if not free:
        raise DaemonStartError(f"no free port in {ports[0]}-{ports[1]}")
    return prefer if prefer in free else free[0]


def _spawn(
    store: LeaseStore,
    command: Sequence[str],
    version: str,
    ports: tuple[int, int] | None,
    *,
    wait: float,
    env: Mapping[str, str] | None,
    cwd: str | os.PathLike[str] | None,
) -> subprocess.Popen[bytes]:
    from tenure.adapters.spawn import spawn_detached  # noqa: PLC0415  (spawning only)

    family, root = store.family, store.root
    last = store.read()
    # The previous holder's port when it is free again: an upgrade keeps the port clients know.
    from tenure.protocol.leases import ports_taken  # noqa: PLC0415  (spawning only)

    prefer = last.holder.port if isinstance(last, LeaseRecord) else None
    port = free_port(ports, prefer=prefer, avoid=ports_taken(store))
    argv = [arg.replace("{port}", str(port)) if port is not None else arg for arg in command]
    added = {
        **(env or {}),
        config.FAMILY_ENV: family,
        config.ROOT_ENV: str(root),
        "TENURE_VERSION": version,
        config.WAIT_ENV: f"{wait:.3f}",
    }
    if port is not None and ports is not None:
        added[config.PORT_ENV] = str(port)
        added[config.PORTS_ENV] = f"{ports[0]}-{ports[1]}"
    if store.scope is not None:
        added["TENURE_SCOPE"] = store.scope.path  # `hold` reads it as it reads TENURE_PORT
    return spawn_detached(root, store.key, argv, added, cwd)


def ensure(
    family: str,
    command: Sequence[str],
    *,
    version: str,
    ports: tuple[int, int] | None = None,
    root: str | os.PathLike[str] | None = None,
    notify: Notify = quiet,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    ready: str = "lease",
    scope: str | os.PathLike[str] | None = None,
) -> Ensured:
    """Exactly one daemon of `family` for this root, at `version` or newer; see the module doc.

    The command inherits this process's environment (plus `env`) and working directory (or
    `cwd`). `ready="lease"` returns once the spawned daemon holds the lease; `ready="port"`
    also waits until its recorded port accepts a connection (a reused holder: at once).
    `scope` (a directory) makes it that directory's daemon, beside those of other scopes; the
    daemon gets `TENURE_SCOPE` (lease.md#scopes).
    """
    check_daemon(family, version, ports)  # before any file is touched
    if ready not in READY:
        raise ConfigError(f"ready={ready!r}: expected one of {', '.join(READY)}")
    if ports is None and any("{port}" in arg for arg in command):
        raise ConfigError("the command uses {port}: give the family's port range (ports=(lo, hi))")
    timing = config.timing()
    where = scope_at(scope)
    the_root = ensure_root(given_or_default(root))
    store = LeaseStore(the_root, family, where)
    rec = held_record(store)  # the fast path takes no lock and changes nothing
    if rec is not None and not is_newer(version, rec.holder.version):
        return _reuse(rec)
    from tenure.adapters.spawn import check_command  # noqa: PLC0415  (spawning only)

    # A command that cannot start fails here, before an older holder is asked to leave: this
    # process cannot bring the old code back (control.md#ensure).
    check_command(command, {**os.environ, **(env or {})}, cwd)
    with locked(RootLayout(the_root).start_lock(store.key), timeout_s=start_lock_wait(timing)):
        plan = prepare_start(store, version, timing, _usable, notify)
        if plan.reuse is not None:
            return _ensured(plan.reuse, plan.action)
        from tenure.adapters.ports import open_ports  # noqa: PLC0415  (spawning only: socket)

        # One port per holder across the family's scopes: the chosen port stays claimed until
        # the new daemon's record names it (lease.md#scopes).
        claim = RootLayout(the_root).ports_lock(family)
        with locked(claim, timeout_s=start_lock_wait(timing)) if ports else nullcontext():
            proc = _spawn(store, command, version, ports, wait=plan.wait_s, env=env, cwd=cwd)

            def holds() -> LeaseRecord | None:
                if proc.poll() is not None:
                    raise DaemonStartError(
                        f"{family} daemon exited with code {proc.returncode} before holding its "
                        f"lease; see {RootLayout(the_root).log(store.key)}"
                    )
                now = store.read()
                if not (isinstance(now, LeaseRecord) and now.holder.pid == proc.pid):
                    return None
                if now.state is not LeaseState.HELD:
                    return None
                port = now.holder.port
                if ready == "port" and port is not None and open_ports([port]) != [port]:
                    return None
                return now

            fresh = wait_until(holds, SPAWN_TIMEOUT_S + plan.wait_s, POLL_S)
            if fresh is None:
                raise DaemonStartError(f"{family} daemon pid {proc.pid} did not take its lease")
        from tenure.adapters.commands import remember  # noqa: PLC0415  (a start worked)

        # `tenure start FAMILY` starts it again this way (never with this environment).
        scope_path = None if where is None else where.path
        remember(the_root, store.key, command, cwd, version, ports, scope_path)
        return _ensured(fresh, plan.action)


def scope_at(scope: str | os.PathLike[str] | None) -> LeaseScope | None:
    """The scope of directory `scope` (None: the user scope); `ConfigError` when it is not
    one (lease.md#scopes). Resolving loads its module only when there is a scope."""
    if scope is None:
        return None
    from tenure.adapters.scopes import resolve_scope  # noqa: PLC0415  (scoped only)

    return resolve_scope(scope)


def status(
    family: str,
    root: str | os.PathLike[str] | None = None,
    scope: str | os.PathLike[str] | None = None,
) -> LeaseReport:
    """The family's lease (in `scope`, a directory) as `tenure ls` shows it (read-only)."""
    from tenure.protocol.report import lease_report  # noqa: PLC0415

    check_family(family)
    return lease_report(given_or_default(root), family, time.time(), scope_at(scope))


def stop(
    family: str,
    root: str | os.PathLike[str] | None = None,
    wait_s: float | None = None,
    scope: str | os.PathLike[str] | None = None,
) -> int | None:
    """Stop the family's holder: ask it through the record (lease.md#stop), then its stop
    signal (SIGTERM unless it recorded another: control.md#stop-policy) +SIGCONT, `wait_s`
    (default: the grace it recorded, else 15 s) for it to leave, then SIGKILL, each after
    re-checking its identity (pid, start time, uid); a holder in another namespace is only
    asked. `scope` names a scoped lease's directory. Returns the pid stopped, or None when
    nothing held it."""
    store = LeaseStore(given_or_default(root), check_family(family), scope_at(scope))
    rec = store.read()
    if not isinstance(rec, LeaseRecord) or holder_liveness(rec) not in SEEN:
        return None
    stop_holder(store, rec, policy=holder_policy(rec, wait_s))
    return rec.holder.pid
