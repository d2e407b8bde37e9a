"""The classification table (docs/protocol/classification.md), row by row, plus invariants."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tenure.core.classify import (
    CleanupClass,
    IdentitySource,
    LeaseView,
    ListenerFacts,
    Scope,
    SkipReason,
    classify,
)
from tenure.core.families import DASHBOARD, SYNC
from tenure.core.values import replace
from tests.conftest import HERE

UID = 1000
ROOT = "/home/u/.local/state/tenure"
LEGACY = "/home/u/.spec-kitty"
NOW = 2_000_000.0
NEVER, OPERATOR, SAFE = (
    CleanupClass.NEVER_TOUCH,
    CleanupClass.OPERATOR_REQUIRED,
    CleanupClass.SAFE_AUTO,
)

SCOPE = Scope(
    family=SYNC,
    uid=UID,
    root=ROOT,
    legacy_root=LEGACY,
    now_wall=NOW,
    retire_grace_s=35.0,
    lease=LeaseView(
        holder_pid=500,
        holder_create_time=NOW - 100,
        holder_started_at=NOW - 100,
        epoch=4,
        held=True,
        expired=False,
    ),
    legacy_singleton_pid=700,
    legacy_singleton_port=9401,
)


def tenure_daemon(
    pid: int = 500,
    port: int = 9402,
    family: str = "sync",
    root: str = ROOT,
    created: float = NOW - 100,
    **health: Any,
) -> ListenerFacts:
    doc = {
        "status": "ok",
        "protocol": "tenure/1",
        "daemon_family": family,
        "package_version": "1.0",
        "pid": pid,
        "port": port,
        "root": root,
        **health,
    }
    argv = (
        "/usr/bin/python3",
        "-m",
        "tenure.daemon.main",
        f"--tenure-root={root}",
        f"--tenure-family={family}",
    )
    return ListenerFacts(port=port, pid=pid, uid=UID, create_time=created, cmdline=argv, health=doc)


def legacy_argv(port: int, token: str = "s3cr3t-Tk", root: str | None = LEGACY) -> tuple[str, ...]:
    script = (
        f"from specify_cli.sync.daemon import run_sync_daemon\nrun_sync_daemon({port}, '{token}')"
    )
    argv = ["/usr/bin/python3", "-c", script]
    if root is not None:
        argv.append(f"--spec-kitty-daemon-root={root}")
    argv.append("--spec-kitty-daemon-exec=/usr/bin/python3")
    return tuple(argv)


def legacy_health(version: str = "3.2.2", token: str = "s3cr3t-Tk", **extra: Any) -> dict[str, Any]:
    return {
        "status": "ok",
        "protocol_version": 1,
        "package_version": version,
        "token": token,
        "sync": {"running": True, "last_sync": None, "consecutive_failures": 0},
        "websocket_status": "connected",
        **extra,
    }


def legacy(
    port: int = 9405,
    pid: int = 800,
    root: str | None = LEGACY,
    health: dict[str, Any] | None = None,
    argv_port: int | None = None,
    argv_token: str = "s3cr3t-Tk",
) -> ListenerFacts:
    return ListenerFacts(
        port=port,
        pid=pid,
        uid=UID,
        create_time=NOW - 5000,
        cmdline=legacy_argv(argv_port or port, argv_token, root),
        health=legacy_health() if health is None else health,
    )


EXPIRED = replace(SCOPE, lease=replace(SCOPE.lease, expired=True))  # type: ignore[type-var]
# A `tenure run` holder (pid 500) SIGKILLed; its child started at tick 1000 headed tree "c00k1e".
GONE_TREE = replace(
    SCOPE,
    lease=replace(
        SCOPE.lease,  # type: ignore[type-var]
        expired=True,
        holder_gone=True,
        tree="c00k1e",
        child_pid=501,
        child_create_time=NOW - 90,
        child_start_ticks=1000,
    ),
)
STOPPED_TREE = replace(GONE_TREE, lease=replace(GONE_TREE.lease, holder_gone=False))  # type: ignore[type-var]
SURVIVOR = ListenerFacts(
    port=9411,
    pid=777,
    uid=UID,
    create_time=NOW - 80,
    cmdline=("python3", "-m", "http.server", "9411"),
    start_ticks=1200,
    tree_cookies=("outer", "c00k1e"),
)

# (id, facts, scope, class, reason) in the order of docs/protocol/classification.md
ROWS: list[tuple[str, ListenerFacts, Scope, CleanupClass, SkipReason | None]] = [
    ("port-outside-family-range", legacy(port=9450), SCOPE, NEVER, SkipReason.OUT_OF_RANGE),
    ("listener-of-another-user", replace(legacy(), uid=0), SCOPE, NEVER, SkipReason.OTHER_USER),
    (
        "lease-aware-other-family",
        tenure_daemon(family="dashboard"),
        SCOPE,
        NEVER,
        SkipReason.OTHER_FAMILY,
    ),
    (
        "lease-aware-other-root",
        tenure_daemon(root="/other/root"),
        SCOPE,
        NEVER,
        SkipReason.CROSS_ROOT,
    ),
    (
        "lease-aware-in-another-namespace",
        replace(tenure_daemon(), pid=None, create_time=None),
        replace(SCOPE, lease=replace(SCOPE.lease, foreign="host b, boot 1234abcd, pid ns 7")),  # type: ignore[type-var]
        NEVER,
        SkipReason.LEASE_HOLDER,
    ),
    (
        "lease-aware-health-does-not-tie-to-listener",
        replace(tenure_daemon(), pid=501),
        SCOPE,
        OPERATOR,
        SkipReason.PID_PORT_MISMATCH,
    ),
    (
        "lease-aware-holder-of-a-removed-root-instance",
        tenure_daemon(root_id="0ld1d"),
        replace(SCOPE, root_id="n3w1d"),
        NEVER,
        SkipReason.RETIRING,
    ),
    ("lease-aware-current-holder", tenure_daemon(), SCOPE, NEVER, SkipReason.LEASE_HOLDER),
    (
        "lease-aware-expired-holder-not-answering",
        replace(tenure_daemon(), health=None),
        EXPIRED,
        OPERATOR,
        SkipReason.UNRESPONSIVE,
    ),
    ("lease-aware-expired-holder-answering", tenure_daemon(), EXPIRED, NEVER, SkipReason.RETIRING),
    (
        "lease-aware-non-holder-within-grace",
        tenure_daemon(pid=510, created=NOW - 500),
        replace(SCOPE, lease=replace(SCOPE.lease, holder_started_at=NOW - 10)),
        NEVER,
        SkipReason.RETIRING,
    ),  # type: ignore[type-var]
    (
        "lease-aware-non-holder-past-grace",
        tenure_daemon(pid=510, created=NOW - 500),
        SCOPE,
        SAFE,
        None,
    ),
    (
        "holder-named-by-the-lease-record",
        ListenerFacts(port=9403, pid=500, uid=UID, create_time=NOW - 100, cmdline=("my-daemon",)),
        SCOPE,
        NEVER,
        SkipReason.LEASE_HOLDER,
    ),
    ("member-of-a-stopped-holders-tree", SURVIVOR, STOPPED_TREE, OPERATOR, SkipReason.UNRESPONSIVE),
    ("member-of-a-gone-holders-tree", SURVIVOR, GONE_TREE, SAFE, None),
    (
        "legacy-dashboard-fingerprint",
        ListenerFacts(
            port=9406,
            pid=900,
            uid=UID,
            create_time=1.0,
            cmdline=("python3", "-m", "specify_cli.dashboard"),
            health={"status": "running", "project_path": "/p"},
        ),
        SCOPE,
        NEVER,
        SkipReason.DASHBOARD_FAMILY,
    ),
    (
        "no-legacy-spawn-shape",
        ListenerFacts(
            port=9407,
            pid=901,
            uid=UID,
            create_time=1.0,
            cmdline=("python3", "-m", "http.server"),
            health={"protocol_version": 1, "sync": {}},
        ),
        SCOPE,
        NEVER,
        SkipReason.THIRD_PARTY,
    ),
    (
        "legacy-in-another-family-scope",
        legacy(port=9240),
        replace(SCOPE, family=DASHBOARD),
        NEVER,
        SkipReason.OTHER_FAMILY,
    ),
    (
        "legacy-recorded-singleton",
        legacy(port=9401, pid=700),
        SCOPE,
        NEVER,
        SkipReason.IS_RECORDED_SINGLETON,
    ),
    (
        "legacy-without-pid",
        ListenerFacts(port=9408, health=legacy_health()),
        SCOPE,
        OPERATOR,
        SkipReason.MISSING_PID,
    ),
    ("legacy-without-root-marker", legacy(root=None), SCOPE, OPERATOR, SkipReason.PRE_MARKER),
    (
        "legacy-other-root",
        legacy(root="/home/other/.spec-kitty"),
        SCOPE,
        OPERATOR,
        SkipReason.CROSS_ROOT,
    ),
    (
        "legacy-no-health-answer",
        replace(legacy(), health=None),
        SCOPE,
        OPERATOR,
        SkipReason.UNRESPONSIVE,
    ),
    (
        "legacy-answer-does-not-tie-to-listener",
        legacy(argv_port=9409),
        SCOPE,
        OPERATOR,
        SkipReason.PID_PORT_MISMATCH,
    ),
    ("legacy-same-root-stale", legacy(), SCOPE, SAFE, None),
    (
        "anything-else",
        ListenerFacts(port=9410, pid=902, uid=UID, create_time=1.0, cmdline=("nc", "-l", "9410")),
        SCOPE,
        NEVER,
        SkipReason.THIRD_PARTY,
    ),
]


@pytest.mark.parametrize(
    ("facts", "scope", "cls", "reason"), [pytest.param(*r[1:], id=r[0]) for r in ROWS]
)
def test_classification_table(
    facts: ListenerFacts, scope: Scope, cls: CleanupClass, reason: SkipReason | None
) -> None:
    """Each row of the documented table gives its class and skip reason."""
    record = classify(facts, scope)
    assert (record.cleanup_class, record.skip_reason) == (cls, reason), record.evidence
    assert record.evidence


def test_docs_table_equals_the_tested_table() -> None:
    """docs/protocol/classification.md lists exactly these rows, in this order."""
    text = (HERE.parent / "docs" / "protocol" / "classification.md").read_text()
    documented = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].isdigit():
            documented.append((cells[1], cells[3], cells[4] or None))
    tested = [(r[0], r[3].value, None if r[4] is None else r[4].value) for r in ROWS]
    assert documented == tested


@pytest.mark.parametrize(
    ("why", "facts", "scope"),
    [
        ("another tree", replace(SURVIVOR, tree_cookies=("0ther",)), GONE_TREE),
        ("no cookie", replace(SURVIVOR, tree_cookies=()), GONE_TREE),
        ("started before the tree", replace(SURVIVOR, start_ticks=999), GONE_TREE),
        (
            "no ticks, created before the tree",
            replace(SURVIVOR, start_ticks=None, create_time=NOW - 95),
            GONE_TREE,
        ),
        (
            "holder lives in another namespace",
            SURVIVOR,
            replace(GONE_TREE, lease=replace(GONE_TREE.lease, foreign="host b")),  # type: ignore[type-var]
        ),
    ],
)
def test_a_tree_cookie_proves_membership_only_of_a_gone_holders_tree(
    why: str, facts: ListenerFacts, scope: Scope
) -> None:
    """The cookie alone proves nothing: the holder must be gone (here, provably) and the
    process must have started no earlier than the tree's head (a holder alive past its TTL:
    row member-of-a-stopped-holders-tree, operator_required)."""
    record = classify(facts, scope)
    assert record.cleanup_class is not SAFE, why
    assert record.tree_cookie is None


def test_a_tree_member_verdict_carries_the_cookie_the_reaper_rechecks() -> None:
    record = classify(SURVIVOR, GONE_TREE)
    assert record.identity_source.value == "tree_cookie"
    assert record.tree_cookie == "c00k1e"


@pytest.mark.parametrize("version", ["3.2.2", "3.2.3", "3.2.4"])
def test_version_mismatch_is_evidence_not_a_skip(version: str) -> None:
    """Older legacy versions are still safe_auto; the version is reported."""
    record = classify(legacy(health=legacy_health(version)), SCOPE)
    assert record.cleanup_class is SAFE
    assert record.package_version == version
    assert record.token_leaked is True
    assert "s3cr3t-Tk" not in str(record.to_json())


def test_lease_holder_is_identified_by_the_lease_record() -> None:
    """The holder's identity source is the lease record."""
    assert classify(tenure_daemon(), SCOPE).identity_source is IdentitySource.LEASE_RECORD


