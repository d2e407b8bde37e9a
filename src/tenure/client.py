"""Client side of a family's daemon: ensure exactly one, report status, stop (adapter).

`start` serialises check → spawn → wait-healthy under one OS lock per family, so any number of
concurrent starts end with one daemon. spec: docs/protocol/control.md#start
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tenure.errors import DaemonStartError
from tenure.families import EXIT_HELD, Family
from tenure.httpc import LOOPBACK, health, request
from tenure.machine import Liveness, decide_supersede, is_newer
from tenure.procinfo import liveness
from tenure.record import LeaseRecord, LeaseState
from tenure.store import DIR_MODE, FILE_MODE, LeaseStore, ensure_root, locked, read_token
from tenure.timing import Timing

SPAWN_TIMEOUT_S = 10.0  # spawn → healthy bound, on top of any wait for an expiring holder
RETIRE_WAIT_S = 15.0  # bound on waiting for a superseded holder to leave
STOP_WAIT_S = 10.0
POLL_S = 0.01

Notify = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    """What `start` and `status` report about a family's daemon."""

    url: str
    port: int
    pid: int
    version: str
    epoch: int
    action: str

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def log_path(root: Path, family: str) -> Path:
    """Where a detached daemon's stdout/stderr go."""
    return root / "logs" / f"{family}.log"


def log_tail(root: Path, family: str, lines: int = 20) -> str:
    """The last lines of a family's log, for error messages."""
    try:
        text = log_path(root, family).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _info(doc: dict[str, Any], action: str) -> DaemonInfo:
    port = int(doc["port"])
    return DaemonInfo(
        url=f"http://{LOOPBACK}:{port}",
        port=port,
        pid=int(doc["pid"]),
        version=str(doc["package_version"]),
        epoch=int(doc["epoch"]),
        action=action,
    )


def healthy_holder(store: LeaseStore) -> tuple[LeaseRecord | None, dict[str, Any] | None]:
    """The held record whose holder is alive, and its health answer when it serves as holder."""
    rec = store.read()
    if not isinstance(rec, LeaseRecord) or rec.state is not LeaseState.HELD:
        return None, None
    if liveness(rec.holder.pid, rec.holder.create_time) is not Liveness.ALIVE:
        return None, None
    if rec.holder.port is None:
        return rec, None
    doc = health(rec.holder.port)
    if (
        doc
        and doc.get("pid") == rec.holder.pid
        and doc.get("role") == "holder"
        and doc.get("epoch") == rec.epoch
    ):
        return rec, doc
    return rec, None


def spawn(family: Family, root: Path, acquire_wait: float) -> subprocess.Popen[bytes]:
    """Start a detached daemon: new session, stdio to its log file, markers in argv."""
    log = log_path(root, family.name)
    log.parent.mkdir(mode=DIR_MODE, exist_ok=True)
    fd = os.open(
        log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
    )
    try:
        argv = [
            sys.executable,
            "-m",
            "tenure.daemon",
            f"--tenure-root={root}",
            f"--tenure-family={family.name}",
            f"--acquire-wait={acquire_wait:.3f}",
        ]
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(fd)


