"""Shared CLI plumbing: stderr diagnostics, JSON output, exit codes, the root option."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer

from tenure.errors import TenureError

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_USAGE = 2
SCHEMA_VERSION = 1

ROOT_OPTION = typer.Option(
    None, "--root", help="Daemon root (default: $TENURE_ROOT or the user state dir)."
)
JSON_OPTION = typer.Option(False, "--json", help="Print exactly one JSON document on stdout.")


def resolve_root(root: Path | None) -> Path:
    """The root to use: the option, else $TENURE_ROOT, else the platform default."""
    from tenure.store import default_root  # noqa: PLC0415  (filelock is slow to import)

    return root if root is not None else default_root()


def note(message: str) -> None:
    """A diagnostic line on stderr (stdout carries only the result)."""
    typer.echo(message, err=True)


def emit_json(doc: dict[str, Any]) -> None:
    """Print one JSON document on stdout."""
    sys.stdout.write(json.dumps({"schema_version": SCHEMA_VERSION, **doc}, sort_keys=True) + "\n")


def fail(exc: TenureError, as_json: bool) -> NoReturn:
    """Report a tenure error and exit 1."""
    if as_json:
        emit_json({"error": type(exc).__name__, "message": str(exc)})
    note(f"error: {exc}")
    raise typer.Exit(EXIT_ATTENTION)
