"""Root typer app and global options."""

from __future__ import annotations

import typer

from tenure.version import current_version

app = typer.Typer(
    name="tenure",
    help="Local background daemons that govern themselves: leases, heartbeats, self-retirement.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(current_version())
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """tenure: make a tool's local daemons govern themselves."""


def _register() -> None:
    from tenure.cli.daemons import family_app  # noqa: PLC0415  (keeps `app` importable first)
    from tenure.cli.demo import demo_cmd  # noqa: PLC0415
    from tenure.cli.doctor import auth_app  # noqa: PLC0415
    from tenure.families import DASHBOARD, SYNC  # noqa: PLC0415

    app.add_typer(family_app(SYNC), name="sync")
    app.add_typer(auth_app, name="auth")
    app.command("demo")(demo_cmd)
    app.add_typer(family_app(DASHBOARD), name="dashboard")


_register()
