"""`tenure.hold`: what a tool's own daemon wraps itself in to govern itself (public API).

    with tenure.hold("indexer", version="1.4") as held:
        while not held.retiring.wait(1.0):
            with held.work():
                index_one_batch()

Inside the block the process holds the family's lease: it heartbeats, and leaves by itself when
the lease is lost or expires, a newer version supersedes it (the record's `superseded_by`, seen
within a heartbeat even without an HTTP control plane), it is idle, its root goes away, or it
gets SIGTERM / SIGINT (reason `signal`). Leaving the block retires it too; `held.work()` raises
`Retiring` once leaving, which ends the block quietly (how a work loop learns, race-free, to stop).
spec: docs/protocol/lease.md#holder-lifecycle
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from tenure.adapters import config, platform
from tenure.adapters.files import locked
from tenure.adapters.root import RootLayout, ensure_root, given_or_default
from tenure.core.hints import TYPE_CHECKING
from tenure.core.inputs import STOP_SIGNAL_NAMES, check_daemon, check_stop
from tenure.core.lifecycle import Event, RetireReason, State
from tenure.core.record import LeaseScope, StopSpec
from tenure.core.timing import HOLDER_STOP, Timing, start_lock_wait
from tenure.errors import LockTimeout, Retiring
from tenure.holder.governor import Governor
from tenure.protocol.supersede import prepare_start

if TYPE_CHECKING:
    import asyncio
    import socket
    from typing import Any

    from tenure.holder.listening import Listening

# SIGHUP too (a closed terminal, a service manager's reload): a graceful retirement everywhere.
HANDLED_SIGNALS = platform.STOP_SIGNALS


class Held:
    """The lease this process holds inside `tenure.hold` (what the `with` yields)."""

    def __init__(self, governor: Governor) -> None:
        self.governor = governor
        self.retiring = threading.Event()  # set when retirement begins; loops wait on it
        self.socket: socket.socket | None = None  # listen=True: the listening socket
        self._async: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        governor.on_retiring.append(self._on_retiring)
        if governor.retiring is not None:
            # Retirement began before this handle existed (a stop signal right as the lease
            # was taken): the loops that wait on `retiring` must see it all the same.
            self.retiring.set()

    @property
    def family(self) -> str:
        """The daemon family."""
        return self.governor.family

    @property
    def epoch(self) -> int:
        """The fencing token of this tenure of the lease."""
        return self.governor.epoch

    @property
    def reason(self) -> RetireReason | None:
        """Why it is retiring, once it is."""
        return self.governor.retiring

    def work(self) -> contextlib.AbstractContextManager[None]:
        """One unit of in-flight work (retirement drains it); `Retiring` once leaving."""
        return self.governor.work()

    def wait(self, timeout: float | None = None) -> RetireReason | None:
        """Block until retirement begins (or `timeout`); the reason, or None."""
        self.retiring.wait(timeout)
        return self.reason

    async def wait_async(self) -> RetireReason | None:
        """Wait, without blocking the event loop, until retirement begins; the reason."""
        import asyncio  # noqa: PLC0415  (only asyncio daemons pay for it: ~2 MB resident)

        event = asyncio.Event()
        self._async.append((asyncio.get_running_loop(), event))
        if not self.retiring.is_set():
            await event.wait()
        return self.reason

    def _on_retiring(self, _reason: RetireReason) -> None:
        self.retiring.set()
        for loop, event in self._async:
            loop.call_soon_threadsafe(event.set)


def signalled(governor: Governor) -> None:
    """Retire `governor` for a signal (reason `signal`); safe to call from a signal handler."""
    # From a signal handler: hand the event to a thread, never re-enter the governor's lock.
    threading.Thread(target=governor.handle, args=(Event.SIGNALLED,), daemon=True).start()


def make_governor(
    family: str,
    version: str,
    *,
    root: str | os.PathLike[str] | None,
    port: int | None,
    ports: tuple[int, int] | None,
    timing: Timing | None,
    control: bool = False,
    stop: StopSpec | None = None,
    ready_within: float | None = None,
    watch: Sequence[str | os.PathLike[str]] = (),
    scope: str | os.PathLike[str] | LeaseScope | None = None,
) -> Governor:
    check_daemon(family, version, ports)  # before any file is touched
    scope = scope if scope is not None else config.spawned_scope(family)
    if scope is not None:
        from tenure.adapters.scopes import given_scope  # noqa: PLC0415  (scoped only)

        scope = given_scope(scope)  # a bad scope is a ConfigError before the root is made
    watched: tuple[str, ...] = ()
    if watch:
        from tenure.adapters.installs import check_watched  # noqa: PLC0415  (opt-in)

        watched = check_watched(watch)
    given_port, given_ports = config.spawned_as(family)
    return Governor(
        ensure_root(given_or_default(root)),
        family,
        version,
        port=port if port is not None else given_port,
        ports=ports if ports is not None else given_ports,
        timing=timing,
        control=control,
        stop=stop,
        ready_within=ready_within,
        watch=watched,
        scope=scope,
    )


def stop_spec(
    stop_signal: str | None, stop_grace_s: float | None, handle_signals: bool
) -> StopSpec | None:
    """The holder's own stop policy (control.md#stop-policy), None when it keeps the default.
    A signal `hold` handles itself must be one it installs a handler for."""
    if stop_signal is None and stop_grace_s is None:
        return None
    allowed = tuple(s.name for s in HANDLED_SIGNALS) if handle_signals else STOP_SIGNAL_NAMES
    grace = HOLDER_STOP.grace_s if stop_grace_s is None else stop_grace_s
    name, grace = check_stop(stop_signal or "SIGTERM", grace, allowed, "stop_signal/stop_grace_s")
    return StopSpec(name, grace)


def make_way(governor: Governor, *, launched: bool = False) -> float:
    """Under the lease's start lock: an older live holder is asked to retire and waited for
    (at most `leave_wait`); how much longer to wait for its lease when it did not leave. An
    equal or newer live holder is left to `acquire` (which refuses it, or waits `wait_s`).

    `launched` (`TENURE_FAMILY` names the family): a launcher that holds the start lock while
    it spawns us made way already, so the lock is only tried; free, nobody is launching us (a
    shell that exports the variable) and we make way as any direct start (control.md#ensure).
    """
    g = governor
    lock = RootLayout(g.root).start_lock(g.store.key)
    try:
        with locked(lock, timeout_s=0.0 if launched else start_lock_wait(g.timing)):
            plan = prepare_start(g.store, g.version, g.timing, usable=lambda _rec: True)
    except LockTimeout:
        if launched:
            return 0.0
        raise
    # Only a supersession adds a wait: any other lease is judged by `acquire` as before.
    return plan.wait_s if plan.action == "superseded" else 0.0


def take(governor: Governor, wait_s: float | None) -> Held:
    """Acquire (raising `LeaseHeld` naming the holder) and start heartbeating. Interrupted on
    the way — Ctrl-C, a cancelled task — nothing taken is left behind (`Governor.abandon`)."""
    if wait_s is None:
        wait_s = config.acquire_wait(governor.family)
    # Started directly (a service manager, by hand, a test), an older live holder is superseded
    # here, as a launcher does under its start lock (lease.md#supersession).
    wait_s = max(wait_s, make_way(governor, launched=config.launched_for(governor.family)))
    try:
        governor.acquire(wait_s=wait_s)
        governor.start()
    except BaseException:
        with contextlib.suppress(Exception):
            governor.abandon()
        raise
    from tenure.holder.notices import announce  # noqa: PLC0415  (once the lease is held)

    announce(governor)
    return Held(governor)


# Signal handlers `hold` installed, by block, so a forked child gets the previous ones back.
_INSTALLED: dict[int, dict[signal.Signals, Any]] = {}


def _after_fork_in_child() -> None:
    # spec: lease.md#fork — a child (a multiprocessing worker) must not retire its parent on
    # SIGTERM: it gets the handlers it would have had without `hold`.
    for previous in _INSTALLED.values():
        for signum, old in previous.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, old)
    _INSTALLED.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Outcome:
    """How a hold's block ended: `failed` when something other than `Retiring` escaped it."""

    failed = False


@contextlib.contextmanager
def _block(outcome: _Outcome) -> Iterator[None]:
    """The adopter's block inside `hold` / `hold_async`: `Retiring` (`work()` refused because
    the daemon is leaving) is the normal way out of a loop; anything else is a failure."""
    try:
        yield
    except Retiring:
        pass
    except BaseException:
        outcome.failed = True
        raise


def _leave(held: Held, failed: bool) -> None:
    governor = held.governor
    if governor.forked:
        return  # a forked child leaving the block: the lease is its parent's (lease.md#fork)
    if governor.state is State.HOLDING:
        governor.retire(RetireReason.FAULT if failed else RetireReason.SHUTDOWN, drain=not failed)
    governor.wait_retired(governor.timing.drain_s + 5)
    if held.socket is not None:
        held.socket.close()  # ours to close (listen=True): handed on already, if superseded


@contextlib.contextmanager
def hold(
    family: str,
    *,
    version: str,
    root: str | os.PathLike[str] | None = None,
    port: int | None = None,
    ports: tuple[int, int] | None = None,
    timing: Timing | None = None,
    wait_s: float | None = None,
    handle_signals: bool = True,
    control: bool = False,
    stop_signal: str | None = None,
    stop_grace_s: float | None = None,
    watch: Sequence[str | os.PathLike[str]] = (),
    listen: bool = False,
    scope: str | os.PathLike[str] | LeaseScope | None = None,
) -> Iterator[Held]:
    """Hold `family`'s lease for the duration of the block (or raise `LeaseHeld`).

    `port` is the port the daemon serves and `ports` its family's range (recorded in the lease
    so `tenure ls` and the doctor scan it); both default to what `tenure.ensure` passed in
    `TENURE_PORT` / `TENURE_PORTS`. `wait_s` is how long to wait for a lease that is expiring
    (default: what `tenure.ensure` passed in `TENURE_ACQUIRE_WAIT`, else 0).

    In the main thread, SIGTERM and SIGINT retire the daemon gracefully (drain, release,
    tombstone with reason `signal`) instead of raising; the previous handlers come back when
    the block ends. `handle_signals=False` leaves signals to the caller. `control=True` says
    `port` serves tenure's control plane (`GET /api/health`, control.md#endpoints); without it
    no reader sends the port anything but a connect.

    `stop_signal` (`"SIGINT"`, `"SIGHUP"`; default SIGTERM) and `stop_grace_s` (0-3600,
    default 15) are recorded in the lease: whoever stops this daemon — `tenure stop`,
    `tenure.stop` — sends that signal and waits that long before SIGKILL
    (control.md#stop-policy).

    `watch` names files of this daemon's install (its entry point, its package's version
    file): when one of them changes and settles — a new install — the daemon retires with
    reason `upgraded`, so the next start runs the new code (control.md#installs).

    `listen=True` gives `held.socket`, listening on `port`: handed over by the older version
    this superseded and on to the newer one (Linux; control.md#socket-handover).

    `scope` (a directory: a project, a worktree) makes the lease that directory's: holders of
    one family in different scopes coexist, and this one retires (`scope_gone`) when the
    directory is removed, moved or replaced (default: `TENURE_SCOPE` from `tenure.ensure`,
    else the user scope; lease.md#scopes).
    """
    spec = stop_spec(stop_signal, stop_grace_s, handle_signals)
    governor = make_governor(
        family,
        version,
        root=root,
        port=port,
        ports=ports,
        timing=timing,
        control=control,
        stop=spec,
        watch=watch,
        scope=scope,
    )
    listening = listening_for(governor) if listen else None
    try:
        held = take(governor, wait_s)
    except BaseException:
        if listening is not None:
            listening.close()
        raise
    held.socket = None if listening is None else listening.open()
    previous: dict[signal.Signals, Any] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():

        def handler(_signum: int, _frame: FrameType | None) -> None:
            signalled(held.governor)

        previous = install_handlers(handler)
    with holding(held, previous):
        yield held


def listening_for(governor: Governor) -> Listening:
    """`listen=True`: listen for the socket before the holder is asked to leave."""
    from tenure.holder.listening import Listening  # noqa: PLC0415  (opt-in)

    return Listening(governor)


def install_handlers(handler: Callable[[int, FrameType | None], None]) -> dict[signal.Signals, Any]:
    """Install `handler` for the stop signals; the previous handlers, to give back (a forked
    child gets them back at once: lease.md#fork)."""
    previous = {signum: signal.signal(signum, handler) for signum in HANDLED_SIGNALS}
    _INSTALLED[id(previous)] = previous
    return previous


@contextlib.contextmanager
def holding(held: Held, previous: dict[signal.Signals, Any]) -> Iterator[None]:
    """The adopter's block around a taken lease: the previous signal handlers come back and
    the holder retires (draining) when it ends."""
    governor = held.governor
    outcome = _Outcome()
    try:
        with _block(outcome):
            yield
    finally:
        if not governor.forked:  # a forked child got its handlers back at the fork
            restore_handlers(previous)
        _leave(held, outcome.failed)


def restore_handlers(previous: dict[signal.Signals, Any]) -> None:
    """Give back the handlers `install_handlers` replaced."""
    _INSTALLED.pop(id(previous), None)
    for signum, old in previous.items():
        signal.signal(signum, old)
