"""`tenure auth doctor [--reset [--force]] [--json]`."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tenure.cli.common import (
    EXIT_ATTENTION,
    EXIT_OK,
    EXIT_USAGE,
    JSON_OPTION,
    ROOT_OPTION,
    note,
    resolve_root,
)

if TYPE_CHECKING:
    from tenure.classify import DaemonIdentityRecord
    from tenure.doctor import DoctorReport
    from tenure.reaper import ReapResult

auth_app = typer.Typer(
    help="Daemon hygiene: inspect and clean up the daemons of this user.", no_args_is_help=True
)

LEGACY_ROOT_OPTION = typer.Option(
    None,
    "--legacy-root",
    help="Legacy spec-kitty root (default: $SPEC_KITTY_HOME or ~/.spec-kitty).",
)


@auth_app.command("doctor")
def doctor_cmd(
    reset: bool = typer.Option(
        False, "--reset", help="Clean safe_auto daemons (and confirmed operator_required)."
    ),
    force: bool = typer.Option(
        False, "--force", help="With --reset: also clean operator_required daemons."
    ),
    as_json: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    legacy_root: Path | None = LEGACY_ROOT_OPTION,
) -> None:
    """Show leases and every daemon in the families' port ranges; with --reset, clean up."""
    if force and not reset:
        note("error: --force only makes sense with --reset")
        raise typer.Exit(EXIT_USAGE)
    from tenure import doctor, engine  # noqa: PLC0415  (keeps `tenure --help` fast)

    the_root = resolve_root(root).expanduser()
    legacy = engine.legacy_root(legacy_root)
    report = doctor.gather(the_root, legacy)
    if reset:
        result, pending = _reset(report, the_root, force)
        report = doctor.gather(the_root, legacy)
        report.reset_result = result
        if pending:
            listed = ", ".join(f"port {r.port} (pid {r.pid}, {r.skip_reason})" for r in pending)
            note(
                f"skipped operator_required: {listed}. "
                "To clean them: tenure auth doctor --reset --force"
            )
    if as_json:
        sys.stdout.write(json.dumps(doctor.to_json(report), sort_keys=True) + "\n")
    else:
        render(report)
    raise typer.Exit(EXIT_ATTENTION if report.needs_attention() else EXIT_OK)


def _reset(
    report: DoctorReport, root: Path, force: bool
) -> tuple[ReapResult, list[DaemonIdentityRecord]]:
    """Run the reaper on every family; return the result and operator_required left alone."""
    from tenure.classify import CleanupClass  # noqa: PLC0415
    from tenure.reaper import ReapResult, reap  # noqa: PLC0415

    interactive = not force and sys.stdin.isatty()
    pending: list[DaemonIdentityRecord] = []

    def ask(rec: DaemonIdentityRecord) -> bool:
        if force:
            return True
        if interactive:
            evidence = "; ".join(rec.evidence)
            return typer.confirm(
                f"Clean {rec.daemon_family or 'unknown'} daemon on port {rec.port} "
                f"(pid {rec.pid}, {rec.skip_reason}: {evidence})?",
                default=False,
                err=True,
            )
        pending.append(rec)
        return False

    result = ReapResult()
    for found in report.surveys:
        operator = [r for r in found.records if r.cleanup_class is CleanupClass.OPERATOR_REQUIRED]
        if operator or any(r.cleanup_class is CleanupClass.SAFE_AUTO for r in found.records):
            note(f"resetting {found.family.name}: {len(found.records)} listeners")
        result.extend(reap(found.records, found.family, root, allow_operator=ask))
    return result, pending


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if abs(seconds) < 120 else f"{seconds / 60:.0f}m"


def render(report: DoctorReport) -> None:
    """Rich tables on stdout; Rich drops colour itself for NO_COLOR and non-terminals."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from tenure.doctor import remediation_for  # noqa: PLC0415

    probe = Console(file=sys.stdout)
    # Off a terminal Rich assumes 80 columns unless COLUMNS says otherwise; tables need more.
    wide = probe.is_terminal or "COLUMNS" in os.environ
    console = Console(file=sys.stdout, width=None if wide else 160)
    console.print(f"tenure auth doctor — root {report.root} — legacy root {report.legacy_root}")

    leases = Table(title="Leases", title_justify="left")
    for col in (
        "family",
        "state",
        "holder pid",
        "port",
        "version",
        "epoch",
        "renewed",
        "expires in",
        "superseded by",
        "answers",
    ):
        leases.add_column(col)
    for lease in report.leases:
        sup = lease.superseded_by
        leases.add_row(
            lease.family,
            lease.state
            if lease.state != "unreadable"
            else f"unreadable ({lease.unreadable_reason})",
            str(lease.holder_pid or "-"),
            str(lease.port or "-"),
            lease.version or "-",
            str(lease.epoch if lease.epoch is not None else "-"),
            f"{_ago(lease.renewed_ago_s)} ago" if lease.renewed_ago_s is not None else "-",
            _ago(lease.expires_in_s),
            f"{sup['version']} (pid {sup['pid']})" if sup else "-",
            {True: "yes", False: "NO", None: "-"}[lease.holder_answers],
        )
    console.print(leases)

    daemons = Table(title="Daemons in the families' port ranges", title_justify="left")
    for col in ("port", "family", "pid", "version", "governance", "class", "reason", "remediation"):
        daemons.add_column(col)
    for _family, rec in report.candidates():
        daemons.add_row(
            str(rec.port),
            rec.daemon_family or "?",
            str(rec.pid or "-"),
            rec.package_version or "-",
            rec.governance.value,
            rec.cleanup_class.value,
            rec.skip_reason.value if rec.skip_reason else "-",
            remediation_for(rec) or "-",
        )
    if not report.candidates():
        console.print("Daemons: no listener in either family's port range")
    else:
        console.print(daemons)

    if report.retirements:
        stones = Table(title="Recent retirements", title_justify="left")
        for col in ("when", "family", "pid", "version", "epoch", "reason"):
            stones.add_column(col)
        for t in reversed(report.retirements):
            at = t.get("at")
            when = (
                time.strftime("%H:%M:%S", time.localtime(at))
                if isinstance(at, int | float)
                else "?"
            )
            stones.add_row(
                when,
                str(t.get("family")),
                str(t.get("pid")),
                str(t.get("version")),
                str(t.get("epoch")),
                str(t.get("reason")),
            )
        console.print(stones)

    if report.reset_result is not None:
        res = Table(title="Reset", title_justify="left")
        for col in ("outcome", "pid", "port", "detail"):
            res.add_column(col)
        for s in report.reset_result.swept:
            res.add_row(
                "swept",
                str(s.pid),
                str(s.port),
                f"{s.cleanup_path} ({s.reason}, {s.package_version})",
            )
        for k in report.reset_result.skipped:
            res.add_row(
                "skipped",
                str(k.pid or "-"),
                str(k.port),
                f"{k.cleanup_class}: {k.skip_reason or '-'}",
            )
        for fail in report.reset_result.failed:
            res.add_row("failed", str(fail.pid or "-"), str(fail.port), fail.failure_reason)
        console.print(res)
        r = report.reset_result
        console.print(
            f"reset: swept {len(r.swept)}, skipped {len(r.skipped)}, failed {len(r.failed)}"
        )

    if report.findings:
        findings = Table(title="Findings", title_justify="left")
        for col in ("severity", "id", "summary", "fix"):
            findings.add_column(col)
        for f in report.findings:
            findings.add_row(f.severity, f.id, f.summary, f.remediation)
        console.print(findings)
    else:
        console.print("Findings: none — nothing needs attention")
