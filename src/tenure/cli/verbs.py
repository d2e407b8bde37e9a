"""`tenure status|stop|restart FAMILY`: systemctl's verbs for every family of the root.

A built-in family (sync, dashboard) gets exactly what `tenure <family> <verb>` does; any other
family — a tool's own daemon on `tenure.hold`, a server under `tenure run` — is judged by its
lease record and its holder process (no HTTP to a port without a control plane) and stopped by
verified identity. `restart` needs a family tenure can start itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from tenure.cli.common import JSON_OPTION, LEGACY_ROOT_OPTION, QUIET_OPTION, ROOT_OPTION
from tenure.cli.hot import show_status, start_or_restart, stop_family
from tenure.cli.out import (
    EXIT_ATTENTION,
    EXIT_USAGE,
    clean,
    emit_json,
    error,
    fail,
    lease_timing,
    note,
    resolve_root,
)
from tenure.core.families import FAMILIES
from tenure.core.inputs import is_family_name
from tenure.errors import TenureError

FAMILY_ARG = typer.Argument(..., help="Daemon family: sync, dashboard, or any family in the root.")


def _family(name: str) -> str:
    if not is_family_name(name):
        error(f"{clean(repr(name))} is not a family name")
        raise typer.Exit(EXIT_USAGE)
    return name


def status_cmd(
    family: str = FAMILY_ARG,
    as_json: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    _quiet: bool = QUIET_OPTION,
) -> None:
    """Show a family's daemon (read-only). Exit 0 only while a live holder renews its lease."""
    name = _family(family)
    if name in FAMILIES:
        show_status(FAMILIES[name], root, as_json)
        return
    from tenure.protocol.report import lease_json, lease_report  # noqa: PLC0415

    try:
        the_root = resolve_root(root)
        report = lease_report(the_root, name, time.time())
    except (TenureError, OSError) as exc:
        fail(exc, as_json)
    doc = lease_json(report)
    # Held by a holder not known dead, which (where it has a control plane) answers.
    running = (
        report.state == "held"
        and report.holder_alive is not False
        and report.holder_answers is not False
    )
    if as_json:
        emit_json({**doc, "running": running})
    elif report.state in ("absent", "unreadable"):
        typer.echo(clean(f"no {name} daemon: lease {report.state}"))
    else:
        where = f", lives on {report.lives}" if report.lives else ""
        typer.echo(
            clean(
                f"{name} {report.state}: pid {report.holder_pid}, port {report.port or '-'}, "
                f"version {report.version}, epoch {report.epoch}{where}; {lease_timing(doc)}"
            )
        )
    if not running:
        raise typer.Exit(EXIT_ATTENTION)


def stop_cmd(
    family: str = FAMILY_ARG,
    as_json: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    _quiet: bool = QUIET_OPTION,
) -> None:
    """Stop a family's daemon: SIGTERM (+SIGCONT), then SIGKILL, each after re-checking the
    holder's recorded identity; a `tenure run` holder ends its whole tree before it leaves."""
    name = _family(family)
    if name in FAMILIES:
        stop_family(FAMILIES[name], root, as_json)
        return
    from tenure.requester.ensure import stop  # noqa: PLC0415

    try:
        pid = stop(name, resolve_root(root))
    except (TenureError, OSError) as exc:
        fail(exc, as_json)
    if as_json:
        emit_json({"stopped": pid is not None, "pid": pid})
    elif pid is None:
        typer.echo(f"no {name} daemon running")
    else:
        typer.echo(f"{name} daemon stopped: pid {pid}")


def restart_cmd(
    family: str = FAMILY_ARG,
    as_json: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    legacy_root: Path | None = LEGACY_ROOT_OPTION,
    _quiet: bool = QUIET_OPTION,
) -> None:
    """Stop a family's daemon gracefully, then start a fresh one (families tenure starts)."""
    name = _family(family)
    if name in FAMILIES:
        start_or_restart("restart", FAMILIES[name], root, legacy_root, as_json)
        return
    note(f"tenure starts only its own families ({', '.join(FAMILIES)}); {name}'s tool starts it")
    error(
        f"cannot restart {name} here: `tenure stop {name}`, and the tool's next command "
        "starts a fresh one (tenure.ensure)"
    )
    raise typer.Exit(EXIT_USAGE)
