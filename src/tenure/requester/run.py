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

import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tenure.adapters import config
from tenure.adapters.files import locked
from tenure.adapters.installs import check_watched
from tenure.adapters.ports import open_ports
from tenure.adapters.readiness import ReadySpec
from tenure.adapters.root import RootLayout, default_root, ensure_root
from tenure.adapters.spawn import check_command
from tenure.adapters.store import LeaseStore
from tenure.adapters.tree import become_subreaper
from tenure.adapters.waiting import wait_until
from tenure.core.hints import TYPE_CHECKING
from tenure.core.inputs import check_daemon
from tenure.core.lifecycle import Event, RetireReason, State
from tenure.core.record import LeaseRecord, StopSpec
from tenure.core.standby import Standby
from tenure.core.timing import (
    HOLDER_STOP,
    PORT_CLAIM_WAIT_S,
    PORT_RELEASE_WAIT_S,
    RUN_RELEASE_S,
    SCAN_POLL_S,
    SOCKET_SETTLE_S,
    TREE_STOP,
)
from tenure.core.values import replace
from tenure.errors import ConfigError, Retiring
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
from tenure.requester.ensure import free_port, scope_at
from tenure.requester.launch import Done, Launch, Running
from tenure.requester.serving import end_tree, serve
from tenure.requester.standby import (
    Watch,
    forget_never_started,
    report_not_ready,
    say_rolling_back,
    say_superseded,
    stand_by,
    stands_by,
    tombstone_rolled_back,
)

