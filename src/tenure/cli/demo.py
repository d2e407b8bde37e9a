"""`tenure demo`: render the demo's story with Rich, or print its JSON summary."""

from __future__ import annotations

import json
import signal
import sys

import typer

from tenure.adapters import platform
from tenure.cli.common import JSON_OPTION
from tenure.cli.out import EXIT_USAGE, error, note
from tenure.core import schemas
from tenure.core.hints import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

MAX_PACE_S = 60.0  # a pause longer than this is a typo, not a presentation


class StopSignal(BaseException):
    """SIGTERM or SIGHUP arrived: unwind like Ctrl-C so the demo's cleanup runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name


def _stop_signal(signum: int, _frame: object) -> None:
    # A second signal must not cut the cleanup short.
    for other in platform.STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise StopSignal(signum)


def demo_cmd(
    as_json: bool = JSON_OPTION,
    pace: float = typer.Option(
        0.0, "--pace", metavar="S", help="Seconds to pause after each act (0 or more)."
    ),
) -> None:
    """Show tenure end to end in a temporary root: leases, supersession, takeover, cleanup."""
    if not 0 <= pace <= MAX_PACE_S:
        error(f"--pace must be 0 to {MAX_PACE_S:g} seconds")
        raise typer.Exit(EXIT_USAGE)
    from rich.table import Table  # noqa: PLC0415

    from tenure.cli.render import render, stdout_console  # noqa: PLC0415
    from tenure.demo import scenario as demo  # noqa: PLC0415

    console = stdout_console()

    def show(kind: str, title: str, payload: Any) -> None:
        if as_json:
            if kind == "rule":
                note(title)
            return
        if kind == "rule":
            console.rule(f"[bold]{title}")
        elif kind == "note":
            console.print(f"[bold]{title}:[/] {payload}")
        elif kind == "daemon":
            console.print(
                f"[bold]{title}:[/] pid {payload['pid']} on {payload['url']}, "
                f"version {payload['version']}, epoch {payload['epoch']} ({payload['action']})"
            )
        elif kind == "tombstones":
            table = Table(title=title, title_justify="left")
            for col in ("family", "pid", "version", "epoch", "reason"):
                table.add_column(col)
            for t in payload:
                table.add_row(
                    *(str(t.get(c)) for c in ("family", "pid", "version", "epoch", "reason"))
                )
            console.print(table)
        elif kind == "doctor":
            if title != "tenure auth doctor":  # the report prints that heading itself
                console.print(f"[bold]{title}[/]")
            render(payload, console)

    for signum in (s for s in platform.STOP_SIGNALS if s is not signal.SIGINT):
        signal.signal(signum, _stop_signal)
    try:
        summary = demo.run(show, pace)  # its own `finally` stops every process it started
    except KeyboardInterrupt:
        note("interrupted: every process the demo started was stopped")
        raise typer.Exit(130) from None
    except StopSignal as stop:
        note(f"{stop.name}: every process the demo started was stopped")
        raise typer.Exit(128 + stop.signum) from None
    if as_json:
        sys.stdout.write(
            json.dumps({"schema_version": schemas.DEMO, **summary}, sort_keys=True) + "\n"
        )
    raise typer.Exit(0)
