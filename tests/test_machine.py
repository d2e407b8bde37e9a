"""Decision tables for acquire / renew / supersede / release (spec: docs/protocol/lease.md)."""

from __future__ import annotations

import pytest

from tenure.core.handover import (
    ReleaseVerdict,
    SupersedeVerdict,
    decide_release,
    decide_stop_request,
    decide_supersede,
    is_newer,
)
from tenure.core.lease import (
    AcquireVerdict,
    Liveness,
    Observation,
    RenewVerdict,
    decide_acquire,
    decide_renew,
    lease_status,
)
from tenure.core.record import (
    Holder,
    LeaseRecord,
    LeaseState,
    StopRequest,
    Supersession,
    Unreadable,
)
from tenure.core.values import replace

T0 = 1_000_000.0
TTL = 15.0
HB = 5.0

OLD = Holder(pid=100, create_time=50.0, nonce="old", version="1.0", port=9400, started_at=T0 - 60)
ME = Holder(pid=200, create_time=90.0, nonce="me", version="1.1", port=9401, started_at=T0)


def held(renewed_at: float = T0, epoch: int = 7, holder: Holder = OLD, **kw: object) -> LeaseRecord:
    return LeaseRecord(
        family="sync",
        epoch=epoch,
        holder=holder,
        ttl_s=TTL,
        renewed_at=renewed_at,
        seq=3,
        state=LeaseState.HELD,
        **kw,  # type: ignore[arg-type]
    )


def obs(
    current: LeaseRecord | Unreadable | None,
    liveness: Liveness = Liveness.ALIVE,
    now: float = T0 + 1,
    unchanged_for: float = 0.0,
    floor: int = 0,
) -> Observation:
    return Observation(current, liveness, now, unchanged_for, floor)


ACQUIRE_ROWS = [
    pytest.param(obs(None), AcquireVerdict.TAKE_FREE, 1, id="no-record-is-taken-at-epoch-1"),
    pytest.param(
        obs(replace(held(), state=LeaseState.RELEASED)),
        AcquireVerdict.TAKE_RELEASED,
        8,
        id="released-record-is-taken-with-epoch-plus-one",
    ),
    pytest.param(
        obs(held(), Liveness.DEAD),
        AcquireVerdict.TAKE_DEAD_HOLDER,
        8,
        id="dead-holder-is-replaced-at-once",
    ),
    pytest.param(
        obs(held(), Liveness.REUSED),
        AcquireVerdict.TAKE_DEAD_HOLDER,
        8,
        id="pid-reused-with-another-create-time-is-replaced-at-once",
    ),
    pytest.param(obs(held()), AcquireVerdict.REFUSE_HELD, None, id="live-fresh-holder-is-refused"),
    pytest.param(
        obs(held(), now=T0 + 3600, unchanged_for=0.0),
        AcquireVerdict.WAIT_CONFIRM,
        None,
        id="wall-clock-jumped-forward-1h-with-holder-alive-does-not-expire",
    ),
    pytest.param(
        obs(held(), now=T0 + 3600, unchanged_for=TTL / 2 - 0.01),
        AcquireVerdict.WAIT_CONFIRM,
        None,
        id="wall-ttl-passed-but-unchanged-less-than-half-the-records-ttl-waits",
    ),
    pytest.param(
        obs(held(), now=T0 + TTL + 1, unchanged_for=TTL / 2),
        AcquireVerdict.TAKE_EXPIRED,
        8,
        id="ttl-passed-and-unchanged-half-the-records-ttl-is-taken",
    ),
    pytest.param(
        obs(held(), now=T0 + 30, unchanged_for=TTL / 2 - 0.5),
        AcquireVerdict.WAIT_CONFIRM,
        None,
        id="a-contender-whose-clock-runs-30s-ahead-cannot-take-a-renewing-holder",
    ),
    pytest.param(
        obs(held(heartbeat_s=10.0), now=T0 + 3600, unchanged_for=9.0),
        AcquireVerdict.WAIT_CONFIRM,
        None,
        id="the-records-own-longer-heartbeat-is-waited-for",
    ),
    pytest.param(
        obs(held(), Liveness.FOREIGN),
        AcquireVerdict.REFUSE_HELD,
        None,
        id="a-foreign-holder-is-refused",
    ),
    pytest.param(
        obs(held(), Liveness.FOREIGN, now=T0 + 3600, unchanged_for=TTL),
        AcquireVerdict.REFUSE_HELD,
        None,
        id="a-foreign-holder-is-never-expired-by-wall-time",
    ),
    pytest.param(
        obs(held(), Liveness.FOREIGN, unchanged_for=TTL + 0.1),
        AcquireVerdict.TAKE_EXPIRED,
        8,
        id="a-foreign-record-unchanged-past-its-ttl-is-taken",
    ),
    pytest.param(
        obs(held(), now=T0 - 3600, unchanged_for=TTL + 0.1),
        AcquireVerdict.TAKE_EXPIRED,
        8,
        id="wall-clock-jumped-back-but-unchanged-past-ttl-is-taken",
    ),
    pytest.param(
        obs(held(), now=T0 + 2, unchanged_for=HB * 2),
        AcquireVerdict.REFUSE_HELD,
        None,
        id="unchanged-but-within-ttl-is-refused",
    ),
    pytest.param(
        obs(Unreadable("garbage"), unchanged_for=1.0),
        AcquireVerdict.REFUSE_UNREADABLE,
        None,
        id="fresh-unreadable-record-is-refused",
    ),
    pytest.param(
        obs(Unreadable("garbage"), unchanged_for=TTL + 0.1, floor=41),
        AcquireVerdict.TAKE_UNREADABLE,
        42,
        id="unreadable-for-a-ttl-is-taken-above-the-epoch-floor",
    ),
    pytest.param(
        obs(held(epoch=3), Liveness.DEAD, floor=10),
        AcquireVerdict.TAKE_DEAD_HOLDER,
        11,
        id="epoch-floor-beats-a-rolled-back-record",
    ),
]


