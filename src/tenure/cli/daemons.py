"""`tenure sync|dashboard start|status|stop`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tenure.cli.common import (
    EXIT_ATTENTION,
    JSON_OPTION,
    ROOT_OPTION,
    clean,
    emit_json,
    fail,
    note,
    resolve_root,
)
from tenure.errors import TenureError
from tenure.families import Family
from tenure.version import checked_version

if TYPE_CHECKING:
    from tenure.client import DaemonInfo


def _human(info: DaemonInfo, family: str) -> str:
    return clean(
        f"{family} daemon {info.action}: pid {info.pid}, {info.url}, "
        f"version {info.version}, epoch {info.epoch}"
    )


def _reaper_lines(info: DaemonInfo, family: str) -> list[str]:
    """What the holder's startup reaper did, for a human reader (stderr)."""
    reaper = info.startup_reaper or {}
    state = reaper.get("state")
    if state == "pending":
        return [
            f"startup reaper: still running; `tenure {family} status` shows its result "
            "(and the daemon log)"
        ]
    if state == "failed":
        return ["startup reaper: failed; see the daemon log"]
    if state != "done":
        return []
    lines = []
    for s in reaper.get("swept", []):
        lines.append(
            f"startup reaper: stopped stale {s.get('package_version') or 'legacy'} daemon "
            f"pid {s.get('pid')} on port {s.get('port')} ({s.get('cleanup_path')})"
        )
    skipped, failed = reaper.get("skipped", []), reaper.get("failed", [])
    if skipped:
        ports = ", ".join(str(k.get("port")) for k in skipped)
        lines.append(
            f"startup reaper: left {len(skipped)} for an operator (port {ports}): "
            "tenure auth doctor"
        )
    for f in failed:
        lines.append(
            f"startup reaper: could not stop pid {f.get('pid')} on port {f.get('port')}: "
            f"{f.get('failure_reason')}"
        )
    return lines or ["startup reaper: nothing to clean"]


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
            info = client.start(family, resolve_root(root), checked_version(), notify=note)
        except (TenureError, OSError) as exc:
            fail(exc, as_json)
        if as_json:
            emit_json(info.to_json())
        else:
            typer.echo(_human(info, family.name))
            if info.action != "reused":
                for line in _reaper_lines(info, family.name):
                    note(line)

    @sub.command("status")
    def status_cmd(as_json: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
        """Show the daemon's state (read-only). Exit 1 unless it runs and answers."""
        from tenure import client  # noqa: PLC0415

        try:
            st = client.status(family, resolve_root(root))
        except (TenureError, OSError) as exc:
            fail(exc, as_json)
        if as_json:
            emit_json(st.to_json())
        elif st.info is not None:
            typer.echo(_human(st.info, family.name))
            typer.echo(f"log: {clean(st.log)}")
            for line in _reaper_lines(st.info, family.name):
                typer.echo(clean(line))
        elif st.state == "not_answering":
            typer.echo(
                f"{family.name} daemon pid {st.pid} holds the lease (epoch {st.epoch}, port "
                f"{st.port}) but does not answer; its lease expires in {st.expires_in_s}s"
            )
        else:
            typer.echo(f"no {family.name} daemon running")
        if st.state != "running":
            raise typer.Exit(EXIT_ATTENTION)

    @sub.command("stop")
    def stop_cmd(as_json: bool = JSON_OPTION, root: Path | None = ROOT_OPTION) -> None:
        """Stop the daemon (authenticated shutdown; a wedged one by verified SIGTERM/SIGKILL)."""
        from tenure import client  # noqa: PLC0415

        try:
            info = client.stop(family, resolve_root(root), notify=note)
        except (TenureError, OSError) as exc:
            fail(exc, as_json)
        if as_json:
            emit_json(
                {"stopped": info is not None, "daemon": None if info is None else info.to_json()}
            )
        elif info is None:
            typer.echo(f"no {family.name} daemon running")
        else:
            typer.echo(_human(info, family.name))

    return sub
