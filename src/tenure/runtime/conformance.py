"""The conformance kit (driver): does a daemon command speak `tenure/1`? Real processes only.

`run_conformance(["./mydaemon", "--port", "{port}"])` starts the command several times, each in
a fresh private root, with what `tenure.ensure` would pass (TENURE_ROOT, TENURE_FAMILY,
TENURE_VERSION, TENURE_PORT, TENURE_PORTS, short TENURE_LEASE_TTL / TENURE_HEARTBEAT, idleness
off) and `{port}`, `{root}`, `{family}`, `{version}` substituted in the argv. It then checks, by
reading the root as any reader would, that the daemon takes the lease, refuses a second copy,
renews, keeps its token private, and leaves — releasing and recording a tombstone — on SIGTERM,
on supersession and on lease loss, and leaves without writing on root removal; and that it never
writes the record after losing its epoch. spec: docs/protocol/control.md#conformance

The kit stops everything it starts, by pid and verified identity (it registers them with the
test kit's signal guard when one is on), and touches nothing outside its own temporary roots.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from tenure.adapters import config, guard
from tenure.adapters.http import health
from tenure.adapters.procinfo import check_identity, liveness, own_identity
from tenure.adapters.root import RootLayout, ensure_root, read_root_id
from tenure.adapters.stopping import gone_within, stop_verified
from tenure.adapters.store import LeaseStore, read_record_strict
from tenure.adapters.tombstones import read_tombstones
from tenure.adapters.waiting import wait_until
from tenure.core.identity import same_create_time
from tenure.core.lease import Liveness, SupersedeVerdict, decide_supersede, parse_version
from tenure.core.notify import Notify, quiet
from tenure.core.record import Holder, LeaseRecord, LeaseState, Unreadable
from tenure.errors import TenureError
from tenure.runtime.ensure import free_port

POLL_S = 0.02
CHECKS = (
    "takes_lease",
    "refuses_second_copy",
    "renews",
    "keeps_token_private",
    "leaves_on_sigterm",
    "leaves_on_supersession",
    "leaves_on_lease_loss",
    "no_write_after_losing_epoch",
    "leaves_on_root_removal",
    "no_write_into_a_new_root",
)


@dataclass(frozen=True, slots=True)
class Options:
    """What the kit tells the daemon, and how long it waits for it."""

    family: str = "conformance"
    version: str = "1.0"
    ports: tuple[int, int] | None = None
    ttl_s: float = 2.0
    heartbeat_s: float = 0.25
    start_timeout_s: float = 30.0  # spawn → holding, generous for a loaded machine
    leave_grace_s: float = 5.0  # on top of one TTL, for a process to notice and exit
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict: `seconds` is the measured time where there is one (leaving, renewing)."""

    name: str
    passed: bool
    detail: str
    seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Every check, in `CHECKS` order."""

    command: tuple[str, ...]
    family: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    def check(self, name: str) -> Check:
        """The verdict named `name`."""
        return next(c for c in self.checks if c.name == name)

    def explain(self) -> str:
        """One line per check, failures first: what a failing test or the CLI prints."""
        lines = [f"tenure/1 conformance of: {' '.join(self.command)}"]
        for c in sorted(self.checks, key=lambda c: c.passed):
            took = "" if c.seconds is None else f" ({c.seconds:.2f}s)"
            lines.append(f"  {'PASS' if c.passed else 'FAIL'} {c.name}{took}: {c.detail}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "command": list(self.command),
            "family": self.family,
            "passed": self.passed,
            "checks": [c.to_json() for c in self.checks],
        }


class Failed(Exception):
    """A check failed; the message says what was seen."""


@dataclass
class Daemon:
    """One started copy of the command, and the holder identity it took the lease with."""

    proc: subprocess.Popen[bytes]
    holder: Holder | None = None


class Session:
    """One fresh root, and the daemons started in it."""

    def __init__(self, command: Sequence[str], opts: Options, workdir: Path, tag: str) -> None:
        self.command = list(command)
        self.opts = opts
        self.dir = workdir / tag
        self.dir.mkdir(mode=0o700)
        self.root = ensure_root(self.dir / "root")
        self.store = LeaseStore(self.root, opts.family)
        self.output = self.dir / "output.log"
        self.started: list[Daemon] = []

    def spawn(self) -> Daemon:
        """Start one copy with the port, root, family and version it should use."""
        opts = self.opts
        port = free_port(opts.ports)
        values = {
            "{port}": "" if port is None else str(port),
            "{root}": str(self.root),
            "{family}": opts.family,
            "{version}": opts.version,
        }
        argv = [_substitute(arg, values) for arg in self.command]
        env = {
            **os.environ,
            **opts.env,
            config.ROOT_ENV: str(self.root),
            config.FAMILY_ENV: opts.family,
            "TENURE_VERSION": opts.version,
            "TENURE_LEASE_TTL": f"{opts.ttl_s:g}",
            "TENURE_HEARTBEAT": f"{opts.heartbeat_s:g}",
            "TENURE_IDLE_SECONDS": "0",
        }
        if port is not None and opts.ports is not None:
            env[config.PORT_ENV] = str(port)
            env[config.PORTS_ENV] = f"{opts.ports[0]}-{opts.ports[1]}"
        with open(self.output, "ab") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the kit is not the daemon's
            )
        with contextlib.suppress(psutil.Error):
            guard.allow(proc.pid, psutil.Process(proc.pid).create_time())
        daemon = Daemon(proc)
        self.started.append(daemon)
        return daemon

    def record(self) -> LeaseRecord | None:
        """The record as a strict reader sees it, or None when absent or unreadable."""
        rec = read_record_strict(self.store.record_path)
        return rec if isinstance(rec, LeaseRecord) else None

    def holding(self, daemon: Daemon) -> LeaseRecord:
        """Wait until `daemon` (or a process it started) holds the lease and renewed it once
        (by then a `tenure run` wrapper has named its child in the record)."""
        first: list[LeaseRecord] = []

        def holds() -> LeaseRecord | None:
            rec = self.record()
            if rec is not None and rec.state is LeaseState.HELD and self._is_ours(daemon, rec):
                if not first:
                    first.append(rec)
                if rec.seq > first[0].seq and rec.epoch == first[0].epoch:
                    return rec
            if daemon.proc.poll() is not None:
                raise Failed(
                    f"exited with code {daemon.proc.returncode} before holding the lease; "
                    f"its output: {self.tail()}"
                )
            return None

        rec = wait_until(holds, self.opts.start_timeout_s, POLL_S)
        if rec is None:
            what = "renewed its lease" if first else "held the lease"
            raise Failed(
                f"never {what} within {self.opts.start_timeout_s:.0f}s; "
                f"record: {self._shown()}; its output: {self.tail()}"
            )
        daemon.holder = rec.holder
        return rec

    def _is_ours(self, daemon: Daemon, rec: LeaseRecord) -> bool:
        pid = rec.holder.pid
        if pid == daemon.proc.pid:
            return True
        with contextlib.suppress(psutil.Error):
            # A launcher script that forks instead of exec-ing: its descendant holds.
            kids = psutil.Process(daemon.proc.pid).children(recursive=True)
            return any(k.pid == pid for k in kids)
        return False

    def _shown(self) -> str:
        rec = read_record_strict(self.store.record_path)
        if rec is None:
            return "absent"
        if not isinstance(rec, LeaseRecord):
            return f"unreadable ({rec.reason})"
        asked = "" if rec.superseded_by is None else f", superseded_by {rec.superseded_by.version}"
        return (
            f"{rec.state.value} by pid {rec.holder.pid} at epoch {rec.epoch}, seq {rec.seq}{asked}"
        )

    def tail(self, lines: int = 6) -> str:
        """The last lines the daemons printed, on one line."""
        try:
            text = self.output.read_bytes()[-4096:].decode("utf-8", "replace")
        except OSError:
            return "(none)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(none)"

    def gone(self, daemon: Daemon, timeout: float) -> float | None:
        """Seconds until the holder process and any governed child are gone, or None."""
        assert daemon.holder is not None
        t0 = time.monotonic()
        h = daemon.holder
        if not gone_within(h.pid, h.create_time, timeout):
            return None
        return time.monotonic() - t0

    def leave_bound(self, rec: LeaseRecord) -> float:
        """How long a holder may take to notice and leave: one TTL plus the grace."""
        return rec.ttl_s + self.opts.leave_grace_s

    def close(self) -> None:
        """Stop every copy still running, by verified identity, then reap them."""
        for daemon in self.started:
            if daemon.proc.poll() is None:
                with contextlib.suppress(TenureError, psutil.Error):
                    ctime = psutil.Process(daemon.proc.pid).create_time()
                    stop_verified(daemon.proc.pid, ctime, "conformance daemon", wait_s=5.0)
            h = daemon.holder
            if h is not None and h.pid != daemon.proc.pid:
                with contextlib.suppress(TenureError):
                    stop_verified(h.pid, h.create_time, "conformance daemon", wait_s=5.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.proc.wait(10)


def _substitute(arg: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        arg = arg.replace(key, value)
    return arg


def _private(path: Path) -> bool:
    try:
        return os.lstat(path).st_mode & 0o077 == 0
    except FileNotFoundError:
        return True


# --- the checks --------------------------------------------------------------------------------


def _takes_lease(s: Session, d: Daemon, rec: LeaseRecord, t0: float) -> Check:
    opts, problems = s.opts, []
    if rec.family != opts.family:
        problems.append(f"family {rec.family!r}, expected {opts.family!r}")
    if rec.holder.version != opts.version:
        problems.append(f"version {rec.holder.version!r}, expected {opts.version!r}")
    if rec.epoch < 1:
        problems.append(f"epoch {rec.epoch} (the first grant is 1)")
    if s.store.epoch_floor() < rec.epoch:
        problems.append(f"{s.store.floor_path.name} holds {s.store.epoch_floor()} < {rec.epoch}")
    try:
        real = psutil.Process(rec.holder.pid).create_time()
        if not same_create_time(real, rec.holder.create_time):
            problems.append(f"holder.create_time {rec.holder.create_time} but the process {real}")
    except psutil.Error:
        problems.append(f"holder pid {rec.holder.pid} is not running")
    if rec.root_id is not None and rec.root_id != read_root_id(s.root):
        problems.append(f"root_id {rec.root_id!r} is not this root's {read_root_id(s.root)!r}")
    if opts.ports is not None and rec.ports not in (None, opts.ports):
        problems.append(f"ports {rec.ports}, expected {opts.ports}")
    layout = RootLayout(s.root)
    for path in (s.store.record_path, s.store.lock_path, s.store.floor_path, layout.tombstones):
        if not _private(path):
            problems.append(f"{path.name} is readable by others (files MUST be 0600)")
    if problems:
        return Check("takes_lease", False, "; ".join(problems))
    notes = f"epoch {rec.epoch}, pid {rec.holder.pid}"
    if rec.root_id is None:
        notes += "; no root_id in the record (optional)"
    return Check("takes_lease", True, notes, time.monotonic() - t0)


def _refuses_second_copy(s: Session, first: LeaseRecord) -> Check:
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


def _renews(s: Session, rec: LeaseRecord) -> Check:

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


def _keeps_token_private(s: Session, rec: LeaseRecord) -> Check:
    layout = RootLayout(s.root)
    tokens = sorted(layout.tokens.glob(f"{s.opts.family}.*.token"))
    if not tokens:
        return Check("keeps_token_private", True, "no control token in the root: nothing to leak")
    problems = []
    if not _private(layout.tokens):
        problems.append("tokens/ is open to others (MUST be 0700)")
    seen: list[tuple[str, bytes]] = [("the record", s.store.read_raw() or b"")]
    with contextlib.suppress(OSError):
        seen.append(("its output", s.output.read_bytes()))
    for log in layout.logs.glob("*"):
        with contextlib.suppress(OSError):
            seen.append((f"logs/{log.name}", log.read_bytes()))
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(rec.holder.pid)
        seen.append(("its argv", "\0".join(proc.cmdline()).encode()))
        seen.append(("its environment", repr(proc.environ()).encode()))
    if rec.holder.port is not None:
        seen.append(("its health answer", repr(health(rec.holder.port)).encode()))
    for path in tokens:
        if not _private(path):
            problems.append(f"{path.name} is readable by others (MUST be 0600)")
        secret = path.read_bytes().strip()
        problems += [f"the token appears in {where}" for where, text in seen if secret in text]
    if problems:
        return Check("keeps_token_private", False, "; ".join(problems))
    places = ", ".join(where for where, _ in seen)
    return Check("keeps_token_private", True, f"0600 token, absent from {places}")


def _left_cleanly(s: Session, d: Daemon, rec: LeaseRecord, name: str, reason: str) -> Check:
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
    child = cur.child if cur is not None else rec.child
    if child is not None and not gone_within(child.pid, child.create_time, s.opts.leave_grace_s):
        problems.append(f"its governed child pid {child.pid} is still running")
    if problems:
        return Check(name, False, "; ".join(problems), took)
    said = f", tombstone {marks[-1]['reason']!r}" if marks else ""
    return Check(name, True, f"left in {took:.2f}s, released{said}", took)


def _and_child_gone(check: Check, rec: LeaseRecord, grace_s: float) -> Check:
    """A holder that left must not leave its governed child (`tenure run`) behind."""
    child = rec.child
    if not check.passed or child is None or gone_within(child.pid, child.create_time, grace_s):
        return check
    return replace(check, passed=False, detail=f"its governed child pid {child.pid} still runs")


def _sigterm(s: Session, d: Daemon, rec: LeaseRecord) -> Check:
    if check_identity(rec.holder.pid, rec.holder.create_time, None) is not None:
        return Check("leaves_on_sigterm", False, f"pid {rec.holder.pid} is not ours to signal")
    os.kill(rec.holder.pid, signal.SIGTERM)
    return _left_cleanly(s, d, rec, "leaves_on_sigterm", "")


def _newer(version: str) -> str | None:
    parsed = parse_version(version)
    return None if parsed is None else str(parsed.major + 1)


def _supersession(s: Session, d: Daemon, rec: LeaseRecord) -> Check:
    newer = _newer(s.opts.version)
    if newer is None:
        return Check("leaves_on_supersession", False, f"{s.opts.version!r} is not PEP 440")

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


def _steal(s: Session, rec: LeaseRecord) -> bytes:
    """Take the lease from under the holder, as a takeover by another holder would."""
    pid, ctime = own_identity()
    thief = Holder(pid, ctime, "c0ffee" * 2 + "kit0", rec.holder.version, None, time.time())

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


def _lease_loss(s: Session, d: Daemon, rec: LeaseRecord) -> tuple[Check, Check]:
    stolen = _steal(s, rec)
    t0 = time.monotonic()
    bound = s.leave_bound(rec)
    wrote: list[bytes] = []

    def gone() -> bool:
        raw = s.store.read_raw() or b""
        if raw != stolen and not wrote:
            wrote.append(raw)
        return liveness(rec.holder.pid, rec.holder.create_time) is not Liveness.ALIVE

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
    leave = _and_child_gone(leave, rec, s.opts.leave_grace_s)
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


def _root_removal(s: Session, d: Daemon, rec: LeaseRecord) -> tuple[Check, Check]:
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
    leave = _and_child_gone(leave, rec, s.opts.leave_grace_s)
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


# --- driving -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _session(command: Sequence[str], opts: Options, workdir: Path, tag: str) -> Iterator[Session]:
    s = Session(command, opts, workdir, tag)
    try:
        yield s
    finally:
        s.close()


def _not_run(names: Sequence[str], why: str) -> list[Check]:
    return [Check(n, False, f"not run: {why}") for n in names]


def run_conformance(
    command: Sequence[str], opts: Options | None = None, notify: Notify = quiet
) -> Report:
    """Run every check against `command`; see the module doc."""
    opts = opts or Options()
    if not command:
        raise ValueError("no command to check")
    checks: list[Check] = []
    workdir = Path(tempfile.mkdtemp(prefix="tenure-conformance-"))
    try:
        for names, body in _PLAN:
            notify(f"checking {', '.join(names)}")
            with _session(command, opts, workdir, names[0]) as s:
                try:
                    d = s.spawn()
                    t0 = time.monotonic()
                    rec = s.holding(d)
                    found = body(s, d, rec, t0)
                except Failed as exc:
                    found = _not_run(names, str(exc))
                    if names[0] == "takes_lease":
                        found[0] = Check("takes_lease", False, str(exc))
            checks.extend(found)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    order = {name: i for i, name in enumerate(CHECKS)}
    return Report(tuple(command), opts.family, tuple(sorted(checks, key=lambda c: order[c.name])))


Body = Callable[[Session, Daemon, LeaseRecord, float], list[Check]]


def _first_session(s: Session, d: Daemon, rec: LeaseRecord, t0: float) -> list[Check]:
    taken = _takes_lease(s, d, rec, t0)
    second = _refuses_second_copy(s, rec)
    renewed = _renews(s, rec)
    current = s.record() or rec
    private = _keeps_token_private(s, current)
    if liveness(rec.holder.pid, rec.holder.create_time) is not Liveness.ALIVE:
        died = Check("leaves_on_sigterm", False, "it was gone before SIGTERM: it died by itself")
        return [taken, second, renewed, private, died]
    return [taken, second, renewed, private, _sigterm(s, d, current)]


_PLAN: tuple[tuple[tuple[str, ...], Body], ...] = (
    (CHECKS[:5], _first_session),
    (("leaves_on_supersession",), lambda s, d, rec, _t: [_supersession(s, d, rec)]),
    (CHECKS[6:8], lambda s, d, rec, _t: list(_lease_loss(s, d, rec))),
    (CHECKS[8:10], lambda s, d, rec, _t: list(_root_removal(s, d, rec))),
)