if TYPE_CHECKING:
    import socket
    from typing import Literal

    from tenure.adapters.handover import Receiver


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
    socket: bool = False,
    scope: str | os.PathLike[str] | None = None,
) -> int:
    """Hold `family`'s lease while `command`'s process tree runs; the exit code to leave with.
    `idle_s` > 0 retires it after that long without a connection on its port (0: never).
    `stop` is how the tree is ended, by this wrapper or whoever ends it after it
    (control.md#stop-policy); default SIGTERM to every member, 5 s, SIGKILL. `ready` is how
    its readiness is judged (default: by port when it has one, else once started); superseded,
    the wrapper stands by until its successor is ready and takes its place back if the
    successor fails first (control.md#readiness). The command's executable and `watch` are
    watched: a new install settled there restarts the child in place (control.md#installs).
    With `socket`, the wrapper binds the port and passes it to the child on fd 3, and hands
    it to a successor that takes it (control.md#socket-handover). `scope` (a directory) makes
    the lease that directory's (lease.md#scopes)."""
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
    ready = _readiness(ready or ReadySpec(), has_port, socket)
    where = scope_at(scope if scope is not None else config.spawned_scope(family))
    # A typo fails here, before an older holder is asked to leave.
    watched = (check_command(command), *check_watched(watch))
    the_root = ensure_root(root or default_root())
    launch = Launch(
        tuple(command),
        stop or StopSpec(),
        ready,
        idle_s,
        port,
        ports,
        become_subreaper(),
        watched,
        socket,
        where,
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
    wrapper = Wrapper(the_root, launch, current, asked)
    try:
        back_from: LeaseRecord | None = None
        while True:
            done = _tenure(family, version, wrapper, back_from)
            kept, wrapper.kept = done.kept, None
            if done.standby_after is None or asked.is_set():
                if kept is not None:
                    end_tree(family, kept)
                return done.code
            # Superseded: stand by until the successor serves; take the place back if it
            # failed first (control.md#readiness).
            verdict, successor = stand_by(done.standby_after, asked)
            if verdict is not Standby.ROLL_BACK or successor is None:
                if kept is not None:
                    end_tree(family, kept)  # handed over: the successor serves (or never will)
                if verdict is Standby.HANDED_OVER and successor is not None:
                    say_superseded(family, version, successor)
                return 0
            say_rolling_back(family, version, successor)
            back_from, wrapper.kept = successor, kept
    finally:
        restore_handlers(previous)
        if wrapper.sock is not None:
            wrapper.sock.close()


def _readiness(ready: ReadySpec, has_port: bool, socket: bool) -> ReadySpec:
    """What ready means for this wrapper (control.md#readiness), refused when it cannot be."""
    if socket:
        from tenure.adapters.handover import socket_refusal  # noqa: PLC0415  (--socket only)

        refusal = socket_refusal(has_port, ready.mode)
        if refusal:
            raise ConfigError(refusal)
    if ready.mode is None:
        ready = replace(ready, mode="started" if socket or not has_port else "port")
    if ready.mode == "port" and not has_port:
        raise ConfigError("readiness by port needs the family's port range (--ports LO-HI)")
    return ready


class Wrapper:
    """What lasts across the tenures of one wrapper: its root, its launch, the governor the
    signal handler finds, the stop asked, its listening socket (`--socket`) and the tree it
    kept serving through a handover."""

    def __init__(
        self, root: Path, launch: Launch, current: list[Governor], asked: threading.Event
    ) -> None:
        self.root = root
        self.launch = launch
        self.current = current
        self.asked = asked
        self.sock: socket.socket | None = None
        self.kept: Running | None = None


def _tenure(family: str, version: str, wrapper: Wrapper, back_from: LeaseRecord | None) -> Done:
    """Take the lease (superseding an older holder), serve the command, leave."""
    launch, root = wrapper.launch, wrapper.root
    store = LeaseStore(root, family, launch.scope)
    last = store.read()
    keep = last.holder.port if isinstance(last, LeaseRecord) else None
    if back_from is not None and launch.port is None:
        keep = back_from.holder.port or keep
    standby = stands_by(last, version)
    gov, within = _governor(family, version, wrapper, standby=standby)
    wrapper.current.append(gov)
    if wrapper.asked.is_set():
        return Done(0)  # a stop signal came before the handler could see this governor
    receiver = _receiver(wrapper, gov, last if standby and isinstance(last, LeaseRecord) else None)
    if wrapper.kept is not None:
        gov.takeover.spare = wrapper.kept.cookie  # our own tree, taken back (a rollback)
    try:
        held = take(gov, None)
    except Retiring:
        if receiver is not None:
            _close(receiver.take())
        return Done(0)  # a stop signal arrived while acquiring: nothing was taken
    acquired_at = time.monotonic()
    with holding(held, {}):
        if back_from is not None:
            tombstone_rolled_back(store, back_from)
        chosen = _place(held, wrapper, receiver, keep)
        if chosen is False:
            return Done(0)  # asked to stop before the child started
        # Counted from the acquire, as the promise in the record is (`within`).
        deadline = None if within is None else acquired_at + launch.ready.timeout_s
        adopt, wrapper.kept = _adoptable(family, wrapper.kept), None
        served = serve(held, chosen, launch, deadline, sock=wrapper.sock, adopt=adopt)
        while served.upgraded is not None and gov.state is State.HOLDING:
            print(
                f"tenure: a new install of {served.upgraded} settled; restarting {family}"
                + ("" if chosen is None else f" on port {chosen}"),
                file=sys.stderr,
            )
            served = serve(held, chosen, launch, None, sock=wrapper.sock)
        if not served.ready:
            gov.takeover.cancel()  # a handed-over predecessor takes its tree back
        if not served.ready and deadline is not None and gov.state is State.HOLDING:
            gov.handle(Event.NOT_READY)  # ended before it was ready: give the place back
    if wrapper.sock is not None and wrapper.sock.fileno() == -1:
        wrapper.sock = None  # closed as the tree ended: the port is the next holder's
    if gov.retiring is RetireReason.NOT_READY and isinstance(last, LeaseRecord):
        outcome = (served.code, served.why)
        return Done(report_not_ready(store, (version, gov.epoch), last, outcome))
    if gov.retiring is RetireReason.SUPERSEDED:
        watch = Watch(store, gov.epoch, gov.timing.heartbeat_s, gov.timing.ttl_s)
        return Done(0, watch, served.kept)
    if served.code and not served.ready and last is None and back_from is None:
        forget_never_started(store, served.why)  # a typo'd first start leaves no record
    return Done(served.code)


def _place(
    held: Held, wrapper: Wrapper, receiver: Receiver | None, keep: int | None
) -> int | Literal[False] | None:
    """The port to serve on: the handed socket's (its old tree serves until ours is ready),
    our own socket's (a rollback), or one chosen once the replaced trees let go of it; False
    when a stop was asked meanwhile."""
    launch = wrapper.launch
    handed = None if receiver is None else receiver.take()
    if handed is not None:
        _close(wrapper.sock)
        wrapper.sock = handed
        return _port_of(handed)
    held.governor.takeover.proceed()  # nothing handed: replaced trees go before we start
    fixed = launch.port if wrapper.sock is None else _port_of(wrapper.sock)
    chosen = _make_way(held, fixed, launch.ports, keep)
    if launch.socket and wrapper.sock is None and chosen is not False and chosen is not None:
        wrapper.sock = _listen(chosen)
    return chosen


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
    from tenure.protocol.leases import ports_taken  # noqa: PLC0415  (choosing a port only)

    # Claimed under the family's ports lock until our record names it: another scope's
    # holder choosing at the same moment takes another (lease.md#scopes).
    with locked(RootLayout(gov.root).ports_lock(gov.family), timeout_s=PORT_CLAIM_WAIT_S):
        port = free_port(ports, prefer=keep, avoid=ports_taken(gov.store))
        if port is not None:
            gov.record_child(None, port=port)
    if keep is not None and port != keep and ports and ports[0] <= keep <= ports[1]:
        print(f"tenure: port {keep} is still in use; serving on {port}", file=sys.stderr)
    return port


def _stop_asked(gov: Governor) -> None:
    """A stop signal (from a signal handler): abandon an acquire in progress, else retire."""
    if gov.state is State.ACQUIRING:
        threading.Thread(target=gov.abandon, args=(RetireReason.SIGNAL,), daemon=True).start()
    else:
        signalled(gov)


def _governor(
    family: str, version: str, wrapper: Wrapper, *, standby: bool
) -> tuple[Governor, float | None]:
    """The governor of one tenure, and the ready bound it promises a standby predecessor."""
    launch = wrapper.launch
    policy = TREE_STOP.following(launch.stop)
    # Idle is opt-in for `run`; the drain bound covers ending the tree (its signal, grace,
    # SIGKILL) and the release; whoever stops the wrapper gives it that long before SIGKILL.
    drain = policy.bound_s + RUN_RELEASE_S
    timing = replace(config.timing(), idle_s=launch.idle_s, drain_s=drain)
    # Promised to a standby: ready, or released, within this long of taking the lease.
    within = None
    if standby and launch.socket:
        within = max(launch.ready.timeout_s, SOCKET_SETTLE_S) + drain
    elif standby and launch.ready.mode != "started":
        within = launch.ready.timeout_s + drain
    gov = make_governor(
        family,
        version,
        root=wrapper.root,
        port=launch.port,
        ports=launch.ports,
        timing=timing,
        stop=StopSpec("SIGTERM", max(HOLDER_STOP.grace_s, drain)),
        ready_within=within,
        scope=launch.scope,
    )
    return gov, within


def _receiver(wrapper: Wrapper, gov: Governor, last: LeaseRecord | None) -> Receiver | None:
    """Listen for the socket of the older wrapper we supersede (`--socket`, Linux): when it
    hands it over, its tree serves until ours is ready, so the stop of replaced trees waits."""
    if not wrapper.launch.socket or last is None:
        return None
    from tenure.adapters import handover  # noqa: PLC0415  (--socket only)

    if not handover.supported():
        return None
    gov.takeover.defer()
    return handover.Receiver(wrapper.root, gov.store.key, last.holder.pid)


def _adoptable(family: str, kept: Running | None) -> Running | None:
    """Our kept tree, when its child still runs (a rollback takes it back as it is)."""
    if kept is not None and kept.child.poll() is not None:
        end_tree(family, kept)  # its child ended meanwhile: what is left of it goes
        return None
    return kept


def _port_of(sock: socket.socket) -> int:
    from tenure.adapters.handover import port_of  # noqa: PLC0415  (--socket only)

    return port_of(sock)


def _listen(port: int) -> socket.socket:
    from tenure.adapters.handover import listen_on  # noqa: PLC0415  (--socket only)

    try:
        return listen_on(port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from exc


def _close(sock: socket.socket | None) -> None:
    if sock is not None:
        sock.close()
