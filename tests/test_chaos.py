"""Chaos suite: contenders of one family under crashes, pauses, corruption and clock jumps.

In-process schedules drive real Governors against the real store (real files, real OS locks)
with an injected clock, step by step, from deterministic seeds: TENURE_CHAOS_SCHEDULES of them
(default 200). Process schedules (TENURE_CHAOS_PROCESS_SCHEDULES, default 6) do the same with
real processes, SIGKILL, SIGSTOP/SIGCONT, a crash between temp write and rename, and a reaper
pass over legacy stand-ins. Invariants are checked after every step.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psutil
import pytest

from tenure.adapters.reaper import reap
from tenure.adapters.root import ensure_root
from tenure.adapters.store import LeaseStore
from tenure.core.families import SYNC
from tenure.core.record import LeaseRecord, Unreadable
from tenure.core.timing import Timing
from tenure.errors import LeaseHeld, LeaseUnreadable, LockTimeout
from tenure.holder.governor import Governor, RetireReason
from tenure.hygiene.survey import survey
from tenure.legacy.simulated import spawn_legacy
from tenure.testing import ProcessRegistry
from tests.conftest import HERE, block, wait_for

BLOCK = block(__name__)

SCHEDULES = int(os.environ.get("TENURE_CHAOS_SCHEDULES", "200"))
PROCESS_SCHEDULES = int(os.environ.get("TENURE_CHAOS_PROCESS_SCHEDULES", "6"))
STEPS = 40
TTL, HB = 15.0, 5.0
# Filled for the terminal summary only; no test reads what another test wrote here.
REPORT: dict[str, int] = {
    "schedules": 0,
    "steps": 0,
    "violations": 0,
    "takeovers": 0,
    "process_schedules": 0,
}


class SimClock:
    """Shared monotonic time plus a wall clock that can jump."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.offset = 1_800_000_000.0

    def mono(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t + self.offset


@dataclass
class Contender:
    gov: Governor
    holding: bool = False
    paused: bool = False


@dataclass
class World:
    root: Path
    clock: SimClock
    rng: random.Random
    contenders: list[Contender] = field(default_factory=list)
    last_epoch: int = 0
    overlap_since: float | None = None
    takeovers: int = 0
    log: list[str] = field(default_factory=list)

    def new_contender(self) -> Contender:
        timing = Timing(ttl_s=TTL, heartbeat_s=HB, idle_s=10_000.0, drain_s=0.1)
        gov = Governor(
            self.root, "sync", "1.0", timing=timing, mono=self.clock.mono, wall=self.clock.wall
        )
        return Contender(gov)

    def retire(self, c: Contender, reason: RetireReason) -> None:
        c.gov.retire(reason)
        assert c.gov.wait_retired(5) is not None, "retirement did not finish"
        c.holding = False
        # A retired holder's process exits; a later start is a new process (a new Governor).
        c.gov = self.new_contender().gov

    def beat(self, c: Contender) -> None:
        reason = c.gov.heartbeat().reason
        if reason is not None:
            self.retire(c, reason)


def step(world: World) -> None:
    rng, clock = world.rng, world.clock
    action = rng.choices(
        [
            "advance",
            "acquire",
            "crash",
            "pause",
            "resume",
            "jump",
            "corrupt",
            "stray_temp",
            "remove_root",
        ],
        weights=[30, 25, 6, 6, 8, 5, 4, 3, 2],
    )[0]
    c = rng.choice(world.contenders)
    world.log.append(f"{action} {world.contenders.index(c)}")
    if action == "advance":
        clock.t += rng.uniform(0, HB)
        for other in world.contenders:
            if other.holding and not other.paused:
                world.beat(other)
    elif action == "acquire" and not c.holding and not c.paused:
        ensure_root(world.root)  # what a daemon start does first
        before = LeaseStore(world.root, "sync").read()
        live_holder = isinstance(before, LeaseRecord) and any(
            o.holding and not o.paused and o.gov.holding() and o.gov.me.nonce == before.holder.nonce
            for o in world.contenders
        )
        try:
            rec = c.gov.acquire(wait_s=0)
        except (LeaseHeld, LeaseUnreadable, LockTimeout):
            c.gov = world.new_contender().gov  # a refused start exits; the next is a new one
            return
        assert not live_holder, "a running holder that renews on time lost its lease"
        assert rec.epoch > world.last_epoch, f"epoch {rec.epoch} after {world.last_epoch}"
        world.last_epoch = rec.epoch
        world.takeovers += 1
        c.holding = True
    elif action == "crash":
        # SIGKILL: no release, no tombstone; a new process takes its slot later.
        world.contenders[world.contenders.index(c)] = world.new_contender()
    elif action == "pause" and c.holding:
        c.paused = True
    elif action == "resume" and c.paused:
        c.paused = False
        world.beat(c)
    elif action == "jump":
        clock.offset += rng.choice([-3600.0, -60.0, 60.0, 3600.0])
    elif action == "corrupt":
        path = LeaseStore(world.root, "sync").record_path
        if path.parent.is_dir():
            kind = rng.choice(["truncate", "garbage", "symlink", "empty"])
            data = path.read_bytes() if path.exists() and not path.is_symlink() else b"{}"
            path.unlink(missing_ok=True)
            if kind == "symlink":
                path.symlink_to(world.root.parent / "elsewhere.json")
            else:
                path.write_bytes(
                    {"truncate": data[: len(data) // 2], "garbage": os.urandom(40), "empty": b""}[
                        kind
                    ]
                )
    elif action == "stray_temp":
        # What a writer that crashed between the temp write and the rename leaves behind.
        leases = world.root / "leases"
        if leases.is_dir():
            (leases / f".sync.json.{world.rng.getrandbits(24):06x}.tmp").write_bytes(b'{"half": ')
    elif action == "remove_root":
        shutil.rmtree(world.root, ignore_errors=True)
        world.last_epoch = 0  # a new root starts a new epoch sequence (lease.md#fencing)


def check(world: World) -> None:
    result = LeaseStore(world.root, "sync").read()
    assert result is None or isinstance(result, LeaseRecord | Unreadable)
    holders = [c for c in world.contenders if not c.paused and c.holding and c.gov.holding()]
    if len(holders) > 1:
        if world.overlap_since is None:
            world.overlap_since = world.clock.t
        assert world.clock.t - world.overlap_since <= HB, "two holders for longer than a heartbeat"
    else:
        world.overlap_since = None


BATCHES = 4


@pytest.mark.parametrize("batch", range(BATCHES))
def test_in_process_chaos_schedules(tmp_path: Path, batch: int) -> None:
    """Deterministic schedules of 2-4 contenders; invariants hold after every step."""
    seeds = range(batch, SCHEDULES, BATCHES)
    takeovers = 0
    for seed in seeds:
        rng = random.Random(seed)
        root = tmp_path / f"s{seed}" / "root"
        ensure_root(root)
        world = World(root=root, clock=SimClock(), rng=rng)
        world.contenders = [world.new_contender() for _ in range(rng.randint(2, 4))]
        try:
            for _ in range(STEPS):
                step(world)
                check(world)
                REPORT["steps"] += 1
        except AssertionError as exc:
            REPORT["violations"] += 1
            raise AssertionError(f"seed {seed}: {exc}; steps: {world.log}") from exc
        finally:
            for c in world.contenders:
                if c.holding:
                    c.gov.retire(RetireReason.SHUTDOWN, drain=False)
                    c.gov.wait_retired(5)
        REPORT["schedules"] += 1
        takeovers += world.takeovers
    REPORT["takeovers"] += takeovers
    # The schedules really exercised takeovers, not just idle steps.
    assert takeovers > len(seeds)


# --- real processes --------------------------------------------------------------------------

FAST = {"TENURE_LEASE_TTL": "1.5", "TENURE_HEARTBEAT": "0.3"}


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    events: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False

    def poll_events(self) -> None:
        assert self.popen.stdout is not None
        os.set_blocking(self.popen.stdout.fileno(), False)
        data = self.popen.stdout.read() or b""
        self.events += [json.loads(x) for x in data.splitlines() if x.strip()]

    def believes_holder(self) -> bool:
        kinds = [e["event"] for e in self.events]
        return (
            "holding" in kinds
            and "retired" not in kinds
            and self.popen.poll() is None
            and not self.stopped
        )


def _spoke_or_exited(proc: Proc) -> bool:
    proc.poll_events()
    return bool(proc.events) or proc.popen.poll() is not None


def _expired_or_not_held_by(root: Path, pid: int) -> bool:
    """The record no longer names `pid` as a fresh holder (its TTL passed by its own terms)."""
    rec = LeaseStore(root, "sync").read()
    if not isinstance(rec, LeaseRecord) or rec.holder.pid != pid:
        return True
    return time.time() - rec.renewed_at > rec.ttl_s


def test_process_chaos_schedules(
    tmp_path: Path, proc_registry: ProcessRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real holders killed, stopped, crashed mid-write; the record never breaks, epochs rise."""
    journal = tmp_path / "signals.jsonl"
    monkeypatch.setenv("TENURE_SIGNAL_JOURNAL", str(journal))
    monkeypatch.setenv("TENURE_SYNC_PORTS", BLOCK.sync_env)
    verified: dict[int, float] = {}  # pid → create_time of every stand-in this test made
    done = 0
    for seed in range(PROCESS_SCHEDULES):
        process_schedule(seed, tmp_path, proc_registry, monkeypatch, verified, journal)
        proc_registry.stop_all()
        done += 1
    REPORT["process_schedules"] += done
    assert done == PROCESS_SCHEDULES


def process_schedule(
    seed: int,
    tmp_path: Path,
    proc_registry: ProcessRegistry,
    monkeypatch: pytest.MonkeyPatch,
    verified: dict[int, float],
    journal: Path,
) -> None:
    """One seeded schedule of ten actions against real holder processes."""
    rng = random.Random(10_000 + seed)
    root = ensure_root(tmp_path / f"p{seed}" / "root")
    legacy = tmp_path / f"p{seed}" / "legacy"
    legacy.mkdir()
    monkeypatch.setenv("SPEC_KITTY_HOME", str(legacy))
    procs: list[Proc] = []
    epochs: list[int] = []

    def poll_epochs() -> None:
        # Acquisitions seen in one poll are ordered by epoch; duplicates still fail below.
        fresh = []
        for p in procs:
            p.poll_events()
            for e in p.events:
                if e["event"] == "holding" and e.get("_seen") is None:
                    e["_seen"] = True
                    fresh.append(e["epoch"])
        epochs.extend(sorted(fresh))

    for _ in range(10):
        action = rng.choice(
            [
                "start",
                "start",
                "start_faulty",
                "kill",
                "stop",
                "corrupt",
                "remove_root",
                "legacy_reap",
            ]
        )
        live = [p for p in procs if p.popen.poll() is None]
        if action in ("start", "start_faulty"):
            env = {**os.environ, **FAST}
            if action == "start_faulty":
                env["TENURE_FAULT_CRASH_BEFORE_RENAME"] = "1"
            ensure_root(root)
            argv = [sys.executable, str(HERE / "holder.py"), str(root), "sync", "1.0", "3"]
            new = Proc(proc_registry.spawn(argv, stdout=subprocess.PIPE, env=env))
            procs.append(new)
            # Its first word (holding / refused) or its exit, whichever comes first.
            wait_for(
                partial(_spoke_or_exited, new), what="the new contender to hold, refuse or exit"
            )
        elif action == "kill" and live:
            victim = rng.choice(live)
            victim.popen.kill()
            victim.popen.wait(30)
        elif action == "stop" and live:
            victim = rng.choice(live)
            victim.popen.send_signal(signal.SIGSTOP)
            victim.stopped = True
            # Paused past its own lease's TTL, whatever the machine's speed.
            wait_for(
                partial(_expired_or_not_held_by, root, victim.popen.pid),
                what="the paused holder's lease to pass its TTL",
            )
            victim.popen.send_signal(signal.SIGCONT)
            victim.stopped = False
        elif action == "corrupt":
            path = LeaseStore(root, "sync").record_path
            if path.parent.is_dir():
                path.unlink(missing_ok=True)
                path.write_bytes(
                    rng.choice([b"", b"\x00garbage", b'{"protocol": "tenure/1", "epoch": "x"}'])
                )
        elif action == "remove_root":
            shutil.rmtree(root, ignore_errors=True)
            poll_epochs()
            epochs.append(-1)  # marks a new epoch sequence
        elif action == "legacy_reap":
            port = rng.randint(*BLOCK.sync)
            stand_in, _ = spawn_legacy(proc_registry, port, legacy, rng.choice(["3.2.2", "3.2.3"]))
            verified[stand_in.pid] = psutil.Process(stand_in.pid).create_time()
            found = survey(SYNC, root, legacy)
            reap(found.records, SYNC, root)
        poll_epochs()
        current = LeaseStore(root, "sync").read()
        assert current is None or isinstance(current, LeaseRecord | Unreadable)

    def at_most_one_believer() -> bool:
        poll_epochs()
        return sum(p.believes_holder() for p in procs) <= 1

    # A resumed stale holder learns at its next heartbeat that it lost; two believers
    # that never converge are the bug this bound catches.
    wait_for(at_most_one_believer, what="at most one process believing it holds")
    seq: list[int] = []
    for epoch in epochs:
        if epoch == -1:
            seq = []
            continue
        assert not seq or epoch > seq[-1], f"seed {seed}: epochs {epochs}"
        seq.append(epoch)
    entries = [json.loads(x) for x in journal.read_text().splitlines()] if journal.exists() else []
    for e in entries:
        assert e["pid"] in verified, f"signal to unverified pid {e}"
        assert abs(e["create_time"] - verified[e["pid"]]) < 0.05
