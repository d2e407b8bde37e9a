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
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tenure.adapters import config, guard, platform
from tenure.adapters.child import start_child
from tenure.adapters.peers import established_on
from tenure.adapters.ports import open_ports
from tenure.adapters.procinfo import child_identity, read_process
from tenure.adapters.root import default_root, ensure_root
from tenure.adapters.spawn import check_command
from tenure.adapters.store import LeaseStore
from tenure.adapters.tree import (
    COOKIE_ENV,
    Tree,
    become_subreaper,
    inherit_cookie,
    reap_orphans,
    stop_tree,
)
from tenure.adapters.waiting import wait_until
from tenure.core.hints import TYPE_CHECKING
from tenure.core.inputs import check_daemon
from tenure.core.lifecycle import RetireReason, State
from tenure.core.record import LeaseRecord, StopSpec
from tenure.core.timing import (
    HOLDER_STOP,
    POLL_S,
    PORT_RELEASE_WAIT_S,
    RUN_RELEASE_S,
    SCAN_POLL_S,
    TREE_STOP,
)
from tenure.core.values import replace
from tenure.errors import ConfigError, Retiring, TenureError
from tenure.holder.governor import Governor
from tenure.holder.hold import (
    Held,
    holding,
    install_handlers,
    make_governor,
    restore_handlers,
    signalled,
    take,
)
from tenure.requester.ensure import free_port

if TYPE_CHECKING:
    import subprocess
    from typing import Literal


def run(
    family: str,
    version: str,
    command: Sequence[str],
    *,
    ports: tuple[int, int] | None = None,
    root: Path | None = None,
    idle_s: float = 0.0,
    stop: StopSpec | None = None,
) -> int:
    """Hold `family`'s lease while `command`'s process tree runs; the exit code to leave with.
    `idle_s` > 0 retires it after that long without a connection on its port (0: never).
    `stop` is how the tree is ended, by this wrapper or whoever ends it after it
    (control.md#stop-policy); default SIGTERM to every member, 5 s, SIGKILL."""
    check_daemon(family, version, ports)  # before any file is touched (root.md#family-names)
    stop = stop or StopSpec()
    policy = TREE_STOP.following(stop)
    the_root = ensure_root(root or default_root())
    port, given_ports = config.spawned_as(family)
    if ports is None and port is not None:
        ports = given_ports  # spawned by `tenure.ensure` or the kit: the port was chosen for us
    else:
        port = None  # chosen once we hold, when a replaced holder's tree has let go of it
    if ports is None and any("{port}" in arg for arg in command):
        raise ConfigError("the command uses {port}: give the family's port range (--ports LO-HI)")
    check_command(command)  # a typo fails here, before an older holder is asked to leave
    last = LeaseStore(the_root, family).read()
    keep = last.holder.port if isinstance(last, LeaseRecord) else None
    # Descendants that daemonize come back to us, not to init (control.md#run).
    subreaper = become_subreaper()
    # Idle is opt-in for `run`; the drain bound covers ending the tree (its signal, grace,
    # SIGKILL) and the release; whoever stops the wrapper gives it that long before SIGKILL.
    drain = policy.bound_s + RUN_RELEASE_S
    timing = replace(config.timing(), idle_s=idle_s, drain_s=drain)
    own = StopSpec("SIGTERM", max(HOLDER_STOP.grace_s, drain))
    gov = make_governor(
        family, version, root=the_root, port=port, ports=ports, timing=timing, stop=own
    )
    # A stop signal is a request to leave from the first moment: while acquiring it abandons
    # (nothing taken is left behind), once holding it retires — never a bare exit that skips
    # the release, or leaves a replaced tree half stopped (control.md#run).
    previous = install_handlers(lambda _signum, _frame: _stop_asked(gov))
    try:
        try:
            held = take(gov, None)
        except Retiring:
            return 0  # a stop signal arrived while acquiring: nothing was taken
        with holding(held, {}):
            chosen = _make_way(held, port, ports, keep)
            if chosen is False:
                return 0  # asked to stop before the child started
            return _serve(held, command, chosen, idle_s, (subreaper, stop))
    finally:
        restore_handlers(previous)
    return 0  # `Retiring` ended the block (the lease went before the child started)


def _make_way(
    held: Held, port: int | None, ports: tuple[int, int] | None, keep: int | None
) -> int | Literal[False] | None:
    """Wait for the replaced holders' trees to be stopped (break before make: their port is
    free again, so an upgrade keeps it), then choose the port; False when a stop was asked
    meanwhile. Retirement waits for that stop as it waits for our own tree."""
    gov = held.governor
    settled = threading.Event()
    gov.release_after(settled)
    try:
        gov.takeover.settle(gov.takeover.bound_s + 1)
    finally:
        settled.set()
    if held.retiring.is_set():
        return False
    if port is not None:
        return port
    if keep is not None and gov.takeover.replaced_a_tree:
        # Its processes are gone; give the kernel a moment to close their listener.
        wait_until(lambda: not open_ports([keep]), PORT_RELEASE_WAIT_S, SCAN_POLL_S)
    port = free_port(ports, prefer=keep)
    if keep is not None and port != keep and ports and ports[0] <= keep <= ports[1]:
        print(f"tenure: port {keep} is still in use; serving on {port}", file=sys.stderr)
    return port


