"""What each row of the doctor's human output says, whatever the layout (tables or blocks).

Text from outside is wrapped as plain `Text` and stripped of control characters.
"""

from __future__ import annotations

import time

from tenure.cli.out import STYLES, clean, lease_timing
from tenure.core.hints import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

    from tenure.core.classify import DaemonIdentityRecord
    from tenure.hygiene.doctor import DoctorReport
    from tenure.protocol.report import LeaseReport


def text(value: object, styled: bool = False) -> Text:
    """Outside text as a Rich Text: no markup, no control characters. `styled`: in the colour
    of its first word (a state, a class, a severity: `STYLES`), where the console has colour."""
    from rich.text import Text  # noqa: PLC0415

    shown = clean("-" if value is None else value)
    style = STYLES.get(shown.split(" ", 1)[0], "") if styled else ""
    return Text(shown, style=style)


def home_short(path: str) -> str:
    """`path` with the home directory shown as `~`."""
    import os.path  # noqa: PLC0415

    home = os.path.expanduser("~")
    return "~" + path[len(home) :] if path == home or path.startswith(home + "/") else path


def lease_cells(lease: LeaseReport) -> list[str]:
    from tenure.protocol.report import lease_json  # noqa: PLC0415

    sup = lease.superseded_by
    state: str = lease.state
    if state == "unreadable":
        state = f"unreadable ({lease.unreadable_reason})"
    if lease.lives is not None:
        state = f"foreign ({lease.lives})"
    if state == "expired" and lease.holder_alive is False:
        state = "expired (holder dead)"
    held = lease.state in ("held", "expired", "foreign")
    if lease.holder_answers is None:
        # Not asked: no control port (a `tenure.hold` daemon, a `tenure run` child) or not held.
        answers = "n/a (no control port)" if held and lease.holder_alive else "-"
    else:
        answers = "yes" if lease.holder_answers else "NO"
    return [
        lease.family if lease.scope is None else f"{lease.family} ({home_short(lease.scope)})",
        state,
        str(lease.holder_pid or "-"),
        str(lease.port or "-"),
        lease.version or "-",
        str(lease.epoch if lease.epoch is not None else "-"),
        lease_timing(lease_json(lease)) or "-",
        f"{sup['version']} (pid {sup['pid']})" if sup else "-",
        answers,
    ]


def when(at: object) -> str:
    return (
        time.strftime("%H:%M:%S", time.localtime(float(at))) if isinstance(at, int | float) else "?"
    )


def daemon_cells(rec: DaemonIdentityRecord) -> list[str]:
    from tenure.core.findings import remediation_for  # noqa: PLC0415

    return [
        str(rec.port),
        rec.daemon_family or "?",
        str(rec.pid or "-"),
        rec.package_version or "-",
        rec.governance.value,
        rec.cleanup_class.value,
        rec.skip_reason.value if rec.skip_reason else "-",
        remediation_for(rec) or "-",
    ]


def reset_rows(report: DoctorReport) -> list[tuple[str, str, str, str]]:
    res = report.reset_result
    assert res is not None
    rows = [
        (
            "swept",
            str(s.pid),
            str(s.port),
            f"{s.cleanup_path} ({s.reason}"
            + (f", version {s.package_version})" if s.package_version else ")"),
        )
        for s in res.swept
    ]
    rows += [
        ("skipped", str(k.pid or "-"), str(k.port), f"{k.cleanup_class}: {k.skip_reason or '-'}")
        for k in res.skipped
    ]
    rows += [("failed", str(f.pid or "-"), str(f.port), f.failure_reason) for f in res.failed]
    return rows


def reset_summary(report: DoctorReport) -> str:
    r = report.reset_result
    assert r is not None
    return f"reset: swept {len(r.swept)}, skipped {len(r.skipped)}, failed {len(r.failed)}"
