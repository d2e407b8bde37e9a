"""The hot commands without typer: `tenure sync|dashboard start|status|stop|restart`,
`tenure status|stop sync|dashboard` and the read-only `tenure auth doctor`.

A tool's first command after a login or an upgrade pays for `start`; parsing it needs no CLI
framework (typer alone costs more than the rest of `start`). `dispatch` takes exactly the
arguments these commands accept and leaves anything else (help, a typo, other commands) to the
typer app, which calls the same functions. spec: docs/protocol/control.md#start
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tenure.cli.out import (
    EXIT_ATTENTION,
    clean,
    echo,
    emit_json,
    fail,
    note,
    resolve_root,
    set_quiet,
)
from tenure.core.families import FAMILIES, Family
from tenure.core.hints import TYPE_CHECKING
from tenure.errors import TenureError
from tenure.version import checked_version

if TYPE_CHECKING:
    from typing import NoReturn

    from tenure.core.record import LeaseScope
    from tenure.requester.manage import Status
    from tenure.requester.start import DaemonInfo

HOT_VERBS = ("start", "status", "stop", "restart")


def dispatch(argv: Sequence[str]) -> bool:
    """Run a hot command when `argv` (without the program name) is exactly one; False to
    leave it to the typer app (which accepts the same and more, and prints help)."""
    if list(argv[:1]) == ["doctor"]:
        argv = ["auth", *argv]  # `tenure doctor` is `tenure auth doctor`, as fast
    if len(argv) < 2:
        return False
    first, second, rest = argv[0], argv[1], list(argv[2:])
    if (first, second) == ("run", "--") and rest:
        launched_run(rest)  # exits
    if (first, second) == ("auth", "doctor"):
        found = _options(rest, legacy=True)
        if found is None:  # --reset, --watch, --help: the typer command
            return False
        as_json, root, legacy_root, quiet = found
        set_quiet(quiet)
        show_doctor(root, legacy_root, as_json)
        return True
    if first in FAMILIES and second in HOT_VERBS:
        family, verb = FAMILIES[first], second
    elif first in ("status", "stop") and second in FAMILIES:
        family, verb = FAMILIES[second], first
    else:
        return False
    found = _options(rest, legacy=verb in ("start", "restart"))
    if found is None:
        return False
    as_json, root, legacy_root, quiet = found
    set_quiet(quiet)
    if verb in ("start", "restart"):
        start_or_restart(verb, family, root, legacy_root, as_json)
    elif verb == "status":
        show_status(family, root, as_json)
    else:
        stop_family(family, root, as_json)
    return True


def _options(
    args: list[str], *, legacy: bool
) -> tuple[bool, Path | None, Path | None, bool] | None:
    """--json, --root DIR, --legacy-root DIR (start/restart), -q/--quiet; None for anything
    else (the typer app then explains it)."""
    as_json, quiet = False, False
    paths: dict[str, Path | None] = {"--root": None, "--legacy-root": None}
    names = ("--root", "--legacy-root") if legacy else ("--root",)
    while args:
        arg = args.pop(0)
        if arg == "--json":
            as_json = True
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif arg in names and args and not args[0].startswith("-"):
            paths[arg] = Path(args.pop(0))
        elif "=" in arg and arg.split("=", 1)[0] in names and arg.split("=", 1)[1]:
            name, value = arg.split("=", 1)
            paths[name] = Path(value)
        else:
            return None
    return as_json, paths["--root"], paths["--legacy-root"], quiet


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


def start_or_restart(  # noqa: PLR0917  (the typer commands pass their options through)
    what: str,
    family: Family,
    root: Path | None,
    legacy_root: Path | None,
    as_json: bool,
    scope: LeaseScope | None = None,
) -> None:
    """`start` or `restart`: run it, then print the daemon, its reaper's work and its log."""
    # Imported here, and only what this command needs: `tenure --help` and `start` stay fast.
    if what == "start":
        from tenure.requester.start import start as operation  # noqa: PLC0415
    else:
        from tenure.requester.manage import restart as operation  # noqa: PLC0415

    try:
        the_root = resolve_root(root)
        info = operation(family, the_root, checked_version(), note, legacy_root, scope)
    except (TenureError, OSError) as exc:
        fail(exc, as_json)
    _print_started(info, family.name, the_root, as_json, scope)


def _print_started(
    info: DaemonInfo, family: str, root: Path, as_json: bool, scope: LeaseScope | None
) -> None:
    from tenure.adapters.store import log_path  # noqa: PLC0415
    from tenure.core.inputs import lease_key  # noqa: PLC0415

    log = log_path(root, lease_key(family, None if scope is None else scope.digest))
    if as_json:
        emit_json({**info.to_json(), "log": str(log)})
        return
    echo(_human(info, family))
    if info.action != "reused":
        for line in _reaper_lines(info, family):
            note(line)
    hint = f"tenure logs {family}" + ("" if scope is None else f" --scope {scope.path}")
    note(f"log: {log}  ({hint})")


