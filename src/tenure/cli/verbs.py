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

from tenure.cli.common import (
    JSON_OPTION,
    LEGACY_ROOT_OPTION,
    QUIET_OPTION,
    ROOT_OPTION,
    SCOPE_OPTION,
)
from tenure.cli.hot import show_status, start_or_restart, stop_family
from tenure.cli.out import (
    EXIT_ATTENTION,
    EXIT_UNKNOWN,
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
from tenure.core.hints import TYPE_CHECKING
from tenure.core.inputs import is_family_name
from tenure.errors import TenureError

if TYPE_CHECKING:
    from tenure.adapters.commands import Recorded
    from tenure.core.record import LeaseScope


def complete_family(incomplete: str) -> list[str]:
    """Shell completion: the families of the root (`--root` is not known yet: TENURE_ROOT or
    the default), those starting with what was typed."""
    from tenure.protocol.leases import family_names  # noqa: PLC0415

    try:
        names = family_names(resolve_root(None))
    except (TenureError, OSError):
        names = list(FAMILIES)
    return [n for n in names if n.startswith(incomplete)]


FAMILY_ARG = typer.Argument(
    ...,
    metavar="FAMILY",
    help="Daemon family: sync, dashboard, or any family in the root.",
    autocompletion=complete_family,
)


def _family(name: str) -> str:
    if not is_family_name(name):
        error(f"{clean(repr(name))} is not a family name")
        raise typer.Exit(EXIT_USAGE)
    return name


def _known(name: str, root: Path | None) -> Path:
    """The root, once `name` is a family of it (built in, or with a lease record in any
    scope); otherwise exit 5 naming the families it has, as systemctl does for no such unit."""
    from tenure.protocol.leases import family_names  # noqa: PLC0415

    try:
        the_root = resolve_root(root)
        names = family_names(the_root) if the_root.is_dir() else list(FAMILIES)
    except (TenureError, OSError) as exc:
        fail(exc, False)
    if name not in names:
        error(f"no family {name!r} in {the_root} (families: {', '.join(names)})")
        raise typer.Exit(EXIT_UNKNOWN)
    return the_root


def status_cmd(
    family: str | None = typer.Argument(
        None,
        metavar="FAMILY",
        help="Daemon family: sync, dashboard, or any family in the root (none: all).",
        autocompletion=complete_family,
    ),
    as_json: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    scope: Path | None = SCOPE_OPTION,
    _quiet: bool = QUIET_OPTION,
) -> None:
    """Show a family's daemon (read-only), or with no family every family of the root (as
    `tenure ls`). Exit 0 only while a live holder renews its lease; 5: no such family."""
    if family is None:
        from tenure.cli.ls import ls_cmd  # noqa: PLC0415

        ls_cmd(as_json=as_json, root=root, legacy_root=None)
        return
    name = _family(family)
    if name in FAMILIES and scope is None:
        show_status(FAMILIES[name], root, as_json)
        return
    from tenure.protocol.report import lease_json, lease_report  # noqa: PLC0415

    the_root = _known(name, root)
    try:
        report = lease_report(the_root, name, time.time(), scope_of(scope))
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
        where += f", scope {report.scope}" if report.scope else ""
        typer.echo(
            clean(
                f"{name} {report.state}: pid {report.holder_pid}, port {report.port or '-'}, "
                f"version {report.version}, epoch {report.epoch}{where}; {lease_timing(doc)}"
            )
        )
    if not running:
        raise typer.Exit(EXIT_ATTENTION)


def stop_cmd(  # noqa: PLR0917  (typer maps each parameter to an option)
    family: str | None = typer.Argument(
        None,
        metavar="FAMILY",
        help="Daemon family: sync, dashboard, or any family in the root.",
        autocompletion=complete_family,
    ),
    every: bool = typer.Option(
        False, "--all", help="Every holder of the root, of every family and scope."
    ),
    only: str | None = typer.Option(
        None, "--family", metavar="F", help="With --all: only this family."
    ),
    as_json: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    scope: Path | None = SCOPE_OPTION,
    _quiet: bool = QUIET_OPTION,
) -> None:
    """Stop a family's daemon: SIGTERM (+SIGCONT), then SIGKILL, each after re-checking the
    holder's recorded identity; a `tenure run` holder ends its whole tree before it leaves.
    `--all` stops every holder of the root (of `--family`, of `--scope`)."""
    if every:
        if family is not None:
            error("give the family with --family when stopping --all")
            raise typer.Exit(EXIT_USAGE)
        _stop_all(root, None if only is None else _family(only), scope, as_json)
        return
    if family is None or only is not None:
        error("name the family to stop, or use --all [--family F]")
        raise typer.Exit(EXIT_USAGE)
    name = _family(family)
    if name in FAMILIES and scope is None:
        stop_family(FAMILIES[name], root, as_json)
        return
    from tenure.requester.ensure import stop  # noqa: PLC0415

    the_root = _known(name, root)
    try:
        pid = stop(name, the_root, scope=scope)
    except (TenureError, OSError) as exc:
        fail(exc, as_json)
    if as_json:
        emit_json({"stopped": pid is not None, "pid": pid})
    elif pid is None:
        typer.echo(f"no {name} daemon running")
    else:
        typer.echo(f"{name} daemon stopped: pid {pid}")


def _stop_all(root: Path | None, family: str | None, scope: Path | None, as_json: bool) -> None:
    from tenure.requester.stopall import stop_all  # noqa: PLC0415

    try:
        done = stop_all(resolve_root(root), family, scope_of(scope))
    except (TenureError, OSError) as exc:
        fail(exc, as_json)
    refused = [d for d in done if not d.stopped]
    if as_json:
        emit_json({"stopped": [d.to_json() for d in done], "refused": len(refused)})
    elif not done:
        typer.echo("no holder running")
    for d in [] if as_json else done:
        where = f" (scope {d.scope})" if d.scope else ""
        said = "stopped" if d.stopped else f"NOT stopped: {d.detail}"
        typer.echo(clean(f"{d.family}{where} {d.version} pid {d.pid}: {said}"))
    if refused:
        raise typer.Exit(EXIT_ATTENTION)


def scope_of(scope: Path | None) -> LeaseScope | None:
    """The scope of `--scope DIR`; a bad one is a usage error (exit 2)."""
    if scope is None:
        return None
    from tenure.requester.ensure import scope_at  # noqa: PLC0415

    try:
        return scope_at(scope)
    except TenureError as exc:
        error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None


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
    the_root = _known(name, root)
    how = _start_command(name, the_root)
    if how is not None:
        from tenure.requester.ensure import stop  # noqa: PLC0415

        try:
            stop(name, the_root)
        except (TenureError, OSError) as exc:
            fail(exc, as_json)
        _start_recorded(name, the_root, how, as_json)
        return
    note(f"no command is recorded for {name}: {NO_COMMAND}")
    error(
        f"cannot restart {name} here: `tenure stop {name}`, and the tool's next command "
        "starts a fresh one (tenure.ensure)"
    )
    raise typer.Exit(EXIT_USAGE)


NO_COMMAND = (
    "it is recorded when tenure.ensure or `tenure run --detach` starts the family (the argv, "
    "working directory, version and ports; never the environment)"
)


def start_cmd(
    family: str = FAMILY_ARG,
    as_json: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    legacy_root: Path | None = LEGACY_ROOT_OPTION,
    _quiet: bool = QUIET_OPTION,
) -> None:
    """Start a family's daemon: a built-in family as `tenure FAMILY start`; any other from the
    command recorded when it was last started (tenure.ensure, `tenure run --detach`)."""
    name = _family(family)
    if name in FAMILIES:
        start_or_restart("start", FAMILIES[name], root, legacy_root, as_json)
        return
    the_root = _known(name, root)
    how = _start_command(name, the_root)
    if how is None:
        error(f"no command is recorded for {name}: {NO_COMMAND}")
        raise typer.Exit(EXIT_ATTENTION)
    _start_recorded(name, the_root, how, as_json)


def _start_command(name: str, root: Path) -> Recorded | None:
    from tenure.adapters.commands import recorded  # noqa: PLC0415

    return recorded(root, name)


def _start_recorded(name: str, root: Path, how: Recorded, as_json: bool) -> None:
    """`tenure.ensure` with the recorded command: reused, started or superseded."""
    from tenure.requester.ensure import ensure  # noqa: PLC0415

    try:
        found = ensure(
            name, how.command, version=how.version, ports=how.ports, root=root, cwd=how.cwd
        )
    except (TenureError, OSError) as exc:
        fail(exc, as_json)
    if as_json:
        emit_json(found.to_json())
    else:
        typer.echo(
            clean(
                f"{name} {found.action}: pid {found.pid}, port {found.port or '-'}, version "
                f"{found.version}"
            )
        )
