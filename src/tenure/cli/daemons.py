"""`tenure sync|dashboard start|status|stop`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tenure.cli.common import (
    EXIT_ATTENTION,
    JSON_OPTION,
    ROOT_OPTION,
    emit_json,
    fail,
    note,
    resolve_root,
)
from tenure.errors import TenureError
from tenure.families import Family
from tenure.version import current_version

if TYPE_CHECKING:
    from tenure.client import DaemonInfo


def _human(info: DaemonInfo, family: str) -> str:
    return (
        f"{family} daemon {info.action}: pid {info.pid}, {info.url}, "
        f"version {info.version}, epoch {info.epoch}"
    )


def family_app(family: Family) -> typer.Typer:
    """The start/status/stop sub-app for one family."""
    sub = typer.Typer(
        help=f"The {family.name} daemon (ports {family.lo}..{family.hi - 1}).", no_args_is_help=True
    )

    @sub.command("start")
    def start_cmd(as_json: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
        """Ensure exactly one healthy daemon for this root and print it."""
        from tenure import client  # noqa: PLC0415  (keeps `tenure --help` fast)

        try:
            info = client.start(family, resolve_root(root), current_version(), notify=note)
        except (TenureError, ValueError) as exc:
            fail(exc if isinstance(exc, TenureError) else TenureError(str(exc)), as_json)
        if as_json:
            emit_json(info.to_json())
        else:
            typer.echo(_human(info, family.name))

    @sub.command("status")
    def status_cmd(as_json: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
        """Show the running daemon, if any (read-only). Exit 1 when none runs."""
        from tenure import client  # noqa: PLC0415

        info = client.status(family, resolve_root(root))
        _report(info, "running", family.name, as_json)
        if info is None:
            raise typer.Exit(EXIT_ATTENTION)

    @sub.command("stop")
    def stop_cmd(as_json: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
        """Stop the running daemon (authenticated shutdown) and wait until its pid is gone."""
        from tenure import client  # noqa: PLC0415

        try:
            info = client.stop(family, resolve_root(root))
        except TenureError as exc:
            fail(exc, as_json)
        _report(info, "stopped", family.name, as_json)

    return sub


def _report(info: DaemonInfo | None, key: str, family: str, as_json: bool) -> None:
    """Print a status/stop result: `{key: bool, daemon: …}` as JSON, or one human line."""
    if as_json:
        emit_json({key: info is not None, "daemon": None if info is None else info.to_json()})
    elif info is None:
        typer.echo(f"no {family} daemon running")
    else:
        typer.echo(_human(info, family))