def _wait_ready(
    proc: subprocess.Popen[bytes], store: LeaseStore, timeout: float
) -> dict[str, Any] | None:
    """Health of the spawned daemon once it holds; None if it exited because the lease is held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            if code == EXIT_HELD:
                return None
            raise DaemonStartError(
                f"{store.family} daemon exited with code {code} before becoming healthy; "
                f"log tail:\n{log_tail(store.root, store.family)}"
            )
        rec = store.read()
        if (
            isinstance(rec, LeaseRecord)
            and rec.holder.pid == proc.pid
            and rec.holder.port is not None
        ):
            doc = health(rec.holder.port)
            if doc and doc.get("pid") == proc.pid and doc.get("role") == "holder":
                return doc
        time.sleep(POLL_S)
    raise DaemonStartError(
        f"{store.family} daemon pid {proc.pid} not healthy within {timeout:.1f}s; "
        f"log tail:\n{log_tail(store.root, store.family)}"
    )


def _supersede(store: LeaseStore, rec: LeaseRecord, version: str, notify: Notify) -> None:
    """Ask an older holder to retire (record + authenticated call) and wait until it left."""
    notify(
        f"asking {store.family} {rec.holder.version} (pid {rec.holder.pid}) to retire for {version}"
    )
    store.transact(
        lambda cur: (None, decide_supersede(cur, version, os.getpid(), time.time()).write)
    )
    token = read_token(store.root, store.family, rec.holder.pid)
    if token is not None and rec.holder.port is not None:
        request(
            rec.holder.port,
            "POST",
            "/api/retire",
            token=token,
            payload={"reason": "superseded", "by": version},
        )
    deadline = time.monotonic() + RETIRE_WAIT_S
    while time.monotonic() < deadline:
        cur = store.read()
        released = (
            not isinstance(cur, LeaseRecord)
            or cur.epoch != rec.epoch
            or cur.state is LeaseState.RELEASED
        )
        if released or liveness(rec.holder.pid, rec.holder.create_time) is not Liveness.ALIVE:
            return
        time.sleep(POLL_S)


def start(family: Family, root: Path, version: str, notify: Notify = _quiet) -> DaemonInfo:
    """Ensure exactly one healthy daemon of `family` for `root` and return it."""
    root = ensure_root(root)
    store = LeaseStore(root, family.name)
    timing = Timing.from_env(family.idle_s)
    # Fast path without the lock: reusing a healthy holder changes nothing.
    rec, doc = healthy_holder(store)
    if rec is not None and doc is not None and not is_newer(version, rec.holder.version):
        return _info(doc, "reused")
    with locked(root / "leases" / f"{family.name}.start.lock", timeout_s=2 * timing.ttl_s + 60):
        for _attempt in range(3):
            rec, doc = healthy_holder(store)
            action, wait = "started", 0.0
            if rec is not None and doc is not None:
                if not is_newer(version, rec.holder.version):
                    return _info(doc, "reused")
                _supersede(store, rec, version, notify)
                # If it has not left yet, the new daemon waits for the lease to expire.
                action, wait = "superseded", timing.ttl_s + 2 * timing.heartbeat_s
            elif rec is not None:
                wait = timing.ttl_s + 2 * timing.heartbeat_s
                notify(
                    f"{family.name} holder pid {rec.holder.pid} is alive but not answering; "
                    f"waiting up to {wait:.0f}s for its lease (epoch {rec.epoch}) to expire"
                )
            proc = spawn(family, root, wait)
            ready = _wait_ready(proc, store, SPAWN_TIMEOUT_S + wait)
            if ready is not None:
                return _info(ready, action)
        raise DaemonStartError(f"{family.name}: could not start or reuse a daemon after 3 attempts")


def status(family: Family, root: Path) -> DaemonInfo | None:
    """The healthy holder, if any. Read-only: no spawn, no write, no signal."""
    _rec, doc = healthy_holder(LeaseStore(root, family.name))
    return None if doc is None else _info(doc, "running")


def stop(family: Family, root: Path) -> DaemonInfo | None:
    """Authenticated shutdown of the holder, then wait until its pid is gone."""
    store = LeaseStore(root, family.name)
    rec, doc = healthy_holder(store)
    if rec is None or doc is None or rec.holder.port is None:
        return None
    token = read_token(root, family.name, rec.holder.pid)
    if token is None:
        raise DaemonStartError(f"no token for {family.name} pid {rec.holder.pid}; cannot stop it")
    request(rec.holder.port, "POST", "/api/shutdown", token=token)
    deadline = time.monotonic() + STOP_WAIT_S
    while liveness(rec.holder.pid, rec.holder.create_time) is Liveness.ALIVE:
        if time.monotonic() > deadline:
            raise DaemonStartError(f"{family.name} pid {rec.holder.pid} still alive after shutdown")
        time.sleep(POLL_S)
    return _info(doc, "stopped")
