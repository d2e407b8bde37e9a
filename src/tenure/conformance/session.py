"""One fresh root and the copies of the daemon started in it (the kit's adapter work)."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from tenure.adapters import config, guard
from tenure.adapters.location import here
from tenure.adapters.procinfo import descends_from, read_process
from tenure.adapters.root import ensure_root
from tenure.adapters.spawn import spawn_with_output
from tenure.adapters.stopping import exited_within, gone_within, stop_own_child, stop_verified
from tenure.adapters.store import LeaseStore, read_record_strict
from tenure.adapters.tree import COOKIE_ENV, Tree, inherit_cookie, stop_tree
from tenure.adapters.waiting import wait_until
from tenure.core.hints import TYPE_CHECKING
from tenure.core.identity import Location
from tenure.core.record import Holder, LeaseRecord, LeaseState, Unreadable
from tenure.core.timing import POLL_S, SCAN_POLL_S, TREE_STOP
from tenure.core.values import field, frozen, mutable, replace
from tenure.errors import ConfigError, TenureError
from tenure.requester.ensure import free_port

if TYPE_CHECKING:
    import subprocess

DEFAULT_VERSION = "1.0"


@frozen
class Options:
    """What the kit tells the daemon, and how long it waits for it."""

    family: str = "conformance"
    version: str | None = None  # None: whatever PEP 440 version the daemon records
    ports: tuple[int, int] | None = None
    ttl_s: float = 2.0
    heartbeat_s: float = 0.25
    start_timeout_s: float = 30.0  # spawn → holding, generous for a loaded machine
    leave_grace_s: float = 5.0  # on top of one TTL, for a process to notice and exit
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path | None = None  # where the temporary roots go (default: the temp dir)

    @property
    def started_as(self) -> str:
        """The version passed to the daemon (`{version}`, TENURE_VERSION)."""
        return self.version or DEFAULT_VERSION


class Failed(Exception):
    """A check failed; the message says what was seen."""


@mutable
class Started:
    """One started copy of the command, and the holder identity it took the lease with."""

    proc: subprocess.Popen[bytes]
    holder: Holder | None = None


class Session:
    """One fresh root, and the daemons started in it."""

    def __init__(self, command: Sequence[str], opts: Options, workdir: Path, tag: str) -> None:
        self.command = list(command)
        self.opts = opts
        self.dir = workdir / tag
        # Every process the daemon starts inherits this cookie: the kit finds, reports and
        # ends what outlives the daemon (control.md#conformance).
        self.tree = Tree(secrets.token_hex(8), None, None)
        self.left_behind: list[str] = []
        self.dir.mkdir(mode=0o700)
        self.root = ensure_root(self.dir / "root")
        self.store = LeaseStore(self.root, opts.family)
        self.output = self.dir / "output.log"
        self.started: list[Started] = []

    def spawn(self) -> Started:
        """Start one copy with the port, root, family and version it should use."""
        opts = self.opts
        port = free_port(opts.ports)
        values = {
            "{port}": "" if port is None else str(port),
            "{root}": str(self.root),
            "{family}": opts.family,
            "{version}": opts.started_as,
        }
        argv = [_substitute(arg, values) for arg in self.command]
        # What a launcher passes comes from the kit alone, never from the caller's environment.
        inherited = {
            k: v
            for k, v in os.environ.items()
            if k not in (config.PORT_ENV, config.PORTS_ENV, config.WAIT_ENV)
        }
        env = {
            **inherited,
            **opts.env,
            config.ROOT_ENV: str(self.root),
            config.FAMILY_ENV: opts.family,
            "TENURE_VERSION": opts.started_as,
            "TENURE_LEASE_TTL": f"{opts.ttl_s:g}",
            "TENURE_HEARTBEAT": f"{opts.heartbeat_s:g}",
            "TENURE_IDLE_SECONDS": "0",
            COOKIE_ENV: inherit_cookie(os.environ.get(COOKIE_ENV), self.tree.cookie),
        }
        if port is not None and opts.ports is not None:
            env[config.PORT_ENV] = str(port)
            env[config.PORTS_ENV] = f"{opts.ports[0]}-{opts.ports[1]}"
        try:
            proc = spawn_with_output(argv, env, self.output)
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            # The command itself cannot be run: the caller's mistake (a usage error),
            # unlike a full disk or no descriptors, which are the kit's own trouble.
            raise ConfigError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
        facts = read_process(proc.pid)
        if facts is not None:
            guard.allow(facts.ident)
            if self.tree.since_ticks is None:
                self.tree = replace(self.tree, since_ticks=facts.start_ticks)
        daemon = Started(proc)
        self.started.append(daemon)
        return daemon

    def record(self) -> LeaseRecord | None:
        """The record as a strict reader sees it, or None when absent or unreadable."""
        rec = read_record_strict(self.store.record_path)
        return rec if isinstance(rec, LeaseRecord) else None

    def holding(self, daemon: Started) -> LeaseRecord:
        """Wait until `daemon` (or a process it started) holds the lease and renewed it once
        (by then a `tenure run` wrapper has named its child in the record)."""
        first: list[LeaseRecord] = []

        def holds() -> LeaseRecord | None:
            found = read_record_strict(self.store.record_path)
            if isinstance(found, Unreadable):
                # Writes are atomic renames: what is there is what the daemon wrote.
                raise Failed(f"its record is unreadable: {found.reason}; its output: {self.tail()}")
            rec = found
            if rec is not None and rec.state is LeaseState.HELD and self._is_ours(daemon, rec):
                why = foreign_because(rec.holder.where, here())
                if why is not None:
                    raise Failed(f"holder judged foreign (lease.md#foreign): {why}")
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

    def _is_ours(self, daemon: Started, rec: LeaseRecord) -> bool:
        pid = rec.holder.pid
        # A launcher script that forks instead of exec-ing: its descendant holds.
        return pid == daemon.proc.pid or descends_from(pid, daemon.proc.pid)

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

    def gone(self, daemon: Started, timeout: float) -> float | None:
        """Seconds until the holder process is gone (within `timeout`), or None."""
        assert daemon.holder is not None
        t0 = time.monotonic()
        h = daemon.holder
        if not gone_within(h.ident, timeout):
            return None
        return time.monotonic() - t0

    def exit_code(self, daemon: Started, rec: LeaseRecord) -> int | None:
        """The holder's exit code once it left, when the holder is the process the kit
        started (a launcher script's descendant's code is not the kit's to see)."""
        if rec.holder.pid != daemon.proc.pid:
            return None
        if not exited_within(daemon.proc, self.opts.leave_grace_s):
            return None
        return daemon.proc.returncode

    def leave_bound(self, rec: LeaseRecord) -> float:
        """How long a holder may take to notice and leave: one TTL plus the grace."""
        return rec.ttl_s + self.opts.leave_grace_s

    def close(self) -> None:
        """Stop every copy still running, by verified identity, then reap them; then end the
        rest of the tree, noting what outlived daemons that had all left by themselves."""
        left = bool(self.started) and all(d.proc.poll() is not None for d in self.started)
        self._stop_started()
        if left:
            wait_until(lambda: not self.tree.members(), 2.0, SCAN_POLL_S)
            self.left_behind = [_described(i.pid) for i in self.tree.members()]
        stop_tree(self.tree, None, TREE_STOP)

    def _stop_started(self) -> None:
        for daemon in self.started:
            # Our own unreaped child: stopped through its Popen, never refused by identity.
            stop_own_child(daemon.proc, TREE_STOP)
            h = daemon.holder
            if h is not None and h.pid != daemon.proc.pid:
                with contextlib.suppress(TenureError):
                    stop_verified(h.ident, "conformance daemon", policy=TREE_STOP)
            exited_within(daemon.proc, 10)


def foreign_because(theirs: Location | None, mine: Location | None) -> str | None:
    """Why a holder recording `theirs` would be judged to live elsewhere than this reader
    (each field that differs, with both values), or None when it lives here."""
    if theirs is None or mine is None or theirs.same_place(mine):
        return None
    said = []
    for name in ("boot_id", "pid_ns", "time_ns"):
        a, b = getattr(theirs, name), getattr(mine, name)
        if a != b:
            said.append(f"where.{name} {a!r} is not this one's {b!r}")
    return "; ".join(said)


def _described(pid: int) -> str:
    facts = read_process(pid)
    argv = " ".join(facts.cmdline) if facts is not None else "?"
    return f"pid {pid} ({argv[:120]})"


def _substitute(arg: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        arg = arg.replace(key, value)
    return arg


def private_file(path: Path) -> bool:
    try:
        return os.lstat(path).st_mode & 0o077 == 0
    except FileNotFoundError:
        return True
