"""The `tenure` command line (typer). Rich is imported lazily, only for human output."""

from __future__ import annotations

import sys

from tenure.cli.app import app


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
