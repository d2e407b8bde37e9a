"""`tenure sync|dashboard start|status|stop|restart` and `tenure logs FAMILY`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from tenure.cli.common import (
    EXIT_ATTENTION,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    JSON_OPTION,
    LEGACY_ROOT_OPTION,
    QUIET_OPTION,
    ROOT_OPTION,
    clean,
    emit_json,
    error,
    examples,
    fail,
    note,
    resolve_root,
)
from tenure.core.families import Family
from tenure.core.inputs import is_family_name
from tenure.errors import TenureError
from tenure.version import checked_version

if TYPE_CHECKING:
    from tenure.runtime.launcher import DaemonInfo
    from tenure.runtime.supervise import Status


def _human(info: DaemonInfo, family: str) -> str:
    return clean(
        f"{family} daemon {info.action}: pid {info.pid}, {info.url}, "
        f"version {info.version}, epoch {info.epoch}"
    )


def _reaper_lines(info: DaemonInfo, family: str) -> list[str]:
    """What the holder's startup reaper did, for a human reader."""
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


def start_or_restart(
    what: str, family: Family, root: Path | None, legacy_root: Path | None, as_json: bool
) -> None:
    """`start` or `restart`: run it, then print the daemon, its reaper's work and its log."""
    # Imported here: `tenure --help` stays fast.
    from tenure.runtime import launcher, supervise  # noqa: PLC0415

    operation = launcher.start if what == "start" else supervise.restart
    try:
        the_root = resolve_root(root)
        info = operation(family, the_root, checked_version(), note, legacy_root)
    except (TenureError, OSError) as exc:
        fail(exc, as_json)
    _print_started(info, family.name, the_root, as_json)


def _print_started(info: DaemonInfo, family: str, root: Path, as_json: bool) -> None:
    from tenure.adapters.store import log_path  # noqa: PLC0415

    if as_json:
        emit_json({**info.to_json(), "log": str(log_path(root, family))})
        return
    typer.echo(_human(info, family))
    if info.action != "reused":
        for line in _reaper_lines(info, family):
            note(line)
    note(f"log: {log_path(root, family)}  (tenure logs {family})")


def _print_status(st: Status, name: str, as_json: bool) -> None:
    if as_json:
        emit_json(st.to_json())
    elif st.info is not None:
        typer.echo(_human(st.info, name))
        typer.echo(f"log: {clean(st.log)}")
        for line in _reaper_lines(st.info, name):
            typer.echo(clean(line))
    elif st.state == "foreign":
        typer.echo(
            f"{name} daemon pid {st.pid} holds the lease (epoch {st.epoch}) from elsewhere "
            f"({clean(st.lives)}); tenure never signals it from here"
        )
    elif st.state == "not_answering":
        typer.echo(
            f"{name} daemon pid {st.pid} holds the lease (epoch {st.epoch}, port "
            f"{st.port}) but does not answer; its lease expires in {st.expires_in_s}s"
        )
    else:
        typer.echo(f"no {name} daemon running")


def show_status(family: Family, root: Path | None, as_json: bool) -> None:
    """`tenure <family> status` / `tenure status <family>` for a built-in family."""
    from tenure.runtime import supervise  # noqa: PLC0415  (keeps --help fast)

    try:
        st = supervise.status(family, resolve_root(root))
    except (TenureError, OSError) as exc:
        fail(exc, as_json)
    _print_status(st, family.name, as_json)
    if st.state != "running":
        raise typer.Exit(EXIT_ATTENTION)


def stop_family(family: Family, root: Path | None, as_json: bool) -> None:
    """`tenure <family> stop` / `tenure stop <family>` for a built-in family."""
    from tenure.runtime import supervise  # noqa: PLC0415  (keeps --help fast)

    try:
        info = supervise.stop(family, resolve_root(root), notify=note)
    except (TenureError, OSError) as exc:
        fail(exc, as_json)
    if as_json:
        emit_json({"stopped": info is not None, "daemon": None if info is None else info.to_json()})
    elif info is None:
        typer.echo(f"no {family.name} daemon running")
    else:
        typer.echo(_human(info, family.name))


def family_app(family: Family) -> typer.Typer:
    """The start/status/stop/restart sub-app for one family."""
    name = family.name
    sub = typer.Typer(
        help=f"The {name} daemon (ports {family.lo}..{family.hi - 1}).",
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @sub.command("start", epilog=examples(f"tenure {name} start", f"tenure {name} start --json"))
    def start_cmd(
        as_json: bool = JSON_OPTION,
        root: Path | None = ROOT_OPTION,
        legacy_root: Path | None = LEGACY_ROOT_OPTION,
        _quiet: bool = QUIET_OPTION,
    ) -> None:
        """Ensure exactly one healthy daemon for this root and print it."""
        start_or_restart("start", family, root, legacy_root, as_json)

    @sub.command("status", epilog=examples(f"tenure {name} status", f"tenure {name} status --json"))
    def status_cmd(
        as_json: bool = JSON_OPTION,
        root: Path | None = ROOT_OPTION,
        _quiet: bool = QUIET_OPTION,
    ) -> None:
        """Show the daemon's state (read-only). Exit 1 unless it runs and answers."""
        show_status(family, root, as_json)

    @sub.command("stop", epilog=examples(f"tenure {name} stop", f"tenure {name} stop --json"))
    def stop_cmd(
        as_json: bool = JSON_OPTION,
        root: Path | None = ROOT_OPTION,
        _quiet: bool = QUIET_OPTION,
    ) -> None:
        """Stop the daemon (authenticated shutdown; a wedged one by verified SIGTERM/SIGKILL)."""
        stop_family(family, root, as_json)

    @sub.command(
        "restart", epilog=examples(f"tenure {name} restart", f"tenure {name} restart --json")
    )
    def restart_cmd(
        as_json: bool = JSON_OPTION,
        root: Path | None = ROOT_OPTION,
        legacy_root: Path | None = LEGACY_ROOT_OPTION,
        _quiet: bool = QUIET_OPTION,
    ) -> None:
        """Stop the daemon gracefully, then start a fresh one (the epoch goes up)."""
        start_or_restart("restart", family, root, legacy_root, as_json)

    return sub


def logs_cmd(
    family: str = typer.Argument(..., help="Daemon family, e.g. sync or dashboard."),
    lines: int = typer.Option(20, "--lines", "-n", min=0, help="How many lines to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
    root: Path | None = ROOT_OPTION,
    _quiet: bool = QUIET_OPTION,
) -> None:
    """Show a daemon's log (rotated file included); -f follows it until Ctrl-C."""
    from tenure.adapters.logview import LogFollower, last_lines  # noqa: PLC0415

    if not is_family_name(family):
        error(f"{clean(repr(family))} is not a family name")
        raise typer.Exit(EXIT_USAGE)
    from tenure.adapters.store import log_path  # noqa: PLC0415

    the_root = resolve_root(root)
    path = log_path(the_root, family)
    if not (os.path.lexists(path) or os.path.lexists(f"{path}.1")):
        error(f"no {family} log in {the_root}: no {family} daemon has run with this root")
        raise typer.Exit(EXIT_ATTENTION)
    for line in last_lines(the_root, family, lines):
        typer.echo(clean(line))
    if not follow:
        return
    follower = LogFollower(the_root, family)
    note(f"following {follower.path} (Ctrl-C to stop)")
    try:
        while True:
            for line in follower.new_lines():
                typer.echo(clean(line))
            time.sleep(0.2)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None