def test_holder_with_reused_pid_is_not_the_holder() -> None:
    """Same pid as the holder but another create_time: not the holder."""
    record = classify(tenure_daemon(created=NOW - 5), SCOPE)
    assert record.skip_reason is not SkipReason.LEASE_HOLDER


def test_singleton_matched_by_port_when_state_file_has_no_pid() -> None:
    """A state file without a pid names the singleton by port."""
    scope = replace(SCOPE, legacy_singleton_pid=None, legacy_singleton_port=9405)
    assert classify(legacy(), scope).skip_reason is SkipReason.IS_RECORDED_SINGLETON


hostile = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=20), c, max_size=3),
    max_leaves=8,
)
health_docs = st.dictionaries(
    st.sampled_from(
        [
            "protocol",
            "protocol_version",
            "daemon_family",
            "pid",
            "port",
            "root",
            "token",
            "sync",
            "package_version",
            "project_path",
            "status",
            "owner",
        ]
    ),
    hostile,
)
argvs = st.lists(
    st.sampled_from(
        [
            "-c",
            "run_sync_daemon(9405, 'tok')",
            f"--spec-kitty-daemon-root={LEGACY}",
            f"--tenure-root={ROOT}",
            "--tenure-family=sync",
            "--tenure-family=",
            "x",
        ]
    ),
    max_size=6,
).map(tuple)
facts_strategy = st.builds(
    ListenerFacts,
    port=st.integers(9390, 9460),
    pid=st.none() | st.integers(1, 1000),
    uid=st.none() | st.sampled_from([UID, 0]),
    create_time=st.none() | st.floats(allow_nan=False),
    cmdline=argvs,
    health=st.none() | health_docs,
)


