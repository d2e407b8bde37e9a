"""`tenure run`: govern a daemon that cannot be changed, by holding the lease for it.

The wrapper holds the family's lease (superseding an older holder through the record first),
starts the child with `{port}` substituted and TENURE_PORT in its environment, forwards
SIGTERM/SIGINT/SIGHUP, and when it must retire (superseded, lease lost, root removed, idle, a
signal) stops the child — SIGTERM, a grace period, SIGKILL, each after re-checking the child's
identity — before it releases. When the child exits on its own the wrapper releases and exits
with the child's code. On Linux the child gets SIGKILL if the wrapper is killed outright
(parent-death signal), so it never outlives its governor unnoticed.
spec: docs/protocol/control.md#run
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from tenure.adapters import config, guard
from tenure.adapters.files import locked
from tenure.adapters.procinfo import read_process
from tenure.adapters.root import RootLayout, default_root, ensure_root
from tenure.adapters.stopping import stop_own_child
from tenure.adapters.store import LeaseStore
from tenure.core.inputs import check_family, check_version
from tenure.core.lease import is_newer
from tenure.errors import TenureError
from tenure.runtime.ensure import POLL_S, free_port
from tenure.runtime.hold import hold, signalled
from tenure.runtime.supersede import held_record, lease_held, supersede

CHILD_GRACE_S = 5.0  # between SIGTERM and SIGKILL for the child
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def _load_prctl() -> object | None:
    # Resolved once, in the parent: the child runs between fork and exec, where loading a
    # library (dlopen) could wait for a lock another thread of the wrapper held at fork time.
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)  # type: ignore[operator]


def _supersede_older(family: str, version: str, root: Path) -> float:
    """Mark an older live holder superseded and wait for it to leave; equal or newer: refuse.

    Returns how long to wait for the lease: 0, or TTL + 2 heartbeats when the older holder did
    not leave (stopped or wedged, it cannot see the mark) and only its confirmed expiry frees
    the lease — the same rule `tenure.ensure` follows.
    """
    timing = config.timing()
    store = LeaseStore(root, family)
    with locked(RootLayout(root).start_lock(family), timeout_s=2 * timing.ttl_s + 60):
        rec = held_record(store)
        if rec is None:
            return 0.0
        if not is_newer(version, rec.holder.version):
            raise lease_held(rec)
        bound = timing.ttl_s + 2 * timing.heartbeat_s
        return 0.0 if supersede(store, rec, version, bound) else bound


def run(
    family: str,
    version: str,
    command: Sequence[str],
    *,
    ports: tuple[int, int] | None = None,
    root: Path | None = None,
) -> int:
    """Hold `family`'s lease while `command` runs; the exit code to leave with."""
    check_family(family)  # before any file is touched (root.md#family-names)
    check_version(version)
    the_root = ensure_root(root or default_root())
    wait: float | None = None  # spawned by a launcher: what it passed (TENURE_ACQUIRE_WAIT)
    if not config.launched_for(family):
        # Started by hand, so supersede here. A launcher (`tenure.ensure`) has done that under
        # the start lock, which it holds while we start: taking it here would wait for ever.
        wait = _supersede_older(family, version, the_root)
    port: int | None
    given_port, given_ports = config.spawned_as(family)
    if ports is None and given_port is not None:
        # Spawned by `tenure.ensure` (or the conformance kit): its port was chosen for us.
        port, ports = given_port, given_ports
    else:
        port = free_port(ports)
    argv = [a.replace("{port}", str(port)) if port is not None else a for a in command]
    env = {**os.environ, config.FAMILY_ENV: family, config.ROOT_ENV: str(the_root)}
    if port is not None:
        env[config.PORT_ENV] = str(port)
    with hold(
        family,
        version=version,
        root=the_root,
        port=port,
        ports=ports,
        wait_s=wait,
        handle_signals=False,
    ) as held:
        child = subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent)  # noqa: PLW1509
        facts = read_process(child.pid)
        if facts is not None:
            guard.allow(facts.ident)  # under a test kit, the child is the test's too

        def forward(_signum: int, _frame: FrameType | None) -> None:
            # A signal to the wrapper is a request to stop: the lease goes with the child.
            signalled(held.governor)

        previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
        try:
            if facts is not None:
                # Best effort, for readers (the doctor counts the child as the holder's): a root
                # removed meanwhile is the heartbeat's business, not a reason to fail here.
                with contextlib.suppress(OSError, TenureError):
                    held.governor.record_child(facts.ident)
            while child.poll() is None and not held.retiring.wait(POLL_S * 5):
                pass
        finally:
            # Whatever happened, the child never outlives its governor's lease.
            stopped_by_us = child.poll() is None
            # Our own unreaped child: its pid cannot be reused until we reap it, so it is
            # stopped through its Popen and no identity check (which a clock step could
            # fool) stands in the way.
            code = stop_own_child(child, CHILD_GRACE_S)
            for sig, old in previous.items():
                signal.signal(sig, old)
    if stopped_by_us:
        return 0  # the wrapper retired (and took the child with it): a normal end
    return code if code >= 0 else 128 - code
