"""Client side of a family's daemon: ensure exactly one, report status, stop (adapter).

`start` serialises check → spawn → wait-healthy under one OS lock per family, so any number of
concurrent starts end with one daemon. spec: docs/protocol/control.md#start
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from tenure.adapters import config
from tenure.adapters.files import locked, open_regular
from tenure.adapters.http import HEALTH_TIMEOUT_S, LOOPBACK, health
from tenure.adapters.procinfo import liveness
from tenure.adapters.root import RootLayout, ensure_root
from tenure.adapters.spawn import spawn_detached
from tenure.adapters.store import LeaseStore, log_path
from tenure.adapters.waiting import wait_until
from tenure.core.families import EXIT_HELD, Family
from tenure.core.handover import is_newer
from tenure.core.health import AFTER_REAPER_PATH, Health, parse_health
from tenure.core.hints import TYPE_CHECKING
from tenure.core.lease import SEEN, Liveness
from tenure.core.notify import Notify, quiet
from tenure.core.record import LeaseRecord, LeaseScope, LeaseState
from tenure.core.timing import (
    POLL_S,
    READY_HEALTH_TIMEOUT_S,
    REAPER_REPORT_WAIT_S,
    SPAWN_TIMEOUT_S,
    START_ATTEMPTS,
    start_lock_wait,
)
from tenure.core.values import asdict, frozen, replace
from tenure.errors import DaemonStartError
from tenure.protocol.supersede import is_foreign_holder, prepare_start

if TYPE_CHECKING:
    import subprocess
    from typing import Any


@frozen
class DaemonInfo:
    """What `start` and `status` report about a family's daemon."""

    url: str
    port: int
    pid: int
    version: str
    epoch: int
    action: str
    # The holder's startup reaper: {"state": pending/done/failed/none, "swept": [...],
    # "skipped": [...], "failed": [...]} (swept and the rest once done).
    startup_reaper: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def log_size(root: Path, family: str) -> int:
    """The log's current size: where the next attempt's lines begin."""
    try:
        return os.lstat(log_path(root, family)).st_size
    except OSError:
        return 0


def log_tail(root: Path, family: str, lines: int = 20, since: int = 0) -> str:
    """The last lines the log gained after byte offset `since`, for error messages."""
    try:
        fd = open_regular(log_path(root, family))
    except OSError:
        return "(no log)"
    try:
        size = os.fstat(fd).st_size
        start = since if since <= size else 0  # rotated meanwhile: the new file is all ours
        os.lseek(fd, max(start, size - 64 * 1024), os.SEEK_SET)
        text = os.read(fd, 64 * 1024).decode("utf-8", "replace")
    finally:
        os.close(fd)
    return "\n".join(text.splitlines()[-lines:]) or "(nothing logged)"


def info_from_health(doc: Health, action: str) -> DaemonInfo:
    """What start/status/stop report, from the daemon's own health answer."""
    result = doc.startup_reaper_result
    reaper: dict[str, Any] = {"state": doc.startup_reaper}
    if result is not None:
        reaper.update({k: result.get(k, []) for k in ("swept", "skipped", "failed")})
    return DaemonInfo(
        url=f"http://{LOOPBACK}:{doc.port}",
        port=doc.port,
        pid=doc.pid,
        version=doc.package_version,
        epoch=doc.epoch,
        action=action,
        startup_reaper=reaper,
    )


def fetch_health(
    port: int, timeout: float = HEALTH_TIMEOUT_S, path: str = "/api/health"
) -> Health | None:
    """The parsed health answer on `port` (at `path`), or None."""
    return parse_health(health(port, timeout, path))


def _after_reaper(doc: Health, action: str) -> DaemonInfo:
    """The fresh holder's info once its startup reaper finished (or a short bound passed).

    A start reports what the reaper swept; if it is still running the caller says where to
    look (`status` shows the last result).
    """
    if doc.startup_reaper == "pending":
        # One request the daemon answers when its reaper finished (control.md#startup-reaper).
        wait = REAPER_REPORT_WAIT_S + HEALTH_TIMEOUT_S
        doc = fetch_health(doc.port, wait, AFTER_REAPER_PATH) or doc
    return info_from_health(doc, action)


def info_from_record(rec: LeaseRecord, action: str) -> DaemonInfo:
    """What start/status/stop report about a holder without a control plane (a `tenure run`
    wrapper or a `tenure.hold` daemon holding a built-in family): its record says it all."""
    h = rec.holder
    url = f"http://{LOOPBACK}:{h.port}" if h.port is not None else "-"
    return DaemonInfo(url, h.port or 0, h.pid, h.version, rec.epoch, action)


def healthy_holder(store: LeaseStore) -> tuple[LeaseRecord | None, Health | None]:
    """The held record whose holder is alive, and its health answer when it serves as holder.

    Only a control port is asked (`holder.control`, control.md#what-tenure-sends): a built-in
    family held by `tenure run` or `tenure.hold` gets no request, and no answer."""
    rec = store.read()
    if not isinstance(rec, LeaseRecord) or rec.state is not LeaseState.HELD:
        return None, None
    live = liveness(rec.holder.ident)
    if live not in SEEN:
        return None, None
    if rec.holder.port is None or not rec.holder.control:
        return rec, None
    doc = fetch_health(rec.holder.port)
    # A foreign holder (lease.md#foreign) must also name this root instance: its pid alone
    # could be anybody's in a namespace that does not share ours.
    if (
        doc
        and doc.pid == rec.holder.pid
        and doc.is_holder
        and doc.epoch == rec.epoch
        and (live is Liveness.ALIVE or doc.root_id == rec.root_id)
    ):
        return rec, doc
    return rec, None