def _stop_asked(gov: Governor) -> None:
    """A stop signal (from a signal handler): abandon an acquire in progress, else retire."""
    if gov.state is State.ACQUIRING:
        threading.Thread(target=gov.abandon, args=(RetireReason.SIGNAL,), daemon=True).start()
    else:
        signalled(gov)


def _serve(
    held: Held,
    command: Sequence[str],
    port: int | None,
    idle_s: float,
    how: tuple[bool, StopSpec],
) -> int:
    """Start the child (its own session, the tree's cookie), govern the tree, end all of it
    (`how`: whether the wrapper is the tree's subreaper, and the tree's stop policy)."""
    subreaper, stop = how
    policy = TREE_STOP.following(stop)
    argv = [a.replace("{port}", str(port)) if port is not None else a for a in command]
    cookie = os.urandom(8).hex()
    gov = held.governor
    env = {**os.environ, config.FAMILY_ENV: gov.family, config.ROOT_ENV: str(gov.root)}
    env[COOKIE_ENV] = inherit_cookie(os.environ.get(COOKIE_ENV), cookie)
    if port is not None:
        env[config.PORT_ENV] = str(port)
    child, watch = start_child(argv, env, cookie, stop)
    ident = child_identity(child.pid)  # unreaped: readable even if it exited at once
    if ident is not None:
        guard.allow(ident)  # under a test kit, the child is the test's too
    since = None if ident is None else ident.start_ticks
    tree = Tree(cookie, os.getpid(), since, spare=() if watch is None else (watch.proc.pid,))

    tree_gone = threading.Event()
    gov.release_after(tree_gone)  # the lease goes only after the whole tree (control.md#run)
    try:
        if ident is not None:
            # Best effort, for readers (the doctor counts the child as the holder's): a root
            # removed meanwhile is the heartbeat's business, not a reason to fail here.
            with contextlib.suppress(OSError, TenureError):
                gov.record_child(ident, cookie, port, stop)
        _govern(held, child, (tree, subreaper), port if idle_s > 0 else None)
    finally:
        # Retired, or fenced (a newer holder took over and ended the tree): not the child's
        # own exit, so not its exit code.
        stopped_by_us = child.poll() is None or reap_orphans(child) or not gov.holding()
        # Whatever happened, no member of the tree outlives its governor's lease — and one
        # this process may not signal is never pretended gone (control.md#run).
        if not stop_tree(tree, child, policy):
            _outlived(gov, tree)
        code = child.wait()
        if watch is not None:
            watch.stand_down(policy.bound_s)
        tree_gone.set()
    if stopped_by_us:
        return 0  # the wrapper retired (and took the tree with it): a normal end
    return code if code >= 0 else 128 - code


def _outlived(gov: Governor, tree: Tree) -> None:
    """Say which members outlived the tree's stop and why, and list the tree in the record's
    `orphans`, so the next holder (or a permitted `--reset`) ends it."""
    for ident in tree.members():
        facts = read_process(ident.pid)
        uid = "?" if facts is None else facts.uid
        print(
            f"tenure: pid {ident.pid} (uid {uid}) of the {gov.family} tree outlived its stop: "
            f"this wrapper (uid {platform.uid()}) may not signal it; the tree stays listed in "
            "the lease record for the next holder or `tenure auth doctor --reset`",
            file=sys.stderr,
        )
    with contextlib.suppress(OSError, TenureError):
        gov.list_own_tree()


def _govern(
    held: Held, child: subprocess.Popen[bytes], tree: tuple[Tree, bool], idle_port: int | None
) -> None:
    """Hold while any member of the tree lives (a child that exits after daemonizing is not
    the end) and until retirement begins; with `--idle-seconds`, a connection open on the
    child's port counts as work. `tree` is the tree and whether the wrapper is its subreaper;
    without one, daemonized members never come back to the wrapper: they are looked for by
    the tree's cookie."""
    members, subreaper = tree
    last_look = 0.0
    while not held.retiring.wait(POLL_S * 5):
        exited = child.poll() is not None
        if not reap_orphans(child) and exited and (subreaper or not members.members()):
            return  # the whole tree ended by itself
        if idle_port is not None and time.monotonic() - last_look >= 1.0:
            last_look = time.monotonic()
            owners = [child.pid, *(m.pid for m in members.members())] if not subreaper else []
            if established_on(idle_port, owners):
                with contextlib.suppress(Retiring), held.work():
                    pass
