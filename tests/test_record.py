"""Lease record codec: round trip, tolerance of unknown keys, and a parser that never raises."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenure.core.codec import RECORD_KEYS, encode, parse
from tenure.core.handover import decide_release, decide_stop_request, decide_supersede
from tenure.core.identity import Location
from tenure.core.inputs import FAMILY_PATTERN
from tenure.core.lease import (
    Liveness,
    Observation,
    decide_acquire,
    decide_renew,
    with_child,
    with_own_tree_orphaned,
    without_orphans,
)
from tenure.core.record import (
    PROTOCOL,
    Child,
    Holder,
    LeaseRecord,
    LeaseState,
    StopRequest,
    Supersession,
    Unreadable,
)
from tenure.core.values import replace

finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
text = st.text(max_size=40)

holders = st.builds(
    Holder,
    pid=st.integers(min_value=1, max_value=2**31 - 1),
    create_time=st.floats(min_value=0, allow_nan=False, allow_infinity=False),
    nonce=text,
    version=text,
    port=st.none() | st.integers(min_value=1, max_value=65535),
    started_at=finite,
    start_ticks=st.none() | st.integers(min_value=0, max_value=2**53),
    where=st.none()
    | st.builds(
        Location,
        boot_id=st.text(min_size=1, max_size=40),
        pid_ns=st.integers(min_value=0, max_value=2**53),
        time_ns=st.none() | st.integers(min_value=0, max_value=2**53),
        host=text,
    ),
)
records = st.builds(
    LeaseRecord,
    family=st.from_regex(FAMILY_PATTERN, fullmatch=True),
    epoch=st.integers(min_value=0, max_value=2**53),
    holder=holders,
    ttl_s=st.floats(min_value=0.001, allow_nan=False, allow_infinity=False),
    renewed_at=finite,
    seq=st.integers(min_value=0, max_value=2**53),
    state=st.sampled_from(LeaseState),
    superseded_by=st.none()
    | st.builds(Supersession, version=text, pid=st.integers(1, 2**31 - 1), at=finite),
    root_id=st.none() | st.text("0123456789abcdef", min_size=1, max_size=16),
    ports=st.none() | st.tuples(st.integers(1, 30000), st.integers(30000, 65535)),
    child=st.none()
    | st.builds(
        Child,
        pid=st.integers(1, 2**31 - 1),
        create_time=st.floats(allow_nan=False, allow_infinity=False),
        start_ticks=st.none() | st.integers(min_value=0, max_value=2**53),
        tree=st.none() | st.text("0123456789abcdef", min_size=1, max_size=16),
    ),
    heartbeat_s=st.none() | st.floats(min_value=0.001, allow_nan=False, allow_infinity=False),
    stop_requested=st.none() | st.builds(StopRequest, pid=st.integers(1, 2**31 - 1), at=finite),
)


@given(records)
def test_parse_inverts_encode(record: LeaseRecord) -> None:
    """parse(encode(r)) == r for every record."""
    assert parse(encode(record)) == record


@given(st.binary(max_size=2048))
def test_parse_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    """Arbitrary bytes parse to a record or to Unreadable, never an exception."""
    assert isinstance(parse(data), LeaseRecord | Unreadable)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from([*sorted(RECORD_KEYS), "x"]),  # every key the codec reads, and one more
        json_values,
    )
)
def test_parse_never_raises_on_wrong_typed_documents(doc: dict[str, object]) -> None:
    """Documents with the right keys but any JSON values still parse without raising."""
    assert isinstance(parse(json.dumps(doc).encode()), LeaseRecord | Unreadable)


SAMPLE = LeaseRecord(
    family="sync",
    epoch=4,
    holder=Holder(pid=10, create_time=1.5, nonce="n", version="1.0", port=9400, started_at=2.0),
    ttl_s=15.0,
    renewed_at=3.0,
    seq=1,
    state=LeaseState.HELD,
)


def test_unknown_keys_are_ignored_when_deciding_and_kept_when_rewriting() -> None:
    """A reader keeps working when a newer writer adds keys, and every rewrite — a mark, a
    renewal, a release — writes them back as they were (versioning.md#unknown-keys)."""
    doc = json.loads(encode(SAMPLE))
    doc["x_newer_extension"] = {"anything": [1, 2]}
    doc["holder"]["x_newer_holder_field"] = "x"
    parsed = parse(json.dumps(doc).encode())
    assert isinstance(parsed, LeaseRecord)
    assert replace(parsed, extra=(), holder=replace(parsed.holder, extra=())) == SAMPLE
    marked = decide_stop_request(parsed, SAMPLE.epoch, 77, 9.0)
    renewed = decide_renew(parsed, SAMPLE.epoch, "n", 1.0, 9.0).write
    released = decide_release(parsed, SAMPLE.epoch, "n", 9.0).write
    superseded = decide_supersede(parsed, "2.0", 78, 9.0).write
    child = with_child(parsed, SAMPLE.epoch, "n", Child(12, 1.0, 5, "c00k1e"), 9401)
    listed = with_own_tree_orphaned(child, SAMPLE.epoch, "n")
    for rewritten in (marked, renewed, released, superseded, child, listed):
        assert rewritten is not None
        back = json.loads(encode(rewritten))
        assert back["x_newer_extension"] == {"anything": [1, 2]}
        assert back["holder"]["x_newer_holder_field"] == "x"


def test_an_acquire_keeps_the_leases_unknown_keys_but_not_the_old_holders() -> None:
    """A new holder writes its own holder object; keys about the lease itself stay."""
    doc = json.loads(encode(replace(SAMPLE, state=LeaseState.RELEASED)))
    doc["x_newer_extension"] = 1
    doc["holder"]["x_newer_holder_field"] = "x"
    parsed = parse(json.dumps(doc).encode())
    me = replace(SAMPLE.holder, pid=11, nonce="m")
    obs = Observation(parsed, Liveness.DEAD, now_wall=10.0, unchanged_for=0.0)
    taken = decide_acquire(obs, me, "sync", 15.0).write
    assert taken is not None
    back = json.loads(encode(taken))
    assert back["x_newer_extension"] == 1
    assert "x_newer_holder_field" not in back["holder"]


def test_a_newer_protocols_record_is_judged_by_its_own_ttl_and_its_epoch_never_reused() -> None:
    """tenure/2 stating `ttl_s` 60 and `epoch` 7: unreadable here, yet an observer with a 15 s
    TTL waits its 60 s before taking it, and the epoch it grants is 8 (lease.md#unreadable)."""
    doc = json.loads(encode(replace(SAMPLE, epoch=7, ttl_s=60.0)))
    doc["protocol"] = "tenure/2"
    newer = parse(json.dumps(doc).encode())
    assert isinstance(newer, Unreadable)
    assert (newer.epoch, newer.ttl_s) == (7, 60.0)
    me = replace(SAMPLE.holder, pid=11, nonce="m")
    waiting = Observation(newer, Liveness.DEAD, now_wall=100.0, unchanged_for=20.0)
    refused = decide_acquire(waiting, me, "sync", 15.0)
    assert refused.write is None
    assert refused.wait_s == pytest.approx(40.0)
    later = replace(waiting, unchanged_for=61.0)
    taken = decide_acquire(later, me, "sync", 15.0).write
    assert taken is not None
    assert taken.epoch == 8


@pytest.mark.parametrize(
    "stated",
    [{"ttl_s": 10**9}, {"ttl_s": "60"}, {"ttl_s": True}, {"epoch": -1}, {"epoch": 2.5}],
    ids=["ttl-out-of-bounds", "ttl-text", "ttl-bool", "negative-epoch", "fractional-epoch"],
)
def test_a_newer_record_that_states_nonsense_falls_back_to_the_observers_terms(
    stated: dict[str, object],
) -> None:
    """Only sane values count: anything else is garbage, judged by the observer's TTL."""
    doc = {**json.loads(encode(SAMPLE)), "protocol": "tenure/2", **stated}
    newer = parse(json.dumps(doc).encode())
    assert isinstance(newer, Unreadable)
    key = next(iter(stated))
    assert getattr(newer, key) is None


def test_record_carries_the_protocol_version() -> None:
    """The encoded record names tenure/1."""
    assert json.loads(encode(SAMPLE))["protocol"] == PROTOCOL == "tenure/1"


def _mutated(**changes: object) -> bytes:
    doc = json.loads(encode(SAMPLE))
    doc.update(changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("data", "reason_part"),
    [
        pytest.param(b"", "empty", id="empty-file"),
        pytest.param(encode(SAMPLE)[:40], "not JSON", id="truncated-record"),
        pytest.param(b"\xff\xfe garbage", "not JSON", id="garbage-bytes"),
        pytest.param(b"[1, 2]", "not a JSON object", id="json-array"),
        pytest.param(_mutated(epoch="4"), "epoch", id="epoch-as-string"),
        pytest.param(_mutated(epoch=True), "epoch", id="epoch-as-bool"),
        pytest.param(_mutated(epoch=-1), "epoch", id="negative-epoch"),
        pytest.param(_mutated(state="zombie"), "state", id="unknown-state"),
        pytest.param(_mutated(protocol="tenure/2"), "tenure/2", id="future-protocol"),
        pytest.param(_mutated(holder=None), "holder", id="holder-missing"),
        pytest.param(b"x" * 70_000, "larger", id="oversized"),
    ],
)
def test_malformed_records_are_unreadable_with_a_reason(data: bytes, reason_part: str) -> None:
    """Each malformed input yields Unreadable whose reason names the problem."""
    result = parse(data)
    assert isinstance(result, Unreadable)
    assert reason_part in result.reason


GOOD = LeaseRecord(
    family="sync",
    epoch=1,
    holder=Holder(pid=10, create_time=1.0, nonce="n", version="1.0", port=9400, started_at=1.0),
    ttl_s=15.0,
    renewed_at=1.0,
    seq=0,
    state=LeaseState.HELD,
)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(replace(GOOD, holder=replace(GOOD.holder, pid=-1)), id="negative-pid"),
        pytest.param(replace(GOOD, holder=replace(GOOD.holder, pid=0)), id="pid-zero"),
        pytest.param(
            replace(GOOD, holder=replace(GOOD.holder, version="9" * 70_000)), id="huge-version"
        ),
        pytest.param(
            replace(GOOD, holder=replace(GOOD.holder, port=70_000)), id="port-out-of-range"
        ),
        pytest.param(replace(GOOD, ttl_s=0.0), id="zero-ttl"),
        pytest.param(replace(GOOD, family="f" * 300), id="long-family"),
    ],
)
def test_encode_refuses_what_readers_would_call_unreadable(bad: LeaseRecord) -> None:
    """The writer validates with the reader's codec: an invalid record is never written."""
    with pytest.raises(ValueError, match="refusing to write"):
        encode(bad)


