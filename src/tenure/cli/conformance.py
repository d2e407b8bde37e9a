"""`tenure conformance [--family F] [--ports A-B] -- CMD…`: does a daemon speak tenure/1?"""

from __future__ import annotations

from pathlib import Path

import typer

from tenure.cli.common import JSON_OPTION, QUIET_OPTION
from tenure.cli.out import (
    EXIT_ATTENTION,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    clean,
    emit_json,
    error,
    note,
)

CONFORMANCE_EPILOG = (
    "Examples:\n\n"
    "  tenure conformance --family indexer -- python my_daemon.py\n\n"
    "  tenure conformance --family web --ports 9500-9509 -- "
    "tenure run -- python -m http.server {port} --bind 127.0.0.1\n\n"
    "The command is started several times, each in a fresh private root, with TENURE_ROOT, "
    "TENURE_FAMILY, TENURE_VERSION, TENURE_PORT, TENURE_PORTS, TENURE_LEASE_TTL and "
    "TENURE_HEARTBEAT set and {port}, {root}, {family}, {version} substituted.\n\n"
    "Exit codes: 0 every check passed; 1 a check failed; 2 usage error; 130 interrupted."
)


WORKDIR_OPTION = typer.Option(
    None,
    "--workdir",
    metavar="DIR",
    help="Where to make the temporary roots (default: the temp dir).",
)


def conformance_cmd(
    ctx: typer.Context,
    *,
    family: str = typer.Option(
        "conformance", "--family", metavar="NAME", help="The family the daemon holds."
    ),
    version: str | None = typer.Option(
        None,
        "--version",
        metavar="V",
        help="The version it must record (PEP 440); default: any it records "
        "({version} and TENURE_VERSION are 1.0).",
    ),
    ports: str | None = typer.Option(
        None, "--ports", metavar="LO-HI", help="The family's port range."
    ),
    ttl: float = typer.Option(2.0, "--ttl", metavar="S", help="Lease TTL to run it with."),
    heartbeat: float = typer.Option(
        0.25, "--heartbeat", metavar="S", help="Heartbeat to run it with."
    ),
    workdir: Path | None = WORKDIR_OPTION,
    as_json: bool = JSON_OPTION,
    _quiet: bool = QUIET_OPTION,
) -> None:
    """Check that a daemon command speaks the tenure/1 lease protocol (real processes)."""
    from tenure.adapters.config import parse_port_range  # noqa: PLC0415
    from tenure.conformance import Options, run_conformance  # noqa: PLC0415
    from tenure.core.inputs import check_family, check_version  # noqa: PLC0415
    from tenure.errors import ConfigError, TenureError  # noqa: PLC0415

    command = list(ctx.args)
    if not command:
        error("give the daemon's command after --, for example: -- python my_daemon.py")
        raise typer.Exit(EXIT_USAGE)
    if not (1 <= ttl <= 86_400 and 0.05 <= heartbeat <= ttl / 2):
        error("--ttl must be 1..86400 seconds and --heartbeat 0.05 s..TTL/2")
        raise typer.Exit(EXIT_USAGE)
    try:
        check_family(family, "--family")
        if version is not None:
            check_version(version, "--version")  # one grammar at every door (versioning.md)
        port_range = parse_port_range(ports, "--ports") if ports else None
    except ConfigError as exc:
        error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    opts = Options(family, version, port_range, ttl, heartbeat, workdir=workdir)
    try:
        report = run_conformance(command, opts, notify=note)
    except KeyboardInterrupt:
        error("interrupted; every daemon the kit started was stopped")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ValueError as exc:  # ConfigError too: a command that cannot be run
        error(str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except (OSError, TenureError) as exc:
        # The kit's own work failed (a full disk, no descriptors): no verdict on the daemon.
        error(
            f"the conformance kit could not run its checks: {exc}; "
            "this says nothing about the daemon"
        )
        raise typer.Exit(EXIT_ATTENTION) from None
    if as_json:
        emit_json(report.to_json())
    else:
        for line in report.explain().splitlines():
            typer.echo(clean(line))
        passed = sum(c.passed for c in report.checks)
        typer.echo(f"{passed}/{len(report.checks)} checks passed")
    raise typer.Exit(EXIT_OK if report.passed else EXIT_ATTENTION)
