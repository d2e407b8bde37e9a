"""The holder lifecycle table (tenure.core.lifecycle) and docs/protocol/lease.md, row by row."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from tenure.adapters.root import ensure_root
from tenure.adapters.store import LeaseStore
from tenure.adapters.tombstones import read_tombstones
from tenure.core import lifecycle
from tenure.core.lifecycle import TABLE, Action, Event, RetireReason, State, event_for, step
from tenure.core.timing import Timing
from tenure.errors import LeaseHeld, Retiring
from tenure.holder.governor import Governor
from tests.conftest import HERE


def test_every_state_and_event_pair_has_a_row() -> None:
    """The table is complete: no (state, event) pair is left to chance."""
    assert set(TABLE) == {(s, e) for s in State for e in Event}


def test_docs_table_equals_the_code_table() -> None:
    """docs/protocol/lease.md#holder-lifecycle lists exactly the rows of TABLE."""
    text = (HERE.parent / "docs" / "protocol" / "lease.md").read_text()
    documented = []
    states = {s.value for s in State}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in states:
            documented.append(tuple(cells))
    coded = [
        (s.value, e.value, t.next.value, t.action.value, t.reason.value if t.reason else "")
        for (s, e), t in TABLE.items()
    ]
    assert sorted(documented) == sorted(coded)
    assert len(documented) == len(coded)


@pytest.mark.parametrize("event", [Event.ACQUIRED, Event.REFUSED, Event.DRAINED])
def test_an_unexpected_event_while_holding_is_a_retirement(event: Event) -> None:
    """Holding, an event that cannot happen retires with reason fault."""
    transition = step(State.HOLDING, event)
    assert (transition.next, transition.action, transition.reason) == (
        State.RETIRING,
        Action.RETIRE,
        RetireReason.FAULT,
    )


def test_a_pair_missing_from_the_table_is_still_a_retirement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`step` never answers "nothing" for a holder it cannot place: it retires (fault)."""
    monkeypatch.delitem(lifecycle.TABLE, (State.HOLDING, Event.RENEWED))
    assert step(State.HOLDING, Event.RENEWED).reason is RetireReason.FAULT


def test_retiring_ignores_everything_but_the_end_of_the_drain_stop_now_and_the_root() -> None:
    """Once leaving, only DRAINED (finish), "stop now" (a shutdown, or a second signal: cut
    the drain) and the root going (silence) change anything."""
    special = {
        Event.DRAINED: (State.RETIRED, Action.FINISH),
        Event.SHUTDOWN_REQUESTED: (State.RETIRING, Action.CUT_DRAIN),
        Event.SIGNALLED: (State.RETIRING, Action.CUT_DRAIN),
        Event.ROOT_GONE: (State.RETIRING, Action.SILENCE),
    }
    for event in Event:
        t = step(State.RETIRING, event)
        assert (t.next, t.action) == special.get(event, (State.RETIRING, Action.NONE))


def test_a_refused_acquire_ends_the_holder(tmp_path: Path) -> None:
    """`refused` is fed to the table: the holder is retired, recorded nothing, holds never."""
    root = ensure_root(tmp_path / "root")
    timing = Timing(ttl_s=15.0, heartbeat_s=5.0, drain_s=0.1)
    first = Governor(root, "sync", "1.0", timing=timing)
    first.acquire()
    second = Governor(root, "sync", "1.0", timing=timing)
    with pytest.raises(LeaseHeld):
        second.acquire()
    assert second.state is State.RETIRED
    assert second.wait_retired(0) is None  # nothing was held: no reason, no tombstone
    with pytest.raises(Retiring):
        second.acquire()
    first.retire(RetireReason.SHUTDOWN)
    assert first.wait_retired(10) is RetireReason.SHUTDOWN
    assert [t["reason"] for t in read_tombstones(root)] == ["shutdown"]


def test_a_root_replaced_during_the_drain_gets_nothing_written(tmp_path: Path) -> None:
    """The root replaced while work drains: `root_gone` while retiring is `silence`, so the
    new root instance gets no record and no tombstone from the old holder."""
    root = ensure_root(tmp_path / "root")
    gov = Governor(root, "sync", "1.0", timing=Timing(ttl_s=15.0, heartbeat_s=5.0, drain_s=30))
    gov.acquire()
    entered, release = threading.Event(), threading.Event()

    def work() -> None:
        with gov.work():
            entered.set()
            release.wait(30)

    worker = threading.Thread(target=work)
    worker.start()
    assert entered.wait(10)
    gov.retire(RetireReason.SHUTDOWN, drain=True)  # waits for the work in flight
    shutil.rmtree(root)
    ensure_root(root)  # another instance at the same path
    release.set()
    worker.join(10)
    assert gov.wait_retired(30) is RetireReason.SHUTDOWN
    assert read_tombstones(root) == []
    assert LeaseStore(root, "sync").read() is None


def test_a_real_holder_fed_an_unexpected_event_retires_and_records_it(tmp_path: Path) -> None:
    """The driver performs the table's action: release, tombstone with reason fault."""
    root = ensure_root(tmp_path / "root")
    gov = Governor(root, "sync", "1.0", timing=Timing(ttl_s=15.0, heartbeat_s=5.0, drain_s=0.1))
    gov.acquire()
    assert gov.state is State.HOLDING
    gov.handle(Event.ACQUIRED)
    assert gov.wait_retired(30) is RetireReason.FAULT
    assert gov.state is State.RETIRED
    assert [t["reason"] for t in read_tombstones(root)] == ["fault"]
    with pytest.raises(Retiring):
        gov.acquire()  # a retired holder never holds again


@pytest.mark.parametrize("reason", list(RetireReason))
def test_every_retirement_reason_can_be_asked_for(reason: RetireReason) -> None:
    """`retire(reason)` maps every reason to an event the table knows (REQUESTED and SIGNAL
    once raised ValueError: the mapping's default was built before the lookup)."""
    for drain in (True, False):
        event = event_for(reason, drain)
        assert step(State.HOLDING, event).next is State.RETIRING
