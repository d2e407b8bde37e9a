"""Findings and the doctor's JSON document as pure functions of gathered facts (no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tenure.adapters.reaper import ReapResult, Swept
from tenure.core.findings import (
    RESET,
    RESET_FORCE,
    LeaseFacts,
    RootProblem,
    build_findings,
    plural,
    port_list,
    remediation_for,
)
from tenure.core.verdicts import (
    CleanupClass,
    DaemonIdentityRecord,
    Governance,
    IdentitySource,
    SkipReason,
)
from tenure.hygiene.doctor import DoctorReport, to_json
from tenure.protocol.report import LeaseReport
from tests.conftest import HERE

SCHEMA = json.loads((HERE.parent / "docs" / "protocol" / "doctor-json.schema.json").read_text())


def rec(
    port: int,
    cls: CleanupClass,
    reason: SkipReason | None = None,
    *,
    governance: Governance = Governance.LEGACY,
    leaked: bool = False,
    pid: int | None = 100,
) -> DaemonIdentityRecord:
    return DaemonIdentityRecord(
        port=port,
        pid=pid,
        daemon_family="sync",
        package_version="3.2.2",
        protocol="legacy/1",
        scope_id="/home/u/.spec-kitty",
        governance=governance,
        cleanup_class=cls,
        skip_reason=reason,
        identity_source=IdentitySource.CMDLINE_MARKER,
        evidence=("e",),
        create_time=1.0,
        token_leaked=leaked,
    )


SAFE = rec(9402, CleanupClass.SAFE_AUTO, leaked=True)
PREMARKER = rec(9403, CleanupClass.OPERATOR_REQUIRED, SkipReason.PRE_MARKER, leaked=True)
SINGLETON = rec(9401, CleanupClass.NEVER_TOUCH, SkipReason.IS_RECORDED_SINGLETON, leaked=True)
NO_PID = rec(9404, CleanupClass.OPERATOR_REQUIRED, SkipReason.MISSING_PID, pid=None)


def ids(findings: list) -> dict[str, tuple[str, str]]:  # type: ignore[type-arg]
    return {f.id: (f.severity, f.remediation) for f in findings}


@pytest.mark.parametrize(
    ("cands", "expected"),
    [
        pytest.param([], {}, id="nothing"),
        pytest.param(
            [SAFE],
            {"legacy_holdouts": ("warning", RESET), "legacy_token_leak": ("critical", RESET)},
            id="safe-only-needs-plain-reset",
        ),
        pytest.param(
            [PREMARKER],
            {
                "legacy_holdouts": ("warning", RESET_FORCE),
                "legacy_token_leak": ("critical", RESET_FORCE),
            },
            id="operator-only-needs-force",
        ),
        pytest.param(
            [SINGLETON],
            {"legacy_token_leak_kept": ("warning", None)},
            id="singleton-leak-has-no-tenure-fix",
        ),
        pytest.param(
            [NO_PID],
            {"legacy_unattributed": ("warning", None)},
            id="no-pid-cannot-be-cleaned",
        ),
    ],
)
def test_findings_name_the_one_command_that_removes_them(
    cands: list[DaemonIdentityRecord], expected: dict[str, tuple[str, str | None]]
) -> None:
    """Each finding's remediation is the command that removes it, or says no tenure command can."""
    found = ids(build_findings(None, [], cands))
    assert set(found) == set(expected)
    for key, (severity, fix) in expected.items():
        assert found[key][0] == severity
        if fix is None:
            assert found[key][1].startswith("no tenure command")
        else:
            assert found[key][1] == fix


@pytest.mark.parametrize(
    ("kind", "fix_start", "severity"),
    [
        ("writable", "chmod 700 /r", "critical"),
        ("symlink", "rm /r", "critical"),
        ("not_directory", "mv /r /r.bak", "critical"),
        ("foreign_owner", "no tenure command", "warning"),
    ],
)
def test_root_problems_get_a_fix_that_fits_the_problem(
    kind: str, fix_start: str, severity: str
) -> None:
    """A root that is a file is not told to chmod; another user's root is not critical."""
    (finding,) = build_findings(RootProblem("/r", kind, "daemon root /r: ..."), [], [])
    assert finding.remediation.startswith(fix_start)
    assert finding.severity == severity


def test_lease_findings() -> None:
    """Unreadable record, stuck lock, a live holder that does not answer."""
    leases = [
        LeaseFacts("sync", "unreadable", "/r/leases/sync.json", unreadable_reason="not JSON"),
        LeaseFacts(
            "dashboard", "held", "/r/leases/dashboard.json", holder_pid=7, holder_answers=False
        ),
        LeaseFacts("x", "absent", "/r/leases/x.json", lock_holder_pid=9),
    ]
    found = ids(build_findings(None, leases, []))
    assert found["lease_unreadable:sync"] == (
        "critical",
        "rm /r/leases/sync.json && tenure sync start",
    )
    assert found["holder_not_answering:dashboard"][0] == "critical"
    assert found["lease_lock_stuck:x"][0] == "warning"


def test_grammar_of_counts_and_ports() -> None:
    """One daemon, two daemons; port 9404, ports 9401, 9402."""
    assert plural(1, "legacy daemon") == "1 legacy daemon"
    assert plural(2, "legacy daemon") == "2 legacy daemons"
    assert port_list([NO_PID]) == "port 9404"
    assert port_list([SINGLETON, SAFE]) == "ports 9401, 9402"
    assert remediation_for(SINGLETON) is None


def test_the_json_document_is_built_without_io_and_validates(tmp_path: Path) -> None:
    """to_json over a constructed report: schema-valid, redacted, with the reset result."""
    report = DoctorReport(
        root=tmp_path / "root",
        legacy_root=tmp_path / "legacy",
        root_problem=None,
        leases=[LeaseReport("sync", "absent"), LeaseReport("dashboard", "absent")],
        surveys=[],
        retirements=[
            {"family": "sync", "pid": 5, "version": "1", "epoch": 1, "reason": "idle", "at": 1.0}
        ],
        generated_at=1_800_000_000.0,
    )
    report.reset_result = ReapResult(swept=[Swept(5, 9402, "3.2.2", "terminate", "safe_auto")])
    doc = to_json(report)
    jsonschema.validate(doc, SCHEMA)
    assert doc["schema_version"] == 3
    assert doc["reset_result"]["swept"][0]["pid"] == 5
    assert doc["retirements"][0]["at"] == "1970-01-01T00:00:01+00:00"