@pytest.mark.parametrize(("observation", "verdict", "epoch"), ACQUIRE_ROWS)
def test_acquire_table(
    observation: Observation, verdict: AcquireVerdict, epoch: int | None
) -> None:
    """Each acquire row gives its verdict and, when it takes, the next epoch."""
    decision = decide_acquire(observation, ME, "sync", TTL)
    assert decision.verdict is verdict
    if epoch is None:
        assert decision.write is None
    else:
        assert decision.write is not None
        assert decision.write.epoch == epoch
        assert decision.write.holder == ME
        assert decision.write.state is LeaseState.HELD


def test_refusal_names_the_holder() -> None:
    """A refused acquire says who holds the lease and how long to wait: the wall-clock
    remainder (5 s) or, when longer, the half TTL of the record it must see unchanged."""
    decision = decide_acquire(obs(held(), now=T0 + 10), ME, "sync", TTL)
    assert decision.held_by == OLD
    assert decision.wait_s == pytest.approx(TTL / 2)
    later = decide_acquire(obs(held(), now=T0 + 10, unchanged_for=6.0), ME, "sync", TTL)
    assert later.wait_s == pytest.approx(5.0)


MINE = held(holder=ME, epoch=9)

RENEW_ROWS = [
    pytest.param(MINE, 9, "me", 1.0, RenewVerdict.RENEWED, id="own-record-within-ttl-renews"),
    pytest.param(MINE, 8, "me", 1.0, RenewVerdict.LOST, id="epoch-moved-is-lost"),
    pytest.param(MINE, 9, "other", 1.0, RenewVerdict.LOST, id="holder-changed-is-lost"),
    pytest.param(
        replace(MINE, state=LeaseState.RELEASED),
        9,
        "me",
        1.0,
        RenewVerdict.LOST,
        id="released-record-is-lost",
    ),
    pytest.param(None, 9, "me", 1.0, RenewVerdict.GONE, id="missing-record-is-gone"),
    pytest.param(
        Unreadable("x"), 9, "me", 1.0, RenewVerdict.UNREADABLE, id="garbage-is-unreadable"
    ),
    pytest.param(
        MINE,
        9,
        "me",
        TTL + 0.5,
        RenewVerdict.SELF_EXPIRED,
        id="paused-past-ttl-never-renews-even-if-record-still-ours",
    ),
    pytest.param(
        held(holder=ME, epoch=12),
        9,
        "me",
        TTL + 60,
        RenewVerdict.LOST,
        id="resumed-stale-holder-sees-the-new-epoch-and-is-lost",
    ),
    pytest.param(
        replace(MINE, superseded_by=Supersession("2.0", 1, T0)),
        9,
        "me",
        1.0,
        RenewVerdict.SUPERSEDED,
        id="newer-supersession-request-stops-renewal",
    ),
    pytest.param(
        replace(MINE, stop_requested=StopRequest(1, T0)),
        9,
        "me",
        1.0,
        RenewVerdict.STOP_REQUESTED,
        id="a-stop-asked-through-the-record-stops-renewal",
    ),
]


def test_a_stop_request_marks_only_the_epoch_it_was_meant_for() -> None:
    """lease.md#stop: the mark goes into the record of the holder the requester saw; a record
    that moved on (another epoch, released) is left alone."""
    marked = decide_stop_request(MINE, 9, 300, T0)
    assert marked is not None
    assert marked.stop_requested == StopRequest(300, T0)
    assert replace(marked, stop_requested=None) == MINE
    assert decide_stop_request(MINE, 8, 300, T0) is None
    assert decide_stop_request(replace(MINE, state=LeaseState.RELEASED), 9, 300, T0) is None
    assert decide_stop_request(None, 9, 300, T0) is None


@pytest.mark.parametrize(("current", "epoch", "nonce", "since", "verdict"), RENEW_ROWS)
def test_renew_table(
    current: LeaseRecord | Unreadable | None,
    epoch: int,
    nonce: str,
    since: float,
    verdict: RenewVerdict,
) -> None:
    """Each renew row gives its verdict; only RENEWED writes, with seq+1 and a new renewed_at."""
    decision = decide_renew(current, epoch, nonce, since, T0 + 99)
    assert decision.verdict is verdict
    if verdict is RenewVerdict.RENEWED:
        assert isinstance(current, LeaseRecord)
        assert decision.write == replace(current, seq=current.seq + 1, renewed_at=T0 + 99)
    else:
        assert decision.write is None