@given(facts_strategy)
def test_skip_reason_is_none_exactly_when_safe_auto(facts: ListenerFacts) -> None:
    """Hostile facts classify without raising, and skip_reason is None iff safe_auto."""
    record = classify(facts, SCOPE)
    assert (record.skip_reason is None) == (record.cleanup_class is SAFE)


@given(facts_strategy, hostile)
def test_owner_block_never_changes_a_verdict(facts: ListenerFacts, owner: Any) -> None:
    """Adding, changing or removing the health `owner` block never changes the verdict."""
    base = dict(facts.health or {})
    base.pop("owner", None)
    without = classify(replace(facts, health=base if facts.health is not None else None), SCOPE)
    with_owner = classify(replace(facts, health={**base, "owner": owner}), SCOPE)
    if facts.health is not None:
        assert (with_owner.cleanup_class, with_owner.skip_reason) == (
            without.cleanup_class,
            without.skip_reason,
        )


def test_huge_strings_are_truncated_in_records() -> None:
    """A megabyte-long version string does not end up whole in the record."""
    record = classify(legacy(health=legacy_health("9" * 1_000_000)), SCOPE)
    assert record.package_version is not None
    assert len(record.package_version) <= 200


def test_boundary_ports_of_both_families() -> None:
    """9400/9449 and 9237/9336 are inside; 9399/9450 and 9236/9337 are out of range."""
    for port, inside in [(9399, False), (9400, True), (9449, True), (9450, False)]:
        assert (
            classify(legacy(port=port), SCOPE).skip_reason is not SkipReason.OUT_OF_RANGE
        ) is inside
    dash = replace(SCOPE, family=DASHBOARD)
    for port, inside in [(9236, False), (9237, True), (9336, True), (9337, False)]:
        assert (
            classify(tenure_daemon(port=port, family="dashboard"), dash).skip_reason
            is not SkipReason.OUT_OF_RANGE
        ) is inside


