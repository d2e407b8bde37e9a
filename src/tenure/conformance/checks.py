"""The checks: each stimulates the daemon and reads the root as any reader would."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import replace

from tenure.adapters import platform
from tenure.adapters.files import locked
from tenure.adapters.http import health
from tenure.adapters.procinfo import (
    argv_and_environ,
    liveness,
    own_identity,
    read_process,
    signal_verified,
)
from tenure.adapters.root import RootLayout, ensure_root, read_root_id
from tenure.adapters.stopping import gone_within
from tenure.adapters.tombstones import read_tombstones
from tenure.adapters.waiting import wait_until
from tenure.conformance.report import Check
from tenure.conformance.session import Failed, Session, Started, private_file
from tenure.core.identity import same_start
from tenure.core.lease import (
    Liveness,
    SupersedeVerdict,
    decide_supersede,
    parse_version,
)
from tenure.core.record import Holder, LeaseRecord, LeaseState, Unreadable
from tenure.core.timing import POLL_S
from tenure.errors import LockTimeout
from tenure.protocol.supersede import request_stop


def takes_lease(s: Session, d: Started, rec: LeaseRecord, t0: float) -> Check:
    opts, problems = s.opts, []
    if rec.family != opts.family:
        problems.append(f"family {rec.family!r}, expected {opts.family!r}")
    if opts.version is not None and rec.holder.version != opts.version:
        problems.append(f"version {rec.holder.version!r}, expected {opts.version!r}")
    elif parse_version(rec.holder.version) is None:
        problems.append(f"version {rec.holder.version!r} is not PEP 440: it cannot be superseded")
    if rec.epoch < 1:
        problems.append(f"epoch {rec.epoch} (the first grant is 1)")
    if s.store.epoch_floor() < rec.epoch:
        problems.append(f"{s.store.floor_path.name} holds {s.store.epoch_floor()} < {rec.epoch}")
    real = read_process(rec.holder.pid)
    if real is None:
        problems.append(f"holder pid {rec.holder.pid} is not running")
    elif not same_start(rec.holder.ident, real.ident):
        problems.append(
            f"holder start (create_time {rec.holder.create_time}, ticks "
            f"{rec.holder.start_ticks}) is not the process's ({real.create_time}, "
            f"{real.start_ticks})"
        )
    if rec.root_id is not None and rec.root_id != read_root_id(s.root):
        problems.append(f"root_id {rec.root_id!r} is not this root's {read_root_id(s.root)!r}")
    if opts.ports is not None and rec.ports not in (None, opts.ports):
        problems.append(f"ports {rec.ports}, expected {opts.ports}")
    layout = RootLayout(s.root)
    for path in (s.store.record_path, s.store.lock_path, s.store.floor_path, layout.tombstones):
        if not private_file(path):
            problems.append(f"{path.name} is readable by others (files MUST be 0600)")
    if problems:
        return Check("takes_lease", False, "; ".join(problems))
    notes = f"epoch {rec.epoch}, pid {rec.holder.pid}"
    if rec.root_id is None:
        notes += "; no root_id in the record (optional)"
    return Check("takes_lease", True, notes, time.monotonic() - t0)


def refuses_second_copy(s: Session, first: LeaseRecord) -> Check:
    second = s.spawn()
    bound = s.leave_bound(first)
    t0 = time.monotonic()

    def settled() -> bool:
        rec = s.record()
        if rec is None or rec.epoch != first.epoch or rec.holder.nonce != first.holder.nonce:
            raise Failed(f"a second copy changed the record: {s._shown()}")
        return second.proc.poll() is not None

    try:
        exited = wait_until(settled, bound, POLL_S)
    except Failed as exc:
        return Check("refuses_second_copy", False, str(exc))
    if not exited:
        return Check(
            "refuses_second_copy",
            True,
            f"the second copy waited without taking the lease (stopped after {bound:.0f}s)",
        )
    code = second.proc.returncode
    return Check(
        "refuses_second_copy",
        True,
        f"the second copy exited with code {code}; the holder kept epoch {first.epoch}",
        time.monotonic() - t0,
    )


def renews(s: Session, rec: LeaseRecord) -> Check:

    def renewed_twice() -> LeaseRecord | None:
        cur = s.record()
        if cur is None or cur.epoch != rec.epoch or cur.holder.nonce != rec.holder.nonce:
            raise Failed(f"the record changed holder while renewing: {s._shown()}")
        return cur if cur.seq >= rec.seq + 2 and cur.renewed_at > rec.renewed_at else None

    try:
        cur = wait_until(renewed_twice, 2 * rec.ttl_s + s.opts.leave_grace_s, POLL_S)
    except Failed as exc:
        return Check("renews", False, str(exc))
    if cur is None:
        return Check(
            "renews",
            False,
            f"seq did not advance twice within {2 * rec.ttl_s:.1f}s (still {s._shown()})",
        )
    each = (cur.renewed_at - rec.renewed_at) / (cur.seq - rec.seq)
    return Check("renews", True, f"seq {rec.seq} → {cur.seq}, every {each:.2f}s", each)


def keeps_token_private(s: Session, rec: LeaseRecord) -> Check:
    layout = RootLayout(s.root)
    tokens = sorted(layout.tokens.glob(f"{s.opts.family}.*.token"))
    if not tokens:
        return Check("keeps_token_private", True, "no control token in the root: nothing to leak")
    problems = []
    if not private_file(layout.tokens):
        problems.append("tokens/ is open to others (MUST be 0700)")
    seen: list[tuple[str, bytes]] = [("the record", s.store.read_raw() or b"")]
    with contextlib.suppress(OSError):
        seen.append(("its output", s.output.read_bytes()))
    for log in layout.logs.glob("*"):
        with contextlib.suppress(OSError):
            seen.append((f"logs/{log.name}", log.read_bytes()))
    shown = argv_and_environ(rec.holder.pid)
    if shown is not None:
        seen.append(("its argv", "\0".join(shown[0]).encode()))
        seen.append(("its environment", repr(shown[1]).encode()))
    if rec.holder.port is not None:
        seen.append(("its health answer", repr(health(rec.holder.port)).encode()))
    for path in tokens:
        if not private_file(path):
            problems.append(f"{path.name} is readable by others (MUST be 0600)")
        secret = path.read_bytes().strip()
        problems += [f"the token appears in {where}" for where, text in seen if secret in text]
    if problems:
        return Check("keeps_token_private", False, "; ".join(problems))
    places = ", ".join(where for where, _ in seen)
    return Check("keeps_token_private", True, f"0600 token, absent from {places}")


def _left_cleanly(s: Session, d: Started, rec: LeaseRecord, name: str, reason: str) -> Check:
    """After a stimulus: gone within the bound, record released at its epoch, tombstone, no
    governed child left behind."""
    took = s.gone(d, s.leave_bound(rec))
    if took is None:
        return Check(
            name,
            False,
            f"pid {rec.holder.pid} still running {s.leave_bound(rec):.1f}s later "
            f"(record: {s._shown()})",
        )
    problems = []
    cur = s.record()
    released = (
        cur is not None
        and cur.epoch == rec.epoch
        and cur.holder.nonce == rec.holder.nonce
        and cur.state is LeaseState.RELEASED
    )
    if not released:
        problems.append(f"the record was not released at epoch {rec.epoch}: {s._shown()}")
    marks = [t for t in read_tombstones(s.root) if t["pid"] == rec.holder.pid]
    if not marks:
        problems.append("no tombstone for it in tombstones.jsonl")
    elif reason and marks[-1]["reason"] != reason:
        problems.append(f"tombstone reason {marks[-1]['reason']!r}, expected {reason!r}")
    if problems:
        return Check(name, False, "; ".join(problems), took)
    said = f", tombstone {marks[-1]['reason']!r}" if marks else ""
    left = Check(name, True, f"left in {took:.2f}s, released{said}", took)
    return and_child_gone(left, rec, s.opts.leave_grace_s)


def and_child_gone(check: Check, rec: LeaseRecord, grace_s: float) -> Check:
    """A holder that left must not leave its governed child (`tenure run`) behind."""
    child = rec.child
    ident = rec.child_ident
    if not check.passed or child is None or ident is None or gone_within(ident, grace_s):
        return check
    return replace(check, passed=False, detail=f"its governed child pid {child.pid} still runs")


def takes_the_lock(s: Session) -> Check:
    """Hold `<family>.lock` (flock, as every writer must) for two heartbeats: a daemon that
    takes the lock before each write cannot renew meanwhile."""
    hold_s = 2.2 * s.opts.heartbeat_s
    try:
        with locked(s.store.lock_path, timeout_s=s.opts.ttl_s):
            before = s.record()
            time.sleep(hold_s)  # the daemon's heartbeats fall inside this window
            after = s.record()
    except LockTimeout:
        return Check("takes_the_lock", False, f"{s.store.lock_path.name} stayed locked")
    if before is None or after is None:
        return Check("takes_the_lock", False, "the record went away while the kit held the lock")
    if after.seq != before.seq:
        return Check(
            "takes_the_lock",
            False,
            f"it renewed (seq {before.seq} → {after.seq}) while the kit held "
            f"leases/{s.store.lock_path.name} with flock(2): it writes without the lock",
        )
    return Check("takes_the_lock", True, f"no write during {hold_s:.2f}s under the kit's lock")


def sigterm(s: Session, d: Started, rec: LeaseRecord) -> Check:
    if platform.WINDOWS:  # SIGTERM is TerminateProcess there: nothing could be graceful
        return Check("leaves_on_sigterm", True, "Windows has no graceful signal: see when asked")
    if signal_verified(rec.holder.ident, signal.SIGTERM) is not None:
        return Check("leaves_on_sigterm", False, f"pid {rec.holder.pid} is not ours to signal")
    return _left_cleanly(s, d, rec, "leaves_on_sigterm", "")


def _newer(version: str) -> str | None:
    parsed = parse_version(version)
    return None if parsed is None else str(parsed.major + 1)


def supersession(s: Session, d: Started, rec: LeaseRecord) -> Check:
    newer = _newer(rec.holder.version)
    if newer is None:
        return Check("leaves_on_supersession", False, f"{rec.holder.version!r} is not PEP 440")

    def mark(cur: LeaseRecord | Unreadable | None) -> tuple[SupersedeVerdict, LeaseRecord | None]:
        decision = decide_supersede(cur, newer, os.getpid(), time.time())
        return decision.verdict, decision.write

    verdict = s.store.transact(mark)
    if verdict is not SupersedeVerdict.REQUESTED:
        return Check("leaves_on_supersession", False, f"could not mark it superseded: {verdict}")
    check = _left_cleanly(s, d, rec, "leaves_on_supersession", "superseded")
    if check.seconds is None and not check.passed:
        return replace(
            check,
            detail=f"it ignores supersession: superseded_by {newer} was set in the record and "
            f"{check.detail}",
        )
    return check


def asked(s: Session, d: Started, rec: LeaseRecord) -> Check:
    """`stop_requested` set in the record (lease.md#stop), no signal: the one graceful stop
    on Windows, and the only one that reaches a holder in another namespace."""
    if not request_stop(s.store, rec):
        return Check("leaves_when_asked", False, f"could not ask it: {s._shown()}")
    check = _left_cleanly(s, d, rec, "leaves_when_asked", "requested")
    if check.seconds is None and not check.passed:
        return replace(
            check,
            detail="it ignores stop_requested (set in the record, no signal sent) and "
            + check.detail,
        )
    return check


def _steal(s: Session, rec: LeaseRecord) -> bytes:
    """Take the lease from under the holder, as a takeover by another holder would."""
    me = own_identity()
    thief = Holder(
        me.pid, me.create_time, "c0ffee" * 2 + "kit0", rec.holder.version, None, time.time(),
        me.start_ticks, me.where,
    )  # fmt: skip

    def take(cur: LeaseRecord | Unreadable | None) -> tuple[None, LeaseRecord]:
        base = cur if isinstance(cur, LeaseRecord) else rec
        epoch = max(base.epoch, s.store.epoch_floor()) + 1
        new = replace(
            base, epoch=epoch, holder=thief, renewed_at=time.time(), seq=0, ttl_s=3600.0,
            state=LeaseState.HELD, superseded_by=None, child=None,
        )  # fmt: skip
        return None, new

    s.store.transact(take)
    return s.store.read_raw() or b""


def lease_loss(s: Session, d: Started, rec: LeaseRecord) -> tuple[Check, Check]:
    stolen = _steal(s, rec)
    t0 = time.monotonic()
    bound = s.leave_bound(rec)
    wrote: list[bytes] = []

    def gone() -> bool:
        raw = s.store.read_raw() or b""
        if raw != stolen and not wrote:
            wrote.append(raw)
        return liveness(rec.holder.ident) is not Liveness.ALIVE

    left = wait_until(gone, bound, POLL_S)
    took = time.monotonic() - t0
    if left:
        leave = Check("leaves_on_lease_loss", True, f"left in {took:.2f}s", took)
    else:
        leave = Check(
            "leaves_on_lease_loss",
            False,
            f"pid {rec.holder.pid} still running {bound:.1f}s after its epoch {rec.epoch} "
            "was taken over",
        )
    leave = and_child_gone(leave, rec, s.opts.leave_grace_s)
    if wrote:
        shown = wrote[0][:200].decode("utf-8", "replace")
        fence = Check(
            "no_write_after_losing_epoch", False, f"it wrote the record after losing: {shown}"
        )
    else:
        fence = Check(
            "no_write_after_losing_epoch", True, "the new holder's record was left untouched"
        )
    return leave, fence


def root_removal(s: Session, d: Started, rec: LeaseRecord) -> tuple[Check, Check]:
    os.rename(s.root, s.dir / "root.removed")
    ensure_root(s.root)  # a new instance at the same path: nothing of the old holder belongs here
    bound = s.leave_bound(rec)
    took = s.gone(d, bound)
    if took is None:
        leave = Check(
            "leaves_on_root_removal",
            False,
            f"pid {rec.holder.pid} still running {bound:.1f}s after its root was removed",
        )
    else:
        leave = Check("leaves_on_root_removal", True, f"left in {took:.2f}s", took)
    leave = and_child_gone(leave, rec, s.opts.leave_grace_s)
    layout = RootLayout(s.root)
    written = [p.name for p in (layout.leases, layout.tokens) if p.is_dir() for p in p.iterdir()]
    if layout.tombstones.exists():
        written.append(layout.tombstones.name)
    if written:
        fence = Check(
            "no_write_into_a_new_root", False, f"it wrote into the new root: {sorted(written)}"
        )
    else:
        fence = Check("no_write_into_a_new_root", True, "nothing written into the new root")
    return leave, fence
