"""Stateful model: 2-4 contenders racing for one lease under crashes, pauses and clock jumps,
each contender with a wall clock of its own and some of them in another pid namespace.

The model drives only the pure decisions (tenure.core.lease) against a simulated store, shared
monotonic time and a jumpable wall clock. Writes happen atomically, as under the real lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tenure.core.handover import decide_release
from tenure.core.lease import (
    TAKES,
    Liveness,
    Observation,
    RenewVerdict,
    decide_acquire,
    decide_renew,
)
from tenure.core.record import Holder, LeaseRecord, Unreadable

TTL = 15.0
HB = 5.0


@dataclass
class Contender:
    """One simulated daemon process."""

    idx: int
    incarnation: int = 0
    holder: bool = False
    crashed: bool = False
    paused: bool = False
    epoch: int = 0
    last_renew: float = 0.0
    seen_version: int = -1
    seen_since: float = 0.0
    skew: float = 0.0  # this process's wall clock minus the true one
    ns: int = 0  # pid namespace: another one's processes cannot be seen (lease.md#foreign)

    @property
    def nonce(self) -> str:
        return f"c{self.idx}.{self.incarnation}"

    @property
    def running(self) -> bool:
        return not self.crashed and not self.paused


class LeaseModel(RuleBasedStateMachine):
    """Contenders acquire, renew, crash, pause, resume; the clock advances and jumps."""

    def __init__(self) -> None:
        super().__init__()
        self.t = 0.0
        self.wall_offset = 1_000_000.0
        self.record: LeaseRecord | Unreadable | None = None
        self.version = 0
        self.max_granted = 0
        self.contenders: list[Contender] = []
        self.stale_renewals = 0

    @initialize(namespaces=st.lists(st.integers(0, 1), min_size=2, max_size=4))
    def setup(self, namespaces: list[int]) -> None:
        self.contenders = [Contender(i, ns=ns) for i, ns in enumerate(namespaces)]

    # --- helpers -------------------------------------------------------------------------

    def wall(self, c: Contender | None = None) -> float:
        return self.t + self.wall_offset + (0.0 if c is None else c.skew)

    def write(self, rec: LeaseRecord) -> None:
        self.record = rec
        self.version += 1

    def holder_of(self, rec: LeaseRecord) -> Contender | None:
        return next((c for c in self.contenders if c.nonce == rec.holder.nonce), None)

    def liveness_of(self, rec: LeaseRecord, observer: Contender) -> Liveness:
        holder = self.holder_of(rec)
        if holder is not None and holder.ns != observer.ns:
            return Liveness.FOREIGN  # alive or not, it cannot be seen from here
        if holder is not None:
            return Liveness.DEAD if holder.crashed else Liveness.ALIVE
        return Liveness.DEAD  # an earlier incarnation: the pid is gone

    def beat(self, c: Contender) -> None:
        decision = decide_renew(self.record, c.epoch, c.nonce, self.t - c.last_renew, self.wall(c))
        if decision.verdict is RenewVerdict.RENEWED:
            assert decision.write is not None
            if c.epoch != self.max_granted:
                self.stale_renewals += 1
            self.write(decision.write)
            c.last_renew = self.t
            return
        c.holder = False
        release = decide_release(self.record, c.epoch, c.nonce, self.wall(c))
        if release.write is not None:
            self.write(release.write)

    def pick(self, i: int) -> Contender:
        return self.contenders[i % len(self.contenders)]

    # --- rules ---------------------------------------------------------------------------

    @rule(dt=st.floats(min_value=0.0, max_value=HB))
    def advance(self, dt: float) -> None:
        """Time passes; every running holder heartbeats at least once per heartbeat interval."""
        self.t += dt
        for c in self.contenders:
            if c.holder and c.running:
                self.beat(c)

    @rule(i=st.integers(0, 3))
    def acquire(self, i: int) -> None:
        """A non-holder tries to take the lease, watching the record on its monotonic clock."""
        c = self.pick(i)
        if c.holder or not c.running:
            return
        if c.seen_version != self.version:
            c.seen_version, c.seen_since = self.version, self.t
        live = (
            self.liveness_of(self.record, c)
            if isinstance(self.record, LeaseRecord)
            else Liveness.DEAD
        )
        obs = Observation(self.record, live, self.wall(c), self.t - c.seen_since, self.max_granted)
        me = Holder(
            pid=100 + c.idx,
            create_time=float(c.incarnation),
            nonce=c.nonce,
            version="1.0",
            port=None,
            started_at=self.wall(c),
        )
        decision = decide_acquire(obs, me, "sync", TTL, heartbeat_s=HB)
        if decision.verdict in TAKES:
            assert decision.write is not None
            if isinstance(self.record, LeaseRecord) and (old := self.holder_of(self.record)):
                renewing = old.holder and not old.crashed and self.t - old.last_renew < TTL / 2
                assert not renewing, "a holder renewing on time was evicted"
            assert decision.write.epoch > self.max_granted, "epochs must strictly increase"
            self.max_granted = decision.write.epoch
            self.write(decision.write)
            c.holder, c.epoch, c.last_renew = True, decision.write.epoch, self.t

    @rule(i=st.integers(0, 3))
    def crash(self, i: int) -> None:
        """SIGKILL: the process is gone, its record stays."""
        c = self.pick(i)
        c.crashed, c.holder, c.paused = True, False, False

    @rule(i=st.integers(0, 3))
    def restart(self, i: int) -> None:
        """A crashed contender comes back as a new process."""
        c = self.pick(i)
        if c.crashed:
            c.crashed, c.incarnation, c.seen_version = False, c.incarnation + 1, -1

    @rule(i=st.integers(0, 3))
    def pause(self, i: int) -> None:
        """SIGSTOP."""
        c = self.pick(i)
        if not c.crashed:
            c.paused = True

    @rule(i=st.integers(0, 3))
    def resume(self, i: int) -> None:
        """SIGCONT: a resumed holder's first act is a heartbeat check."""
        c = self.pick(i)
        if c.paused:
            c.paused = False
            if c.holder:
                self.beat(c)

    @rule(delta=st.sampled_from([-3600.0, -60.0, 60.0, 3600.0]))
    def jump_wall_clock(self, delta: float) -> None:
        """NTP or a user moved the wall clock."""
        self.wall_offset += delta

    @rule(i=st.integers(0, 3), skew=st.sampled_from([-30.0, 30.0, 3600.0]))
    def skew_clock(self, i: int, skew: float) -> None:
        """One process's wall clock runs ahead or behind the others'."""
        self.pick(i).skew = skew

    @precondition(lambda self: self.record is not None)
    @rule()
    def corrupt_record(self) -> None:
        """The record is replaced with garbage."""
        self.record = Unreadable("garbage")
        self.version += 1

    # --- invariants ----------------------------------------------------------------------

    @invariant()
    def at_most_one_running_holder(self) -> None:
        """Never two running processes that believe they hold the lease."""
        believers = [
            c for c in self.contenders if c.holder and c.running and self.t - c.last_renew <= TTL
        ]
        assert len(believers) <= 1, [c.nonce for c in believers]

    @invariant()
    def stale_holder_never_renewed(self) -> None:
        """A holder whose epoch is not the newest never renews successfully."""
        assert self.stale_renewals == 0

    @invariant()
    def record_epoch_never_exceeds_granted(self) -> None:
        """The record's epoch is always one that was granted."""
        if isinstance(self.record, LeaseRecord):
            assert self.record.epoch <= self.max_granted


LeaseModel.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestLeaseModel = LeaseModel.TestCase