def dashboard(token: str | None) -> ListenerFacts:
    doc: dict[str, Any] = {"status": "running", "project_path": "/home/u/proj"}
    if token is not None:
        doc["token"] = token
    return ListenerFacts(
        port=9240, pid=950, uid=UID, create_time=1.0, cmdline=("python3",), health=doc
    )


@pytest.mark.parametrize(
    ("token", "leaked"),
    [
        pytest.param("raw-dashboard-token", True, id="raw-token-leaks"),
        pytest.param("<redacted>", False, id="redacted-is-no-leak"),
        pytest.param(None, False, id="no-token"),
        pytest.param("", False, id="empty-token"),
    ],
)
def test_legacy_dashboard_token_leaks_are_reported(token: str | None, leaked: bool) -> None:
    """A legacy dashboard that returns its raw token is reported like a sync daemon."""
    record = classify(dashboard(token), replace(SCOPE, family=DASHBOARD))
    assert (record.cleanup_class, record.skip_reason) == (NEVER, SkipReason.DASHBOARD_FAMILY)
    assert record.token_leaked is leaked


def test_a_redacted_token_is_neither_a_leak_nor_a_mismatch() -> None:
    """Health that says "<redacted>" is not tied against the argv token, and leaks nothing."""
    record = classify(legacy(health=legacy_health(token="<redacted>")), SCOPE)
    assert (record.cleanup_class, record.skip_reason) == (SAFE, None)
    assert record.token_leaked is False


