"""`tenure run`: govern a daemon that cannot be changed, by holding the lease for it.

The wrapper holds the family's lease (superseding an older holder through the record first),
starts the child with `{port}` substituted and TENURE_PORT in its environment, forwards
SIGTERM/SIGINT/SIGHUP, and when it must retire (superseded, lease lost, root removed, idle, a
signal) stops the whole tree under its stop policy — each signal after re-checking identity —
before it releases. When the child exits on its own the wrapper releases and exits with the
child's code. On Linux the child gets SIGKILL if the wrapper is killed outright (parent-death
signal), so it never outlives its governor unnoticed. Superseded by a newer wrapper, it stands
by until that one's child is ready, and takes its place back if it fails first.
spec: docs/protocol/control.md#run, control.md#readiness
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
from tenure.adapters.installs import InstallWatch, check_watched
from tenure.adapters.peers import established_on
from tenure.adapters.ports import open_ports
from tenure.adapters.procinfo import child_identity, read_process
from tenure.adapters.readiness import NOTIFY_ENV, ReadySpec, ReadyWatch
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
from tenure.core.lifecycle import Event, RetireReason, State
from tenure.core.record import LeaseRecord, StopSpec
from tenure.core.standby import Standby
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
from tenure.requester.launch import Done, Launch, Looks, Served
from tenure.requester.standby import (
    Watch,
    report_not_ready,
    say_rolling_back,
    stand_by,
    stands_by,
    tombstone_rolled_back,
)

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
    ready: ReadySpec | None = None,
    watch: Sequence[str] = (),
) -> int:
    """Hold `family`'s lease while `command`'s process tree runs; the exit code to leave with.
    `idle_s` > 0 retires it after that long without a connection on its port (0: never).
    `stop` is how the tree is ended, by this wrapper or whoever ends it after it
    (control.md#stop-policy); default SIGTERM to every member, 5 s, SIGKILL. `ready` is how
    its readiness is judged (default: by port when it has one, else once started); superseded,
    the wrapper stands by until its successor is ready and takes its place back if the
    successor fails first (control.md#readiness). The command's executable and `watch` are
    watched: a new install settled there restarts the child in place (control.md#installs)."""
    check_daemon(family, version, ports)  # before any file is touched (root.md#family-names)
    config.timing()  # TENURE_LEASE_TTL / TENURE_HEARTBEAT are checked before the root, too
    port, given_ports = config.spawned_as(family)
    if ports is None and port is not None:
        ports = given_ports  # spawned by `tenure.ensure` or the kit: the port was chosen for us
    else:
        port = None  # chosen once we hold, when a replaced holder's tree has let go of it
    if ports is None and any("{port}" in arg for arg in command):
        raise ConfigError("the command uses {port}: give the family's port range (--ports LO-HI)")
    has_port = ports is not None or port is not None
    ready = ready or ReadySpec()
    if ready.mode is None:
        ready = replace(ready, mode="port" if has_port else "started")
    if ready.mode == "port" and not has_port:
        raise ConfigError("readiness by port needs the family's port range (--ports LO-HI)")
    # A typo fails here, before an older holder is asked to leave.
    watched = (check_command(command), *check_watched(watch))
    the_root = ensure_root(root or default_root())
    launch = Launch(
        tuple(command), stop or StopSpec(), ready, idle_s, port, ports, become_subreaper(), watched
    )
    current: list[Governor] = []
    # A stop signal is a request to leave from the first moment: while acquiring it abandons
    # (nothing taken is left behind), once holding it retires, in standby it ends the wait —
    # never a bare exit that skips the release, or leaves a replaced tree half stopped.
    asked = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        asked.set()
        if current:
            _stop_asked(current[-1])

    previous = install_handlers(on_signal)
    try:
        back_from: LeaseRecord | None = None
        while True:
            done = _tenure(
                family, version, the_root, launch, current=(current, asked), back_from=back_from
            )
            if done.standby_after is None or asked.is_set():
                return done.code
            # Superseded: stand by until the successor serves; take the place back if it
            # failed first (control.md#readiness).
            verdict, successor = stand_by(done.standby_after, asked)
            if verdict is not Standby.ROLL_BACK or successor is None:
                return 0
            say_rolling_back(family, version, successor)
            back_from = successor
    finally:
        restore_handlers(previous)


def _tenure(
    family: str,
    version: str,
    root: Path,
    launch: Launch,
    *,
    current: tuple[list[Governor], threading.Event],
    back_from: LeaseRecord | None,
) -> Done:
    """Take the lease (superseding an older holder), serve the command, leave. `current` is
    where the signal handler finds the governor, and the event a stop signal sets."""
    store = LeaseStore(root, family)
    last = store.read()
    keep = last.holder.port if isinstance(last, LeaseRecord) else None
    if back_from is not None and launch.port is None:
        keep = back_from.holder.port or keep
    standby = stands_by(last, version)
    policy = TREE_STOP.following(launch.stop)
    # Idle is opt-in for `run`; the drain bound covers ending the tree (its signal, grace,
    # SIGKILL) and the release; whoever stops the wrapper gives it that long before SIGKILL.
    drain = policy.bound_s + RUN_RELEASE_S
    timing = replace(config.timing(), idle_s=launch.idle_s, drain_s=drain)
    # Promised to a standby: ready, or released, within this long of taking the lease.
    within = launch.ready.timeout_s + drain if standby and launch.ready.mode != "started" else None
    gov = make_governor(
        family,
        version,
        root=root,
        port=launch.port,
        ports=launch.ports,
        timing=timing,
        stop=StopSpec("SIGTERM", max(HOLDER_STOP.grace_s, drain)),
        ready_within=within,
    )
    governors, asked = current
    governors.append(gov)
    if asked.is_set():
        return Done(0)  # a stop signal came before the handler could see this governor
    try:
        held = take(gov, None)
    except Retiring:
        return Done(0)  # a stop signal arrived while acquiring: nothing was taken
    acquired_at = time.monotonic()
    with holding(held, {}):
        if back_from is not None:
            tombstone_rolled_back(store, back_from)
        chosen = _make_way(held, launch.port, launch.ports, keep)
        if chosen is False:
            return Done(0)  # asked to stop before the child started
        # Counted from the acquire, as the promise in the record is (`within`).
        deadline = None if within is None else acquired_at + launch.ready.timeout_s
        served = _serve(held, chosen, launch, deadline)
        while served.upgraded is not None and gov.state is State.HOLDING:
            print(
                f"tenure: a new install of {served.upgraded} settled; restarting {family}"
                + ("" if chosen is None else f" on port {chosen}"),
                file=sys.stderr,
            )
            served = _serve(held, chosen, launch, None)
        if not served.ready and deadline is not None and gov.state is State.HOLDING:
            gov.handle(Event.NOT_READY)  # ended before it was ready: give the place back
    if gov.retiring is RetireReason.NOT_READY and isinstance(last, LeaseRecord):
        outcome = (served.code, served.why)
        return Done(report_not_ready(store, (version, gov.epoch), last, outcome))
    if gov.retiring is RetireReason.SUPERSEDED:
        return Done(0, Watch(store, gov.epoch, gov.timing.heartbeat_s, gov.timing.ttl_s))
    return Done(served.code)


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


def _serve(held: Held, port: int | None, launch: Launch, deadline: float | None) -> Served:
    """Start the child (its own session, the tree's cookie), govern the tree, end all of it
    under the tree's stop policy. With a `deadline` (monotonic), a child not ready by then —
    or ended before it was — retires the wrapper with reason `not_ready`."""
    policy = TREE_STOP.following(launch.stop)
    argv = [a.replace("{port}", str(port)) if port is not None else a for a in launch.command]
    cookie = os.urandom(8).hex()
    gov = held.governor
    readiness = ReadyWatch(launch.ready.mode or "started", port)
    env = {**os.environ, config.FAMILY_ENV: gov.family, config.ROOT_ENV: str(gov.root)}
    env.pop(NOTIFY_ENV, None)  # a NOTIFY_SOCKET meant for the wrapper is not the child's
    env.update(readiness.env())
    env[COOKIE_ENV] = inherit_cookie(os.environ.get(COOKIE_ENV), cookie)
    if port is not None:
        env[config.PORT_ENV] = str(port)
    child, watch = start_child(argv, env, cookie, launch.stop)
    ident = child_identity(child.pid)  # unreaped: readable even if it exited at once
    if ident is not None:
        guard.allow(ident)  # under a test kit, the child is the test's too
    since = None if ident is None else ident.start_ticks
    tree = Tree(cookie, os.getpid(), since, spare=() if watch is None else (watch.proc.pid,))

    served = Served()
    tree_gone = threading.Event()
    gov.release_after(tree_gone)  # the lease goes only after the whole tree (control.md#run)
    try:
        if ident is not None:
            # Best effort, for readers (the doctor counts the child as the holder's): a root
            # removed meanwhile is the heartbeat's business, not a reason to fail here.
            with contextlib.suppress(OSError, TenureError):
                gov.record_child(ident, cookie, port, launch.stop)
        idle_port = port if launch.idle_s > 0 else None
        installs = InstallWatch(launch.watch)  # its baseline: the install this child runs
        looks = Looks(readiness, deadline, launch.ready.timeout_s, idle_port, installs)
        _govern(held, child, (tree, launch.subreaper), looks, served)
    finally:
        readiness.close()
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
    if not stopped_by_us:
        served.code = code if code >= 0 else 128 - code
        if not served.ready:
            served.why = f"exited with code {served.code} before it was ready"
    return served


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
    held: Held,
    child: subprocess.Popen[bytes],
    tree: tuple[Tree, bool],
    looks: Looks,
    served: Served,
) -> None:
    """Hold while any member of the tree lives (a child that exits after daemonizing is not
    the end) and until retirement begins; say in the record when the child is ready; with
    `--idle-seconds`, a connection open on the child's port counts as work. `tree` is the
    tree and whether the wrapper is its subreaper; without one, daemonized members never come
    back to the wrapper: they are looked for by the tree's cookie."""
    members, subreaper = tree
    gov = held.governor
    last_look = last_install = time.monotonic()

    def member(pid: int) -> bool:
        return pid == child.pid or members.proves(pid)

    while True:
        if not served.ready and looks.readiness.ready(member):
            served.ready = True
            with contextlib.suppress(OSError, TenureError):
                gov.mark_ready()  # a standby predecessor lets go now (control.md#readiness)
        elif not served.ready and looks.deadline is not None and time.monotonic() > looks.deadline:
            served.why = f"was not ready within {looks.timeout_s:g}s"
            gov.handle(Event.NOT_READY)
        if held.retiring.wait(POLL_S * 5):
            return
        exited = child.poll() is not None
        if not reap_orphans(child) and exited and (subreaper or not members.members()):
            return  # the whole tree ended by itself
        if time.monotonic() - last_install >= gov.timing.heartbeat_s / 2:
            last_install = time.monotonic()
            if looks.installs.upgraded():
                served.upgraded = ", ".join(looks.installs.paths)
                return  # restarted from the new install (control.md#installs)
        idle_port = looks.idle_port
        if idle_port is not None and time.monotonic() - last_look >= 1.0:
            last_look = time.monotonic()
            owners = [child.pid, *(m.pid for m in members.members())] if not subreaper else []
            if established_on(idle_port, owners):
                with contextlib.suppress(Retiring), held.work():
                    pass
