"""The checks while a daemon holds: it takes the lease and the lock, refuses a second copy,
renews, and keeps its token private. Each reads the root as any reader would."""

from __future__ import annotations

import contextlib
import json
import time

from tenure.adapters.files import atomic_write, locked
from tenure.adapters.http import health, request
from tenure.adapters.procinfo import (
    argv_and_environ,
    read_process,
)
from tenure.adapters.root import RootLayout, read_root_id
from tenure.adapters.waiting import wait_until
from tenure.conformance.report import Check
from tenure.conformance.session import Failed, Session, Started, private_file
from tenure.core.handover import parse_version
from tenure.core.identity import same_start
from tenure.core.record import LeaseRecord
from tenure.core.timing import POLL_S
from tenure.errors import LockTimeout

HTTP_UNAUTHORIZED = 401
CREATE_TIME_SLACK_S = 1.0  # psutil and btime + ticks agree far closer; an hour off is caught


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
    elif not same_start(rec.holder.ident, real.ident) or (
        # Both given, both MUST describe the same start (lease.md#record); ticks alone decide
        # for readers, so only the kit notices a create_time that is off.
        rec.holder.start_ticks is not None
        and abs(rec.holder.create_time - real.create_time) > CREATE_TIME_SLACK_S
    ):
        problems.append(
            f"holder start (create_time {rec.holder.create_time}, ticks "
            f"{rec.holder.start_ticks}) is not the process's ({real.create_time}, "
            f"{real.start_ticks})"
        )
    if rec.root_id is not None and rec.root_id != read_root_id(s.root):
        problems.append(f"root_id {rec.root_id!r} is not this root's {read_root_id(s.root)!r}")
    if opts.ports is not None and rec.ports not in (None, opts.ports):
        problems.append(f"ports {rec.ports}, expected {opts.ports}")
    # Its timing is the launcher's (control.md#conformance): TENURE_LEASE_TTL, TENURE_HEARTBEAT.
    if abs(rec.ttl_s - opts.ttl_s) > 1e-6:
        problems.append(f"ttl_s {rec.ttl_s:g}, not the {opts.ttl_s:g} of TENURE_LEASE_TTL")
    if rec.heartbeat_s is not None and abs(rec.heartbeat_s - opts.heartbeat_s) > 1e-6:
        problems.append(
            f"heartbeat_s {rec.heartbeat_s:g}, not the {opts.heartbeat_s:g} of TENURE_HEARTBEAT"
        )
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
    if code == 0:
        return Check(
            "refuses_second_copy",
            False,
            "the second copy exited 0 without the lease: a refused copy MUST exit non-zero "
            "(lease.md#acquire)",
        )
    return Check(
        "refuses_second_copy",
        True,
        f"the second copy exited with code {code}; the holder kept epoch {first.epoch}",
        time.monotonic() - t0,
    )


PLANTED = "x_conformance_planted"  # a key no release knows: every renewal MUST keep it


def _plant(s: Session) -> bool:
    """Add an unknown key to the record under its lock (versioning.md#unknown-keys)."""
    try:
        with locked(s.store.lock_path, 2.0):
            raw = s.store.record_path.read_bytes()
            doc = json.loads(raw)
            doc[PLANTED] = {"by": "the conformance kit"}
            atomic_write(s.store.record_path, (json.dumps(doc, sort_keys=True) + "\n").encode())
    except (OSError, ValueError, LockTimeout):
        return False
    return True


def renews(s: Session, rec: LeaseRecord) -> Check:
    planted = _plant(s)

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
    if each > 2 * s.opts.heartbeat_s + 0.1:
        return Check(
            "renews",
            False,
            f"renews every {each:.2f}s, not every {s.opts.heartbeat_s:g}s (TENURE_HEARTBEAT)",
            each,
        )
    if planted and not any(key == PLANTED for key, _value in cur.extra):
        return Check(
            "renews",
            False,
            f"a renewal dropped the key {PLANTED!r} it does not own: a writer MUST keep the "
            "keys it does not know (versioning.md#unknown-keys)",
            each,
        )
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


def serves_control_plane(s: Session, rec: LeaseRecord) -> Check:
    """A record that declares a control port (`holder.control`): `GET /api/health` answers the
    published health document as this holder, and `POST /api/retire` without the token is
    refused (401) — no other endpoint is required (control.md#endpoints)."""
    name = "serves_control_plane"
    if not rec.holder.control or rec.holder.port is None:
        return Check(name, True, "no control port declared (holder.control absent): none needed")
    from tenure.core.fields import Bad  # noqa: PLC0415
    from tenure.core.health import HEALTH  # noqa: PLC0415

    port = rec.holder.port
    doc = health(port)
    if doc is None:
        return Check(name, False, f"GET /api/health on port {port} gave no JSON object")
    try:
        HEALTH.check(doc, "")
    except Bad as exc:
        return Check(name, False, f"its health answer does not match health.schema.json: {exc}")
    said = (doc["pid"], doc["epoch"], doc["daemon_family"], doc["port"])
    wanted = (rec.holder.pid, rec.epoch, rec.family, port)
    if said != wanted:
        return Check(name, False, f"health says (pid, epoch, family, port) {said}, not {wanted}")
    if rec.root_id is not None and doc.get("root_id") not in (None, rec.root_id):
        return Check(name, False, f"health root_id {doc.get('root_id')!r} is not the record's")
    reply = request(port, "POST", "/api/retire", timeout=2.0)
    if reply is None or reply.status != HTTP_UNAUTHORIZED:
        got = "nothing" if reply is None else str(reply.status)
        return Check(name, False, f"POST /api/retire without a token answered {got}, not 401")
    return Check(name, True, f"health answers as holder on {port}; no token, no retire (401)")