def test_the_child_a_run_wrapper_governs_is_part_of_its_holder() -> None:
    """A listener whose pid and start time are the record's `child` is the lease holder's."""
    scope = replace(SCOPE, lease=replace(SCOPE.lease, child_pid=777, child_create_time=5.0))  # type: ignore[type-var]
    child = ListenerFacts(port=9404, pid=777, uid=UID, create_time=5.0, cmdline=("http.server",))
    assert classify(child, scope).skip_reason is SkipReason.LEASE_HOLDER
    stranger = replace(child, create_time=99.0)  # same pid, another process
    assert classify(stranger, scope).skip_reason is SkipReason.THIRD_PARTY


def test_the_rule_tables_are_the_documented_rows() -> None:
    """The classifiers' rule tables name, in order, rows 3-12 and 16-25 of
    docs/protocol/classification.md, each with the documented class and skip reason."""
    from tenure.core.classify_aware import AWARE_RULES
    from tenure.core.classify_legacy import LEGACY_RULES

    text = (HERE.parent / "docs" / "protocol" / "classification.md").read_text()
    documented = {}
    order = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].isdigit():
            documented[cells[1]] = (cells[3], cells[4] or None)
            order.append(cells[1])
    for rules, first, last in ((AWARE_RULES, 3, 12), (LEGACY_RULES, 16, 25)):
        assert [r.row for r in rules] == order[first - 1 : last]
        for rule in rules:
            reason = None if rule.reason is None else rule.reason.value
            assert documented[rule.row] == (rule.cls.value, reason), rule.row


def test_a_tree_the_record_still_lists_as_replaced_is_a_gone_holders_tree() -> None:
    """An interrupted takeover: the record's live holder is another wrapper, yet the survivor
    of the tree it replaced is listed in `orphans` and stays cleanable (control.md#run)."""
    listed = replace(
        SCOPE,
        lease=replace(
            SCOPE.lease,  # type: ignore[type-var]
            holder_gone=False,
            orphan_trees=(("c00k1e", 1000, NOW - 90),),
        ),
    )
    record = classify(SURVIVOR, listed)
    assert record.cleanup_class is SAFE
    assert record.tree_cookie == "c00k1e"
    too_old = classify(replace(SURVIVOR, start_ticks=999), listed)
    assert too_old.cleanup_class is not SAFE


@pytest.mark.parametrize(
    ("why", "facts", "scope"),
    [
        (
            "silent, while the lease's holder is foreign",
            replace(tenure_daemon(), health=None),
            replace(SCOPE, lease=replace(SCOPE.lease, foreign="pid ns 7")),  # type: ignore[type-var]
        ),
        (
            "lingering past the grace, in another pid namespace",
            replace(tenure_daemon(), pid=999, health=None, pid_ns=4026532999),
            replace(SCOPE, pid_ns=4026531836, now_wall=NOW + 10_000),
        ),
    ],
)
def test_a_lease_aware_listener_of_another_namespace_is_never_touched(
    why: str, facts: ListenerFacts, scope: Scope
) -> None:
    """Answer or no answer: a pid of another namespace is never judged against ours."""
    record = classify(facts, scope)
    assert record.cleanup_class is NEVER, why
    assert record.skip_reason is SkipReason.LEASE_HOLDER


def test_the_same_listener_in_our_namespace_past_the_grace_is_cleanable() -> None:
    """The control for the row above: only the namespace made the difference."""
    facts = replace(tenure_daemon(), pid=999, health=None, pid_ns=4026531836)
    record = classify(facts, replace(SCOPE, pid_ns=4026531836, now_wall=NOW + 10_000))
    assert record.cleanup_class is SAFE
