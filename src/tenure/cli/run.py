"""`tenure run --family F --version V [--ports A-B] -- CMD…`: govern an unmodified daemon."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from tenure.cli.common import QUIET_OPTION, ROOT_OPTION, SCOPE_OPTION
from tenure.cli.out import EXIT_ATTENTION, EXIT_USAGE, error, fail, resolve_root
from tenure.core.timing import DEFAULT_READY_S, IDLE_MAX_S
from tenure.errors import LeaseHeld, TenureError

MAX_READY_TIMEOUT_S = 3600.0

RUN_EPILOG = (
    "Examples:\n\n"
    "  tenure run --family web --version 1.2 --ports 9500-9509 -- "
    "python -m http.server {port} --bind 127.0.0.1\n\n"
    "  tenure run --family web --version 1.3 --ports 9500-9509 --socket -- ./server\n\n"
    "Exit codes: the child's own when it ends by itself; 0 when tenure retired it (superseded, "
    "lease lost, root removed, a signal); 1 when an equal or newer holder already runs (it is "
    "named on stderr), or when this upgrade was not ready in time and was rolled back (the "
    "child's own code if it exited non-zero); 2 usage error."
)


WATCH_OPTION = typer.Option(
    None,
    "--watch",
    metavar="PATH",
    help="A file of the command's install (repeatable; the executable is always watched): "
    "when a new install of it settles, the command restarts from it on the same port.",
)


def run_cmd(  # noqa: PLR0917  (typer maps each parameter to an option)
    ctx: typer.Context,
    family: str = typer.Option(
        ...,
        "--family",
        envvar="TENURE_FAMILY",
        metavar="NAME",
        help="The daemon family to hold the lease of.",
    ),
    version: str = typer.Option(
        ...,
        "--version",
        envvar="TENURE_VERSION",
        metavar="V",
        help="This daemon's version (PEP 440).",
    ),
    ports: str | None = typer.Option(
        None,
        "--ports",
        envvar="TENURE_PORTS",
        metavar="LO-HI",
        help="The family's port range; {port} is the first free one.",
    ),
    idle_seconds: float = typer.Option(
        0.0,
        "--idle-seconds",
        metavar="S",
        help="Retire after this long with no connection open on the child's port (0: never; "
        "at most a year).",
    ),
    stop_signal: str = typer.Option(
        "TERM",
        "--stop-signal",
        metavar="SIG",
        help="The signal that asks the command to stop: TERM, INT, HUP, QUIT, USR1 or USR2.",
    ),
    stop_grace: float = typer.Option(
        5.0,
        "--stop-grace",
        metavar="S",
        help="Seconds the command has after its stop signal before SIGKILL (0-3600).",
    ),
    no_tree: bool = typer.Option(
        False,
        "--no-tree",
        help="Send the stop signal to the command alone (it stops its own children); SIGKILL "
        "still reaches every process of its tree left after the grace.",
    ),
    ready: str | None = typer.Option(
        None,
        "--ready",
        metavar="HOW",
        help="When the command counts as ready: port (it accepts a connection on its port, or "
        "sends READY=1 to $NOTIFY_SOCKET), notify (READY=1 only) or started. Default: port "
        "with a port range, else started.",
    ),
    ready_timeout: float = typer.Option(
        DEFAULT_READY_S,
        "--ready-timeout",
        metavar="S",
        help="Seconds (0.1-3600) an upgrade's command has to be ready before the version it "
        "replaced takes its place back.",
    ),
    watch: list[Path] | None = WATCH_OPTION,
    socket: bool = typer.Option(
        False,
        "--socket",
        help="Bind the port here and pass it to the command on fd 3 (LISTEN_FDS=1, "
        "LISTEN_PID): no connection is refused while it restarts, and an upgrade by a newer "
        "`tenure run --socket` is handed the socket (make before break; Linux). Ready: "
        "READY=1 to $NOTIFY_SOCKET, or up for 1 s.",
    ),
    detach: bool = typer.Option(
        False,
        "--detach",
        "-d",
        help="Run the wrapper in the background (its own session, output to the family's log) "
        "and return once it holds the lease; `tenure start FAMILY` starts it this way again.",
    ),
    root: Path | None = ROOT_OPTION,
    scope: Path | None = SCOPE_OPTION,
    _quiet: bool = QUIET_OPTION,
) -> None:
    """Hold a family's lease for a daemon that cannot be changed, and stop its whole process
    tree when it must go."""
    from tenure.adapters.config import parse_port_range  # noqa: PLC0415
    from tenure.adapters.readiness import MODES, ReadySpec  # noqa: PLC0415
    from tenure.core.inputs import STOP_SIGNAL_NAMES, check_stop  # noqa: PLC0415
    from tenure.core.record import StopSpec  # noqa: PLC0415
    from tenure.requester import run as wrapper  # noqa: PLC0415  (keeps `tenure --help` fast)

    command = list(ctx.args)
    if not command:
        error("give the command after --, for example: -- python -m http.server {port}")
        raise typer.Exit(EXIT_USAGE)
    stray = _before_separator(command)
    if stray is not None:
        error(
            f"{stray!r} is not an option of tenure run: its own options come before --, the "
            "command and its arguments after it"
        )
        raise typer.Exit(EXIT_USAGE)
    if not (0 <= idle_seconds <= IDLE_MAX_S and 0.1 <= ready_timeout <= MAX_READY_TIMEOUT_S):
        error("--idle-seconds must be 0 to 31622400 and --ready-timeout 0.1 to 3600 seconds")
        raise typer.Exit(EXIT_USAGE)
    if ready is not None and ready not in MODES:
        error(f"--ready {ready!r} is not one of {', '.join(MODES)}")
        raise typer.Exit(EXIT_USAGE)
    try:
        port_range = parse_port_range(ports, "--ports") if ports else None
        name, grace = check_stop(
            stop_signal, stop_grace, STOP_SIGNAL_NAMES, "--stop-signal/--stop-grace"
        )
        if detach:
            _detached(family, version, port_range, resolve_root(root), scope)
            return
        code = wrapper.run(
            family,
            version,
            command,
            ports=port_range,
            root=resolve_root(root),
            idle_s=idle_seconds,
            stop=StopSpec(name, grace, tree=not no_tree),
            ready=ReadySpec(ready, ready_timeout),
            watch=[str(w) for w in watch or ()],
            socket=socket,
            scope=scope,
        )
    except LeaseHeld as exc:
        error(f"{exc}; an equal or newer version already runs")
        raise typer.Exit(EXIT_ATTENTION) from None
    except (TenureError, OSError) as exc:
        fail(exc, False)
    raise typer.Exit(code)


def _before_separator(command: list[str]) -> str | None:
    """The first word typer passed on that stood before `--` (an unknown or mistyped option
    such as `--idle 60`): the command must be exactly what follows the separator."""
    argv = sys.argv[1:]
    after = argv[argv.index("--") + 1 :] if "--" in argv else []
    if command == after:
        return None
    return command[0] if command[: len(command) - len(after)] else None


def _detached(
    family: str, version: str, ports: tuple[int, int] | None, root: Path, scope: Path | None
) -> None:
    """`--detach`: this same `tenure run` (without `--detach`) started by `tenure.ensure` —
    detached, output to the family's log, the command recorded for `tenure start` — and one
    line once it holds the lease."""
    from tenure.adapters.store import log_path  # noqa: PLC0415
    from tenure.requester.ensure import ensure  # noqa: PLC0415

    args = sys.argv[sys.argv.index("run") :]
    sep = args.index("--") if "--" in args else len(args)
    options = [a for a in args[:sep] if a not in ("--detach", "-d")]
    command = [sys.executable, "-m", "tenure", *options, *args[sep:]]
    found = ensure(family, command, version=version, ports=ports, root=root, scope=scope)
    said = family if found.scope is None else f"{family} (scope {found.scope})"
    log = f"{log_path(root, family)}" if found.scope is None else "tenure logs --scope"
    typer.echo(
        f"{said} {found.action}: pid {found.pid}, port {found.port or '-'}, version "
        f"{found.version}; log: {log}"
    )