@pytest.mark.parametrize(
    ("holder_patch", "reason_part"),
    [
        pytest.param({"pid": -1}, "pid", id="negative-pid"),
        pytest.param({"pid": 2**40}, "pid", id="pid-too-large"),
        pytest.param({"create_time": -5.0}, "create_time", id="negative-create-time"),
        pytest.param({"version": "v" * 300}, "version", id="long-version"),
    ],
)
def test_out_of_range_holder_fields_are_unreadable(
    holder_patch: dict[str, object], reason_part: str
) -> None:
    """Values a process table cannot hold read as unreadable, never as a crash later."""
    doc = json.loads(encode(GOOD))
    doc["holder"].update(holder_patch)
    result = parse(json.dumps(doc).encode())
    assert isinstance(result, Unreadable)
    assert reason_part in result.reason


def test_the_health_codec_round_trips_and_refuses_other_shapes() -> None:
    """parse_health(encode) is identity; a legacy answer, garbage or a wrong type is None."""
    from tenure.core.health import Health, parse_health

    doc = Health(
        status="ok",
        daemon_family="sync",
        package_version="1.0",
        pid=10,
        port=9400,
        root="/r",
        epoch=3,
        role="holder",
        started_at=1.5,
        in_flight=0,
        startup_reaper="done",
        startup_reaper_result={"swept": [], "skipped": [], "failed": []},
        root_id="abc",
    )
    assert parse_health(doc.to_json()) == doc
    assert parse_health({"status": "ok", "protocol_version": 1, "token": "t"}) is None
    assert parse_health(None) is None
    assert parse_health({**doc.to_json(), "pid": "10"}) is None
    assert parse_health({**doc.to_json(), "epoch": True}) is None
    assert parse_health({**doc.to_json(), "started_at": float("nan")}) is None


