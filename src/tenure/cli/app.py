"""Root typer app: conventions (-h, -V, bare `tenure` prints help), commands by frequency."""

from __future__ import annotations

import typer
from typer.core import TyperArgument, TyperGroup

from tenure.cli.common import EXIT_CODES_HELP, examples
from tenure.core.hints import TYPE_CHECKING
from tenure.version import current_version

if TYPE_CHECKING:
    from typing import Any

# How often people reach for each command: the help lists them in this order.
ORDER = (
    "sync",
    "dashboard",
    "ls",
    "status",
    "logs",
    "start",
    "stop",
    "restart",
    "doctor",
    "auth",
    "run",
    "demo",
    "conformance",
)
VERBS = ("start", "status", "stop", "restart", "logs")


class ByUse(TyperGroup):
    """Lists subcommands by how often they are used, not alphabetically or by kind."""

    def list_commands(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        names = list(super().list_commands(ctx))
        return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))

    # Typed loosely: typer vendors its own click in recent versions and uses click before.
    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """`tenure redis stop` (docker's and systemctl's order reversed) is answered with the
        command that exists, in one line."""
        if len(args) >= 2 and args[1] in VERBS and self.get_command(ctx, args[0]) is None:
            ctx.fail(f"No such command {args[0]!r}. Did you mean 'tenure {args[1]} {args[0]}'?")
        return super().resolve_command(ctx, args)


def _named_only(param: Any, ctx: Any) -> str | None:
    """An argument with a metavar (`FAMILY`) shows only it: no `<str>` after it."""
    return None if param.metavar else _TYPE_SHOWN(param, ctx)


# Typer (0.29) appends a `<type>` placeholder to every argument in help; our arguments name
# themselves (the README's promise: help without placeholders).
_TYPE_SHOWN = TyperArgument.display_type_rich
TyperArgument.display_type_rich = _named_only  # type: ignore[method-assign,assignment]

app = typer.Typer(
    cls=ByUse,
    name="tenure",
    help="Local background daemons that govern themselves: leases, heartbeats, self-retirement.",
    epilog=EXIT_CODES_HELP,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tenure {current_version()}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        callback=_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """tenure: make a tool's local daemons govern themselves."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


def _register() -> None:
    # Ordered by how often people reach for them.
    from tenure.cli.conformance import CONFORMANCE_EPILOG, conformance_cmd  # noqa: PLC0415
    from tenure.cli.daemons import family_app, logs_cmd  # noqa: PLC0415
    from tenure.cli.demo import demo_cmd  # noqa: PLC0415
    from tenure.cli.doctor import DOCTOR_EPILOG, auth_app, doctor_cmd  # noqa: PLC0415
    from tenure.cli.ls import ls_cmd  # noqa: PLC0415
    from tenure.cli.run import RUN_EPILOG, run_cmd  # noqa: PLC0415
    from tenure.cli.verbs import restart_cmd, start_cmd, status_cmd, stop_cmd  # noqa: PLC0415
    from tenure.core.families import DASHBOARD, SYNC  # noqa: PLC0415

    app.add_typer(family_app(SYNC), name="sync")
    app.command("ls", epilog=examples("tenure ls", "tenure ls --json"))(ls_cmd)
    app.command(
        "logs",
        epilog=examples("tenure logs sync", "tenure logs sync -n 100", "tenure logs sync -f"),
    )(logs_cmd)
    app.command(
        "status", epilog=examples("tenure status", "tenure status sync", "tenure status web --json")
    )(status_cmd)
    app.command("start", epilog=examples("tenure start sync", "tenure start web"))(start_cmd)
    app.command("stop", epilog=examples("tenure stop sync", "tenure stop indexer"))(stop_cmd)
    app.command("restart", epilog=examples("tenure restart sync"))(restart_cmd)
    app.add_typer(family_app(DASHBOARD), name="dashboard")
    app.command(
        "doctor",
        help="Same as `tenure auth doctor`, where the full command lives (daemon hygiene).",
        epilog=DOCTOR_EPILOG,
    )(doctor_cmd)
    app.add_typer(auth_app, name="auth")
    app.command(
        "run",
        epilog=RUN_EPILOG,
        options_metavar="[OPTIONS] -- CMD [ARGS]...",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(run_cmd)
    app.command(
        "demo", epilog=examples("tenure demo", "tenure demo --json", "tenure demo --pace 2")
    )(demo_cmd)
    app.command(
        "conformance",
        epilog=CONFORMANCE_EPILOG,
        options_metavar="[OPTIONS] -- CMD [ARGS]...",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(conformance_cmd)


_register()
