"""The checks of leaving: on SIGTERM, on supersession, when asked through the record, on lease
loss and on root removal. Each stimulates the daemon and reads the root as any reader would."""

from __future__ import annotations

import os
import signal
import time

from tenure.adapters import platform
from tenure.adapters.procinfo import (
    liveness,
    own_identity,
    signal_verified,
)
from tenure.adapters.root import RootLayout, ensure_root
from tenure.adapters.stopping import gone_within
from tenure.adapters.tombstones import read_tombstones
from tenure.adapters.waiting import wait_until
from tenure.conformance.report import Check
from tenure.conformance.session import Session, Started
from tenure.core.handover import SupersedeVerdict, decide_supersede, parse_version
from tenure.core.lease import Liveness
from tenure.core.record import Holder, LeaseRecord, LeaseState, Unreadable
from tenure.core.timing import POLL_S
from tenure.core.values import replace
from tenure.protocol.supersede import request_stop


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
    code = s.exit_code(d, rec)
    if code not in (None, 0):
        problems.append(f"it exited {code} after leaving (a retirement MUST exit 0)")
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


def sigterm(s: Session, d: Started, rec: LeaseRecord) -> Check:
    if platform.WINDOWS:  # SIGTERM is TerminateProcess there: nothing could be graceful
        return Check("leaves_on_sigterm", True, "Windows has no graceful signal: see when asked")
    if signal_verified(rec.holder.ident, signal.SIGTERM) is not None:
        return Check("leaves_on_sigterm", False, f"pid {rec.holder.pid} is not ours to signal")
    return _left_cleanly(s, d, rec, "leaves_on_sigterm", "signal")


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
    code = s.exit_code(d, rec) if left else None
    if left and code not in (None, 0):
        leave = Check("leaves_on_lease_loss", False, f"it exited {code} (a retirement MUST exit 0)")
    elif left:
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
    elif (code := s.exit_code(d, rec)) not in (None, 0):
        leave = Check("leaves_on_root_removal", False, f"it exited {code} (MUST exit 0)")
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