def _print_status(st: Status, name: str, as_json: bool) -> None:
    if as_json:
        emit_json(st.to_json())
    elif st.info is not None:
        echo(_human(st.info, name))
        echo(f"log: {clean(st.log)}")
        for line in _reaper_lines(st.info, name):
            echo(clean(line))
    elif st.state == "foreign":
        echo(
            f"{name} daemon pid {st.pid} holds the lease (epoch {st.epoch}) from elsewhere "
            f"({clean(st.lives)}); tenure never signals it from here"
        )
    elif st.state == "not_answering":
        echo(
            f"{name} daemon pid {st.pid} holds the lease (epoch {st.epoch}, port "
            f"{st.port}) but does not answer; its lease expires in {st.expires_in_s}s"
        )
    else:
        echo(f"no {name} daemon running")


def show_status(
    family: Family, root: Path | None, as_json: bool, scope: LeaseScope | None = None
) -> None:
    """`tenure <family> status` / `tenure status <family>` for a built-in family."""
    from tenure.requester import manage  # noqa: PLC0415  (keeps --help fast)

    try:
        st = manage.status(family, resolve_root(root), scope)
    except (TenureError, OSError) as exc:
        fail(exc, as_json)
    _print_status(st, family.name, as_json)
    if st.state != "running":
        raise SystemExit(EXIT_ATTENTION)


def stop_family(
    family: Family, root: Path | None, as_json: bool, scope: LeaseScope | None = None
) -> None:
    """`tenure <family> stop` / `tenure stop <family>` for a built-in family."""
    from tenure.requester import manage  # noqa: PLC0415  (keeps --help fast)

    try:
        info = manage.stop(family, resolve_root(root), notify=note, scope=scope)
    except (TenureError, OSError) as exc:
        fail(exc, as_json)
    if as_json:
        emit_json({"stopped": info is not None, "daemon": None if info is None else info.to_json()})
    elif info is None:
        echo(f"no {family.name} daemon running")
    else:
        echo(_human(info, family.name))


def show_doctor(root: Path | None, legacy_root: Path | None, as_json: bool) -> NoReturn:
    """The read-only `tenure auth doctor [--json]`: every lease and every daemon in the
    families' ranges, then exit 1 when something needs attention (doctor-json.md)."""
    from tenure.hygiene import doctor  # noqa: PLC0415  (keeps `start` and --help fast)
    from tenure.hygiene.survey import legacy_root as resolve_legacy  # noqa: PLC0415

    report = doctor.gather(resolve_root(root), resolve_legacy(legacy_root))
    if as_json:
        sys.stdout.write(json.dumps(doctor.to_json(report), sort_keys=True) + "\n")
    else:
        from tenure.cli.render import render  # noqa: PLC0415  (rich: human output only)

        render(report)
    raise SystemExit(EXIT_ATTENTION if report.needs_attention() else 0)


def launched_run(command: list[str]) -> NoReturn:
    """`tenure run -- CMD…` with no option: what `tenure.ensure` spawns, everything from the
    launcher's environment (TENURE_FAMILY, TENURE_VERSION, TENURE_PORTS, TENURE_ROOT). No
    typer: it works where only the library is installed, and starts faster."""
    import os  # noqa: PLC0415

    from tenure.cli.out import EXIT_USAGE, error  # noqa: PLC0415
    from tenure.errors import ConfigError, LeaseHeld  # noqa: PLC0415
    from tenure.requester import run as wrapper  # noqa: PLC0415

    family, version = os.environ.get("TENURE_FAMILY"), os.environ.get("TENURE_VERSION")
    if not family or not version:
        error("tenure run -- CMD needs --family and --version, or TENURE_FAMILY and TENURE_VERSION")
        raise SystemExit(EXIT_USAGE)
    try:
        raw = os.environ.get("TENURE_PORTS")
        ports = None
        if raw:
            from tenure.adapters.config import parse_port_range  # noqa: PLC0415

            ports = parse_port_range(raw)
        code = wrapper.run(family, version, command, ports=ports, root=resolve_root(None))
    except LeaseHeld as exc:
        error(f"{exc}; an equal or newer version already runs")
        raise SystemExit(EXIT_ATTENTION) from None
    except ConfigError as exc:
        error(str(exc))
        raise SystemExit(EXIT_USAGE) from None
    except (TenureError, OSError) as exc:
        fail(exc, False)
    raise SystemExit(code)
