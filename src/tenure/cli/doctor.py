"""`tenure auth doctor [--reset [--force]] [--json]`."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import typer

from tenure.cli.common import JSON_OPTION, LEGACY_ROOT_OPTION, QUIET_OPTION, ROOT_OPTION, examples
from tenure.cli.hot import show_doctor
from tenure.cli.out import (
    EXIT_ATTENTION,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    clean,
    error,
    note,
    resolve_root,
)
from tenure.core.hints import TYPE_CHECKING

if TYPE_CHECKING:
    from tenure.core.classify import DaemonIdentityRecord
    from tenure.hygiene.cleanup import Cleanup
    from tenure.hygiene.doctor import DoctorReport

auth_app = typer.Typer(
    help="Daemon hygiene: inspect and clean up the daemons of this user.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DOCTOR_EPILOG = examples(
    "tenure auth doctor",
    "tenure auth doctor --json",
    "tenure auth doctor --reset",
    "tenure auth doctor --reset --force",
    "tenure auth doctor --watch",
)


@auth_app.command("doctor", epilog=DOCTOR_EPILOG)
def doctor_cmd(  # noqa: PLR0917  (typer maps each parameter to an option)
    reset: bool = typer.Option(
        False, "--reset", help="Clean safe_auto daemons (and confirmed operator_required)."
    ),
    force: bool = typer.Option(
        False, "--force", help="With --reset: also clean operator_required daemons."
    ),
    as_json: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    legacy_root: Path | None = LEGACY_ROOT_OPTION,
    watch: bool = typer.Option(
        False, "--watch", "-w", help="A live view, refreshed every second, until Ctrl-C."
    ),
    _quiet: bool = QUIET_OPTION,
) -> None:
    """Show leases and every daemon in the families' port ranges; with --reset, clean up."""
    if force and not reset:
        error("--force only makes sense with --reset")
        raise typer.Exit(EXIT_USAGE)
    if watch and (reset or as_json):
        error("--watch is a live human view: it takes neither --reset nor --json")
        raise typer.Exit(EXIT_USAGE)
    if not reset and not watch:
        show_doctor(root, legacy_root, as_json)  # the same read-only view as the hot path
    from tenure.hygiene import doctor  # noqa: PLC0415  (keeps `tenure --help` fast)
    from tenure.hygiene import survey as engine  # noqa: PLC0415

    the_root = resolve_root(root).expanduser()
    legacy = engine.legacy_root(legacy_root)
    if watch:
        from rich.console import Console  # noqa: PLC0415

        from tenure.cli import watch as live  # noqa: PLC0415

        live.run(lambda: doctor.gather(the_root, legacy), Console(file=sys.stdout))
        raise typer.Exit(EXIT_OK)
    report = doctor.gather(the_root, legacy)
    # --json is for machines: it never prompts (doctor-json.md#reset).
    done = _reset(report, the_root, force, interactive=not as_json)
    interrupted, terminated = done.interrupted, signal.SIGTERM in _STOPS
    report = doctor.gather(the_root, legacy)
    report.reset_result = done.result
    if done.pending:
        listed = ", ".join(f"port {r.port} (pid {r.pid}, {r.skip_reason})" for r in done.pending)
        note(
            f"skipped operator_required: {listed}. "
            "To clean them: tenure auth doctor --reset --force"
        )
    if as_json:
        doc = doctor.to_json(report)
        if interrupted:
            doc["interrupted"] = True
        sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
    else:
        from tenure.cli.render import render  # noqa: PLC0415

        render(report)
    if interrupted:
        note("interrupted: the reset stopped before every candidate was handled")
        raise typer.Exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
    raise typer.Exit(EXIT_ATTENTION if report.needs_attention() else EXIT_OK)


def _reset(report: DoctorReport, root: Path, force: bool, *, interactive: bool) -> Cleanup:
    """The cleanup use-case, asking on a terminal (never in JSON mode) unless forced."""
    from tenure.hygiene.cleanup import cleanup  # noqa: PLC0415

    def ask(rec: DaemonIdentityRecord) -> bool:
        evidence = "; ".join(rec.evidence)
        try:
            return typer.confirm(
                clean(
                    f"Clean {rec.daemon_family or 'unknown'} daemon on port {rec.port} "
                    f"(pid {rec.pid}, {rec.skip_reason}: {evidence})?"
                ),
                default=False,
                err=True,
            )
        except typer.Abort:
            raise KeyboardInterrupt from None

    on_tty = interactive and not force and sys.stdin.isatty()
    # SIGTERM (and Ctrl-C when no prompt is waiting) stops the reset between candidates, never
    # inside one's escalation, so the report says exactly what was done.
    wanted = (signal.SIGTERM,) if on_tty else (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, lambda signum, _f: _STOPS.append(signum)) for sig in wanted}
    try:
        return cleanup(
            report.surveys,
            root,
            force=force,
            confirm=ask if on_tty else None,
            notify=note,
            should_stop=lambda: bool(_STOPS),
        )
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


_STOPS: list[int] = []  # signals that asked a running reset to stop
