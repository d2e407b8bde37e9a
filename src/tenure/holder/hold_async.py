"""`tenure.hold_async`: `tenure.hold` for asyncio daemons (spec: lease.md#holder-lifecycle)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import AsyncIterator, Sequence

from tenure.core.timing import Timing
from tenure.holder.hold import (
    _INSTALLED,
    HANDLED_SIGNALS,
    Held,
    _block,
    _leave,
    _Outcome,
    listening_for,
    make_governor,
    signalled,
    stop_spec,
    take,
)


@contextlib.asynccontextmanager
async def hold_async(
    family: str,
    *,
    version: str,
    root: str | os.PathLike[str] | None = None,
    port: int | None = None,
    ports: tuple[int, int] | None = None,
    timing: Timing | None = None,
    wait_s: float | None = None,
    handle_signals: bool = True,
    stop_signal: str | None = None,
    stop_grace_s: float | None = None,
    watch: Sequence[str | os.PathLike[str]] = (),
    scope: str | os.PathLike[str] | None = None,
    listen: bool = False,
    control: bool = False,
) -> AsyncIterator[Held]:
    """`hold` for asyncio daemons: `async with tenure.hold_async(...) as held`, then
    `await held.wait_async()`. Signals go through the loop (`add_signal_handler`).

    Cancelled while it waits for the lease (`asyncio.wait_for`, a task group), it gives up at
    once, and a lease taken meanwhile is released with a tombstone: nothing keeps heartbeating
    for a caller that left. `listen=True` gives `held.socket` as `hold` does (handed over
    between versions: control.md#socket-handover); `control=True` says `port` serves tenure's
    control plane, as for `hold`.
    """
    import asyncio  # noqa: PLC0415  (see Held.wait_async)

    spec = stop_spec(stop_signal, stop_grace_s, handle_signals)
    governor = await asyncio.to_thread(
        make_governor,
        family,
        version,
        root=root,
        port=port,
        ports=ports,
        timing=timing,
        stop=spec,
        watch=watch,
        scope=scope,
        control=control,
    )
    listening = listening_for(governor) if listen else None
    try:
        held = await asyncio.to_thread(take, governor, wait_s)
    except BaseException as exc:
        if listening is not None:
            listening.close()
        if isinstance(exc, asyncio.CancelledError):
            # The acquiring thread runs on: `abandon` stops it and releases what it took. Not
            # a daemon thread, so the interpreter waits for the release before it exits.
            threading.Thread(target=governor.abandon, name="tenure-abandon").start()
        raise
    held.socket = None if listening is None else listening.open()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if handle_signals:
        for signum in HANDLED_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, signalled, held.governor)
                installed.append(signum)
    # A forked child gets the default dispositions back instead of the loop's.
    defaults = {
        s: signal.default_int_handler if s is signal.SIGINT else signal.SIG_DFL for s in installed
    }
    _INSTALLED[id(defaults)] = defaults
    outcome = _Outcome()
    try:
        with _block(outcome):
            yield held
    finally:
        _INSTALLED.pop(id(defaults), None)
        for signum in installed:
            loop.remove_signal_handler(signum)
        await asyncio.to_thread(_leave, held, outcome.failed)
