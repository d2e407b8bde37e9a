"""`tenure sync|dashboard start|status|stop|restart` and `tenure logs FAMILY`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from tenure.cli.common import (
    JSON_OPTION,
    LEGACY_ROOT_OPTION,
    QUIET_OPTION,
    ROOT_OPTION,
    SCOPE_OPTION,
    examples,
)
from tenure.cli.hot import show_status, start_or_restart, stop_family
from tenure.cli.out import (
    EXIT_ATTENTION,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    clean,
    error,
    note,
    resolve_root,
)
from tenure.core.families import Family
from tenure.core.hints import TYPE_CHECKING
from tenure.core.inputs import is_family_name

if TYPE_CHECKING:
    from tenure.core.record import LeaseScope


PROJECT_OPTION = typer.Option(
    None,
    "--project",
    metavar="DIR",
    help="The project whose dashboard this is (one per project; dashboard only). Without "
    "it, the user's one dashboard.",
)


def project_scope(family: Family, project: Path | None) -> LeaseScope | None:
    """The scope of `--project DIR`: dashboards are per project, the sync daemon per user."""
    if project is None:
        return None
    if family.name != "dashboard":
        error(f"the {family.name} daemon is per user: --project is for the dashboard")
        raise typer.Exit(EXIT_USAGE)
    from tenure.cli.verbs import scope_of  # noqa: PLC0415

    return scope_of(project)


def family_app(family: Family) -> typer.Typer:
    """The start/status/stop/restart sub-app for one family."""
    name = family.name
    sub = typer.Typer(
        help=f"The {name} daemon (ports {family.lo}..{family.hi}).",
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @sub.command("start", epilog=examples(f"tenure {name} start", f"tenure {name} start --json"))
    def start_cmd(
        as_json: bool = JSON_OPTION,
        root: Path | None = ROOT_OPTION,
        legacy_root: Path | None = LEGACY_ROOT_OPTION,
        project: Path | None = PROJECT_OPTION,
        _quiet: bool = QUIET_OPTION,
    ) -> None:
        """Ensure exactly one healthy daemon for this root (and project) and print it."""
        scope = project_scope(family, project)
        start_or_restart("start", family, root, legacy_root, as_json, scope)

    @sub.command("status", epilog=examples(f"tenure {name} status", f"tenure {name} status --json"))
    def status_cmd(
        as_json: bool = JSON_OPTION,
        root: Path | None = ROOT_OPTION,
        project: Path | None = PROJECT_OPTION,
        _quiet: bool = QUIET_OPTION,
    ) -> None:
        """Show the daemon's state (read-only). Exit 1 unless it runs and answers."""
        show_status(family, root, as_json, project_scope(family, project))

    @sub.command("stop", epilog=examples(f"tenure {name} stop", f"tenure {name} stop --json"))
    def stop_cmd(
        as_json: bool = JSON_OPTION,
        root: Path | None = ROOT_OPTION,
        project: Path | None = PROJECT_OPTION,
        _quiet: bool = QUIET_OPTION,
    ) -> None:
        """Stop the daemon (authenticated shutdown; a wedged one by verified SIGTERM/SIGKILL)."""
        stop_family(family, root, as_json, project_scope(family, project))

    @sub.command(
        "restart", epilog=examples(f"tenure {name} restart", f"tenure {name} restart --json")
    )
    def restart_cmd(
        as_json: bool = JSON_OPTION,
        root: Path | None = ROOT_OPTION,
        legacy_root: Path | None = LEGACY_ROOT_OPTION,
        project: Path | None = PROJECT_OPTION,
        _quiet: bool = QUIET_OPTION,
    ) -> None:
        """Stop the daemon gracefully, then start a fresh one (the epoch goes up)."""
        scope = project_scope(family, project)
        start_or_restart("restart", family, root, legacy_root, as_json, scope)

    return sub


def _families(incomplete: str) -> list[str]:
    from tenure.cli.verbs import complete_family  # noqa: PLC0415

    return complete_family(incomplete)


def logs_cmd(  # noqa: PLR0917  (typer maps each parameter to an option)
    family: str = typer.Argument(
        ..., metavar="FAMILY", help="Daemon family, e.g. sync or web.", autocompletion=_families
    ),
    lines: int = typer.Option(20, "--lines", "-n", metavar="N", help="How many lines to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    since: str | None = typer.Option(
        None, "--since", metavar="DURATION", help="Only lines of the last 90s, 10m, 2h or 1d."
    ),
    root: Path | None = ROOT_OPTION,
    scope: Path | None = SCOPE_OPTION,
    _quiet: bool = QUIET_OPTION,
) -> None:
    """Show a daemon's log (rotated file included); -f follows it until Ctrl-C."""
    from tenure.adapters.logview import LogFollower, last_lines  # noqa: PLC0415

    if not is_family_name(family):
        error(f"{clean(repr(family))} is not a family name")
        raise typer.Exit(EXIT_USAGE)
    from tenure.adapters.store import log_path  # noqa: PLC0415
    from tenure.core.inputs import parse_duration  # noqa: PLC0415
    from tenure.errors import ConfigError  # noqa: PLC0415

    if lines < 0:
        error("--lines must be 0 or more")
        raise typer.Exit(EXIT_USAGE)
    try:
        after = None if since is None else time.time() - parse_duration(since)
    except ConfigError as exc:
        error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    the_root = resolve_root(root)
    key = family
    if scope is not None:
        from tenure.cli.verbs import scope_of  # noqa: PLC0415
        from tenure.core.inputs import lease_key  # noqa: PLC0415

        where = scope_of(scope)
        key = lease_key(family, None if where is None else where.digest)
    path = log_path(the_root, key)
    if not (os.path.lexists(path) or os.path.lexists(f"{path}.1")):
        error(f"no {family} log in {the_root}: no {family} holder has run with this root")
        raise typer.Exit(EXIT_ATTENTION)
    for line in last_lines(the_root, key, lines, after):
        typer.echo(clean(line))
    if not follow:
        return
    follower = LogFollower(the_root, key)
    note(f"following {follower.path} (Ctrl-C to stop)")
    try:
        while True:
            for line in follower.new_lines():
                typer.echo(clean(line))
            time.sleep(0.2)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