A_TREE = Child(pid=20, create_time=1.0, start_ticks=100, tree="a11ce")
B_TREE = Child(pid=30, create_time=2.0, start_ticks=200, tree="b0b")


@pytest.mark.parametrize(
    ("liveness", "state", "listed"),
    [
        pytest.param(Liveness.DEAD, LeaseState.HELD, (A_TREE, B_TREE), id="dead-holder"),
        pytest.param(Liveness.DEAD, LeaseState.RELEASED, (A_TREE,), id="released-holder"),
        pytest.param(Liveness.FOREIGN, LeaseState.RELEASED, (), id="foreign-holder"),
    ],
)
def test_the_write_that_takes_a_lease_lists_every_tree_not_yet_seen_stopped(
    liveness: Liveness, state: LeaseState, listed: tuple[Child, ...]
) -> None:
    """A dead holder's child joins the trees its record still lists; a released holder ended
    its own; a foreign holder's processes are not ours (control.md#run)."""
    prior = replace(SAMPLE, state=state, child=B_TREE, orphans=(A_TREE,))
    me = replace(SAMPLE.holder, pid=11, nonce="m")
    obs = Observation(prior, liveness, now_wall=10.0, unchanged_for=0.0)
    taken = decide_acquire(obs, me, "sync", 15.0).write
    assert taken is not None
    assert taken.orphans == listed
    struck = without_orphans(taken, taken.epoch, "m", (A_TREE,))
    if A_TREE in listed:
        assert struck is not None
        assert A_TREE not in struck.orphans
    assert without_orphans(taken, taken.epoch, "someone-else", (A_TREE,)) is None
