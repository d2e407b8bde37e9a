"""Shared typer plumbing: the options every command takes, help epilogs; the output helpers
come from `tenure.cli.out` (no typer there, so the hot path can use them)."""

from __future__ import annotations

import typer

from tenure.cli.out import set_quiet

ROOT_OPTION = typer.Option(
    None, "--root", metavar="DIR", help="Daemon root (default: $TENURE_ROOT or the user state dir)."
)
JSON_OPTION = typer.Option(False, "--json", help="Print exactly one JSON document on stdout.")
LEGACY_ROOT_OPTION = typer.Option(
    None,
    "--legacy-root",
    metavar="DIR",
    help="Legacy spec-kitty root (default: $SPEC_KITTY_HOME or ~/.spec-kitty).",
)
SCOPE_OPTION = typer.Option(
    None,
    "--scope",
    metavar="DIR",
    help="The directory (a project, a worktree) whose lease this is; default: the user scope.",
)


QUIET_OPTION = typer.Option(
    False,
    "--quiet",
    "-q",
    help="No progress or notes on stderr (errors still show).",
    callback=set_quiet,
)

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 problems remain or aborted; 2 usage error or bad configuration; "
    "130 interrupted."
)


def examples(*lines: str) -> str:
    """An examples epilog for a command's --help (Rich keeps the line breaks)."""
    body = "\n\n".join(f"  {line}" for line in lines)
    return f"Examples:\n\n{body}\n\n{EXIT_CODES_HELP}"
