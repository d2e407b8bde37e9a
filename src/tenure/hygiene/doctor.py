"""`tenure auth doctor`: gather the lease view and every in-range listener, build findings.

Gathering is strictly read-only: no spawn, no file write (not even a lock file), no signal,
no POST. Findings are built by a pure function over what was gathered.
spec: docs/protocol/doctor-json.md
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from tenure.adapters.reaper import ReapResult
from tenure.adapters.root import check_root
from tenure.adapters.tombstones import read_tombstones
from tenure.core import schemas
from tenure.core.classify import CleanupClass, DaemonIdentityRecord
from tenure.core.families import FAMILIES, overlaps
from tenure.core.findings import Finding, LeaseFacts, RootProblem, build_findings, remediation_for
from tenure.core.hints import TYPE_CHECKING
from tenure.core.lease import LeaseStatus
from tenure.core.values import field, mutable
from tenure.errors import RootError
from tenure.hygiene.survey import (
    Survey,
    family_names,
    has_user_record,
    scannable_families,
    scoped_stores,
    survey,
)
from tenure.protocol.leases import unplaced
from tenure.protocol.report import LeaseReport, lease_json, lease_report

if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = schemas.DOCTOR
REDACTED = "<redacted>"
RECENT_RETIREMENTS = 10


@mutable
class DoctorReport:
    """Everything the doctor shows."""

    root: Path
    legacy_root: Path
    root_problem: RootProblem | None
    leases: list[LeaseReport]
    surveys: list[Survey]
    retirements: list[dict[str, Any]]
    generated_at: float = field(default_factory=time.time)
    findings: list[Finding] = field(default_factory=list)
    reset_result: ReapResult | None = None

    def candidates(self) -> list[tuple[str, DaemonIdentityRecord]]:
        """Every in-range listener with its scanning family, sorted by port."""
        pairs = [(s.family.name, r) for s in self.surveys for r in s.records]
        return sorted(pairs, key=lambda p: p[1].port)

    def needs_attention(self) -> bool:
        """Exit-code rule: critical findings remain, or something failed."""
        failed = self.reset_result is not None and bool(self.reset_result.failed)
        return failed or any(f.severity == "critical" for f in self.findings)


def gather(root: Path, legacy_root: Path) -> DoctorReport:
    """Collect the doctor's facts. Read-only."""
    now = time.time()
    problem = None
    try:
        if os.path.lexists(root):
            check_root(root)
    except RootError as exc:
        problem = RootProblem(str(exc.path), exc.kind, str(exc))
    # Every family of the root: built in, or discovered from its lease records (and its range),
    # the user scope's lease, then every scoped one (lease.md#scopes).
    leases = [
        lease_report(root, name, now)
        for name in family_names(root)
        if name in FAMILIES or has_user_record(root, name)
    ]
    leases += [lease_report(root, s.family, now, s.scope) for s in scoped_stores(root)]
    leases += [
        LeaseReport(name, LeaseStatus.UNREADABLE, unreadable_reason=why, record_path=str(path))
        for name, path, why in unplaced(root)
    ]
    surveys = [survey(fam, root, legacy_root) for fam in scannable_families(root)]
    report = DoctorReport(
        root=root,
        legacy_root=legacy_root,
        root_problem=problem,
        leases=leases,
        surveys=surveys,
        retirements=read_tombstones(root)[-RECENT_RETIREMENTS:],
        generated_at=now,
    )
    report.findings = build_report_findings(report)
    return report


def build_report_findings(report: DoctorReport) -> list[Finding]:
    """The findings for a gathered report (pure; see tenure.core.findings)."""
    leases = [
        LeaseFacts(
            family=lease.family,
            state=lease.state,
            record_path=lease.record_path,
            unreadable_reason=lease.unreadable_reason,
            lock_holder_pid=lease.lock_holder_pid,
            holder_pid=lease.holder_pid,
            holder_answers=lease.holder_answers if lease.holder_alive else None,
            holder_alive=lease.holder_alive,
            port=lease.port,
        )
        for lease in report.leases
    ]
    unscanned = [(s.family.name, s.not_scanned) for s in report.surveys if s.not_scanned]
    cands = [r for _, r in report.candidates()]
    ranges = [(s.family.name, s.family.lo, s.family.hi) for s in report.surveys]
    return build_findings(report.root_problem, leases, cands, unscanned, overlaps(ranges))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def active_daemon(report: DoctorReport) -> dict[str, Any]:
    """The sync family's active daemon, for the plan's `daemon` block."""
    sync = next(lease for lease in report.leases if lease.family == "sync")
    if sync.state == "held" and sync.holder_answers:
        return {
            "active": True,
            "pid": sync.holder_pid,
            "port": sync.port,
            "package_version": sync.version,
            "protocol_version": "tenure/1",
        }
    single = next(
        (
            r
            for fam, r in report.candidates()
            if fam == "sync"
            and r.skip_reason is not None
            and r.skip_reason.value == "is_recorded_singleton"
        ),
        None,
    )
    if single is not None:
        return {
            "active": True,
            "pid": single.pid,
            "port": single.port,
            "package_version": single.package_version,
            "protocol_version": 1,
        }
    return {
        "active": False,
        "pid": None,
        "port": None,
        "package_version": None,
        "protocol_version": None,
    }


def _candidate_json(family: str, rec: DaemonIdentityRecord) -> dict[str, Any]:
    doc = rec.to_json()
    doc["scan_family"] = family
    doc["health_token"] = REDACTED if rec.token_leaked else None
    doc["remediation"] = remediation_for(rec)
    return doc


def to_json(report: DoctorReport) -> dict[str, Any]:
    """The schema_version 3 document (docs/protocol/doctor-json.md)."""
    cands = [_candidate_json(fam, r) for fam, r in report.candidates()]
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": _iso(report.generated_at),
        "root": str(report.root),
        "legacy_root": str(report.legacy_root),
        "daemon": active_daemon(report),
        "orphans": [c for c in cands if c["cleanup_class"] != CleanupClass.NEVER_TOUCH.value],
        "findings": [
            {"id": f.id, "severity": f.severity, "summary": f.summary, "remediation": f.remediation}
            for f in report.findings
        ],
        "leases": [lease_json(lease) for lease in report.leases],
        "candidates": cands,
        "retirements": [
            {
                "family": t.get("family"),
                "pid": t.get("pid"),
                "version": t.get("version"),
                "epoch": t.get("epoch"),
                "reason": t.get("reason"),
                "at": _iso(float(t["at"])) if isinstance(t.get("at"), int | float) else None,
            }
            for t in report.retirements
        ],
        "scan_elapsed_s": {s.family.name: round(s.elapsed_s, 4) for s in report.surveys},
    }
    if report.reset_result is not None:
        doc["reset_result"] = report.reset_result.to_json()
    return doc
