"""One child of `tenure run` (driver): start it — on the wrapper's listening socket when it has
one — govern its tree, and end all of it under its stop policy. Superseded by a wrapper that
takes the socket, it hands the socket over instead and leaves its tree serving, listed in the
record, until the successor is ready (make before break).
spec: docs/protocol/control.md#run, control.md#socket-handover
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable

from tenure.adapters import config, guard, platform
from tenure.adapters.child import start_child
from tenure.adapters.installs import InstallWatch
from tenure.adapters.peers import established_on
from tenure.adapters.procinfo import child_identity, read_process
from tenure.adapters.readiness import NOTIFY_ENV, ReadyWatch
from tenure.adapters.tree import COOKIE_ENV, Tree, inherit_cookie, reap_orphans, stop_tree
from tenure.core.hints import TYPE_CHECKING
from tenure.core.lifecycle import Event, RetireReason
from tenure.core.record import LeaseRecord
from tenure.core.timing import HANDOVER_WAIT_S, POLL_S, SOCKET_SETTLE_S, TREE_STOP
from tenure.errors import Retiring, TenureError
from tenure.holder.governor import Governor
from tenure.holder.hold import Held
from tenure.requester.launch import Launch, Looks, Running, Served

if TYPE_CHECKING:
    import socket
    import subprocess


def serve(
    held: Held,
    port: int | None,
    launch: Launch,
    deadline: float | None,
    *,
    sock: socket.socket | None = None,
    adopt: Running | None = None,
) -> Served:
    """Start the child (its own session, the tree's cookie; `sock` on fd 3) — or govern
    `adopt`, a tree this wrapper kept through a handover and takes back — and end it. With a
    `deadline` (monotonic), a child not ready by then, or ended before it was, retires the
    wrapper with reason `not_ready`."""
    gov = held.governor
    mode = launch.ready.mode or "started"
    # A handed socket accepts before the child does: nothing to probe, so a child that
    # stays up this long counts as started (control.md#socket-handover).
    settle = SOCKET_SETTLE_S if sock is not None and mode == "started" else 0.0
    readiness = ReadyWatch(mode if adopt is None else "started", port, settle_s=settle)
    running = adopt or _start(gov, port, launch, readiness, sock)
    ident, child = running.ident, running.child
    if ident is not None:
        guard.allow(ident)  # under a test kit, the child is the test's too

    served = Served()
    tree_gone = threading.Event()
    gov.release_after(tree_gone)  # the lease goes only after the whole tree (control.md#run)
    try:
        if ident is not None:
            # Best effort, for readers (the doctor counts the child as the holder's): a root
            # removed meanwhile is the heartbeat's business, not a reason to fail here.
            with contextlib.suppress(OSError, TenureError):
                gov.record_child(ident, running.cookie, port, launch.stop)
        idle_port = port if launch.idle_s > 0 else None
        installs = InstallWatch(launch.watch)  # its baseline: the install this child runs
        looks = Looks(readiness, deadline, launch.ready.timeout_s, idle_port, installs)
        _govern(held, child, (running.tree, launch.subreaper), looks, served)
    finally:
        readiness.close()
        if sock is not None and _hand_over(gov, sock, running):
            served.kept = running  # the socket stays open here too, for a rollback
        else:
            _end(gov, running, served)
            if sock is not None and served.upgraded is None:
                sock.close()  # before the release: the port is the next holder's
        tree_gone.set()
    return served


def _start(
    gov: Governor,
    port: int | None,
    launch: Launch,
    readiness: ReadyWatch,
    sock: socket.socket | None,
) -> Running:
    argv = [a.replace("{port}", str(port)) if port is not None else a for a in launch.command]
    cookie = os.urandom(8).hex()
    env = {**os.environ, config.FAMILY_ENV: gov.family, config.ROOT_ENV: str(gov.root)}
    env.pop(NOTIFY_ENV, None)  # a NOTIFY_SOCKET meant for the wrapper is not the child's
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(name, None)  # sockets meant for the wrapper are not the child's either
    env.update(readiness.env())
    env[COOKIE_ENV] = inherit_cookie(os.environ.get(COOKIE_ENV), cookie)
    if port is not None:
        env[config.PORT_ENV] = str(port)
    env.pop("TENURE_SCOPE", None)
    if gov.scope is not None:
        env["TENURE_SCOPE"] = gov.scope.path
    keep: tuple[int, ...] = ()
    if sock is not None:
        from tenure.adapters import handover  # noqa: PLC0415  (--socket only)

        argv, fd = handover.child_argv(sock, argv)
        env.update(handover.child_env())
        keep = (fd,)
    try:
        child, watch = start_child(argv, env, cookie, launch.stop, pass_fds=keep)
    finally:
        for fd in keep:
            os.close(fd)  # the child has its copy; the wrapper keeps `sock`
    ident = child_identity(child.pid)  # unreaped: readable even if it exited at once
    since = None if ident is None else ident.start_ticks
    tree = Tree(cookie, os.getpid(), since, spare=() if watch is None else (watch.proc.pid,))
    return Running(child, watch, tree, cookie, ident, launch.stop)


def _hand_over(gov: Governor, sock: socket.socket, running: Running) -> bool:
    """Superseded by a successor that takes the socket: hand it over and list our tree in
    the record (the successor stops it once its own child is ready); False when the tree is
    to be ended now — another reason to leave, a successor that takes no socket, or a
    tree that already ended."""
    if gov.retiring is not RetireReason.SUPERSEDED or running.child.poll() is not None:
        return False
    from tenure.adapters import handover  # noqa: PLC0415  (--socket only)

    rec = gov.store.read()
    if not isinstance(rec, LeaseRecord) or rec.epoch != gov.epoch or rec.superseded_by is None:
        return False
    to = rec.superseded_by.pid
    if not handover.offer(gov.root, gov.store.key, to, sock, HANDOVER_WAIT_S):
        return False
    try:
        return gov.list_own_tree()
    except (OSError, TenureError):
        return False


def _end(gov: Governor, running: Running, served: Served) -> None:
    """End the whole tree under its stop policy and note how the child went."""
    child = running.child
    # Retired, or fenced (a newer holder took over and ended the tree): not the child's own
    # exit, so not its exit code.
    stopped_by_us = child.poll() is None or reap_orphans(child) or not gov.holding()
    code = end_tree(gov.family, running, outlived=lambda: _outlived(gov, running.tree))
    if not stopped_by_us:
        served.code = code if code >= 0 else 128 - code
        if not served.ready:
            served.why = f"exited with code {served.code} before it was ready"


def end_tree(family: str, running: Running, *, outlived: Callable[[], None] | None = None) -> int:
    """End a tree this wrapper started, under its stop policy; the child's exit status.
    Whatever happened, no member outlives its governor — and one this process may not
    signal is never pretended gone (control.md#run)."""
    policy = TREE_STOP.following(running.stop)
    if not stop_tree(running.tree, running.child, policy):
        if outlived is not None:
            outlived()
        else:
            print(f"tenure: members of the {family} tree outlived its stop", file=sys.stderr)
    code = running.child.wait()
    if running.watch is not None:
        running.watch.stand_down(policy.bound_s)
    return code


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
            gov.takeover.proceed()  # a handed-over predecessor's tree may be stopped now
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
