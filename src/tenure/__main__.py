"""`python -m tenure` and the `tenure` command: the CLI, or one line saying how to get it.

The library installs without the CLI's dependencies (typer, rich): `pip install tenure` for
`tenure.hold` / `tenure.ensure`, `pip install 'tenure[cli]'` for the command line.
"""

from __future__ import annotations

import sys

CLI_DEPENDENCIES = ("typer", "rich", "click")


def main() -> None:
    """Run the CLI; without its extra installed, say how to install it (exit 2)."""
    from tenure.cli import main as cli_main  # noqa: PLC0415

    try:
        cli_main()  # the hot commands need no typer; the others import it on the way
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in CLI_DEPENDENCIES:
            raise
        sys.stderr.write(
            f"tenure: the command line needs {exc.name}, which comes with its extra: "
            "pip install 'tenure[cli]'\n"
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