SUPERSEDE_ROWS = [
    pytest.param("1.1", "1.0", SupersedeVerdict.REQUESTED, id="strictly-newer-may-ask"),
    pytest.param("1.0", "1.0", SupersedeVerdict.NOT_NEWER, id="equal-version-may-not-ask"),
    pytest.param("0.9", "1.0", SupersedeVerdict.NOT_NEWER, id="older-version-may-not-ask"),
    pytest.param("1.0.post1", "1.0", SupersedeVerdict.REQUESTED, id="post-release-is-newer"),
    pytest.param("1.1rc1", "1.1", SupersedeVerdict.NOT_NEWER, id="release-candidate-is-older"),
    pytest.param(
        "banana", "1.0", SupersedeVerdict.UNPARSEABLE, id="unparseable-requester-never-supersedes"
    ),
    pytest.param(
        "9.9",
        "dev-build",
        SupersedeVerdict.UNPARSEABLE,
        id="unparseable-holder-is-never-superseded",
    ),
]


@pytest.mark.parametrize(("requester", "holder_version", "verdict"), SUPERSEDE_ROWS)
def test_supersede_table(requester: str, holder_version: str, verdict: SupersedeVerdict) -> None:
    """Only a strictly newer PEP 440 version may ask the holder to retire."""
    current = held(holder=replace(OLD, version=holder_version))
    decision = decide_supersede(current, requester, 300, T0)
    assert decision.verdict is verdict
    if verdict is SupersedeVerdict.REQUESTED:
        assert decision.write is not None
        assert decision.write.superseded_by == Supersession(requester, 300, T0)
        assert decision.write.epoch == current.epoch
    else:
        assert decision.write is None


def test_supersede_without_a_holder_is_not_held() -> None:
    """There is nobody to supersede when the record is absent or released."""
    assert decide_supersede(None, "2.0", 1, T0).verdict is SupersedeVerdict.NOT_HELD
    released = replace(held(), state=LeaseState.RELEASED)
    assert decide_supersede(released, "2.0", 1, T0).verdict is SupersedeVerdict.NOT_HELD


RELEASE_ROWS = [
    pytest.param(MINE, 9, "me", ReleaseVerdict.RELEASED, id="own-epoch-releases"),
    pytest.param(
        held(holder=OLD, epoch=10),
        9,
        "me",
        ReleaseVerdict.NOT_MINE,
        id="newer-holder-is-never-clobbered",
    ),
    pytest.param(MINE, 8, "me", ReleaseVerdict.NOT_MINE, id="stale-epoch-cannot-release"),
    pytest.param(None, 9, "me", ReleaseVerdict.NOT_MINE, id="missing-record-is-not-recreated"),
    pytest.param(
        Unreadable("x"), 9, "me", ReleaseVerdict.NOT_MINE, id="unreadable-record-is-left-alone"
    ),
]


@pytest.mark.parametrize(("current", "epoch", "nonce", "verdict"), RELEASE_ROWS)
def test_release_table(
    current: LeaseRecord | Unreadable | None, epoch: int, nonce: str, verdict: ReleaseVerdict
) -> None:
    """Release is a compare-and-set on epoch and nonce; it keeps the epoch."""
    decision = decide_release(current, epoch, nonce, T0 + 5)
    assert decision.verdict is verdict
    if verdict is ReleaseVerdict.RELEASED:
        assert decision.write is not None
        assert decision.write.state is LeaseState.RELEASED
        assert decision.write.epoch == epoch
    else:
        assert decision.write is None


def test_is_newer_never_true_for_unparseable() -> None:
    """An unparseable version is neither newer nor older than anything."""
    assert not is_newer("x", "1.0")
    assert not is_newer("1.0", "x")
    assert is_newer("1.10", "1.9")


REC = held()


@pytest.mark.parametrize(
    ("current", "live", "now", "status"),
    [
        pytest.param(None, None, 100.0, "absent", id="no-record"),
        pytest.param(Unreadable("x"), None, 100.0, "unreadable", id="garbage"),
        pytest.param(
            replace(REC, state=LeaseState.RELEASED), None, 100.0, "released", id="released"
        ),
        pytest.param(REC, Liveness.DEAD, REC.renewed_at, "expired", id="holder-dead"),
        pytest.param(REC, Liveness.REUSED, REC.renewed_at, "expired", id="pid-reused"),
        pytest.param(REC, Liveness.ALIVE, REC.renewed_at + REC.ttl_s + 1, "expired", id="past-ttl"),
        pytest.param(REC, Liveness.ALIVE, REC.renewed_at + 1, "held", id="fresh"),
    ],
)
def test_lease_status_is_one_rule_for_every_report(
    current: LeaseRecord | Unreadable | None, live: Liveness | None, now: float, status: str
) -> None:
    """lease_status gives the doctor, ls and the survey the same word for the same facts."""
    assert lease_status(current, live, now).value == status