def serves_by_record(rec: LeaseRecord) -> bool:
    """Whether a live holder without a control plane (`tenure run`, `tenure.hold`) counts as
    running: it lives here (a foreign one must answer health to be reused) and its record is
    fresh by this clock (control.md#status-and-stop)."""
    return (
        not rec.holder.control
        and not is_foreign_holder(rec)
        and time.time() - rec.renewed_at <= rec.ttl_s
    )


def _reusable(store: LeaseStore) -> DaemonInfo | None:
    """The live holder a start may reuse: one that answers health as the record's holder, or
    one without a control plane that `serves_by_record`."""
    rec, doc = healthy_holder(store)
    if rec is None:
        return None
    if doc is not None:
        return info_from_health(doc, "reused")
    return info_from_record(rec, "reused") if serves_by_record(rec) else None


def spawn(
    family: Family,
    root: Path,
    acquire_wait: float,
    env: dict[str, str] | None = None,
    key: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start a detached reference daemon: markers in argv, output to its log."""
    argv = [
        sys.executable,
        "-m",
        "tenure.daemon.main",
        f"--tenure-root={root}",
        f"--tenure-family={family.name}",
        f"--acquire-wait={acquire_wait:.3f}",
    ]
    return spawn_detached(root, key or family.name, argv, env)


def _wait_ready(
    proc: subprocess.Popen[bytes], store: LeaseStore, timeout: float, log_from: int
) -> Health | None:
    """Health of the spawned daemon once it holds; None if it exited because the lease is held."""

    def outcome() -> tuple[str, Health | None] | None:
        code = proc.poll()
        if code is not None:
            if code == EXIT_HELD:
                return ("held", None)  # it stood down: someone else holds the lease
            raise DaemonStartError(
                f"{store.family} daemon exited with code {code} before becoming healthy; "
                f"its log says:\n{log_tail(store.root, store.key, since=log_from)}"
            )
        rec = store.read()
        if isinstance(rec, LeaseRecord) and rec.holder.pid == proc.pid and rec.holder.port:
            # Our own child holds: it answers as soon as its serve loop runs, so one request
            # may wait for that (a loaded machine) instead of timing out and asking again.
            doc = fetch_health(rec.holder.port, READY_HEALTH_TIMEOUT_S)
            if doc and doc.pid == proc.pid and doc.is_holder:
                return ("ready", doc)
        return None

    found = wait_until(outcome, timeout, POLL_S)
    if found is None:
        raise DaemonStartError(
            f"{store.family} daemon pid {proc.pid} not healthy within {timeout:.1f}s; "
            f"its log says:\n{log_tail(store.root, store.key, since=log_from)}"
        )
    return found[1]


def start(  # noqa: PLR0917  (restart and the hot CLI pass these positionally)
    family: Family,
    root: Path,
    version: str,
    notify: Notify = quiet,
    legacy_root: Path | None = None,
    scope: LeaseScope | None = None,
) -> DaemonInfo:
    """Ensure exactly one healthy daemon of `family` for `root` (and `scope`: a project's
    dashboard) and return it.

    `legacy_root` is the spec-kitty root its startup reaper looks at (default: the daemon's
    `$SPEC_KITTY_HOME` or `~/.spec-kitty`).
    """
    # TENURE_FAMILY: launched for the family, so the daemon's `hold` leaves supersession to
    # this start, which did it under the start lock it holds while the daemon starts.
    spawn_env = {config.FAMILY_ENV: family.name}
    if legacy_root is not None:
        spawn_env["SPEC_KITTY_HOME"] = str(legacy_root)
    # Refuse bad configuration here, in one line, rather than in a daemon's log.
    timing = config.timing(family.idle_s)
    config.ports(family)
    root = ensure_root(root)
    store = LeaseStore(root, family.name, scope)
    # Its `hold` reads the scope as it reads TENURE_PORT; never one from our environment.
    spawn_env["TENURE_SCOPE"] = "" if scope is None else scope.path
    # Fast path without the lock: reusing a healthy holder changes nothing.
    reused = _reusable(store)
    if reused is not None and not is_newer(version, reused.version):
        return reused
    start_lock = RootLayout(root).start_lock(store.key)
    with locked(start_lock, timeout_s=start_lock_wait(timing)):
        answered: list[DaemonInfo] = []

        def answers(rec: LeaseRecord) -> bool:
            # Reused only when it answers health as the record's holder (not wedged), or,
            # without a control plane, while its fresh record names it.
            found = _reusable(store)
            if found is None or found.epoch != rec.epoch:
                return False
            answered.append(found)
            return True

        for _attempt in range(START_ATTEMPTS):
            plan = prepare_start(store, version, timing, answers, notify)
            if plan.reuse is not None:
                return replace(answered[-1], action=plan.action)
            log_from = log_size(root, store.key)
            proc = spawn(family, root, plan.wait_s, spawn_env, store.key)
            ready = _wait_ready(proc, store, SPAWN_TIMEOUT_S + plan.wait_s, log_from)
            if ready is not None:
                return _after_reaper(ready, plan.action)
        raise DaemonStartError(
            f"{family.name}: could not start or reuse a daemon after {START_ATTEMPTS} attempts; "
            f"see tenure auth doctor and {log_path(root, store.key)}"
        )
