"""The command that starts a family (adapter): recorded by `tenure.ensure` and `tenure run
--detach` in `<root>/leases/<key>.command.json`, read by `tenure start|restart FAMILY`.

Only what starts it again: the argv, the working directory, the version, the port range and the
scope — never the environment (it may hold secrets). spec: docs/protocol/root.md#layout
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from tenure.adapters.files import atomic_write, read_nofollow
from tenure.adapters.root import RootLayout
from tenure.core.hints import TYPE_CHECKING
from tenure.core.values import frozen

if TYPE_CHECKING:
    from collections.abc import Sequence

MAX_COMMAND_BYTES = 64 * 1024


@frozen
class Recorded:
    """How a family was last started."""

    command: tuple[str, ...]
    cwd: str
    version: str
    ports: tuple[int, int] | None = None
    scope: str | None = None


def command_path(root: Path, key: str) -> Path:
    """Where the lease `key`'s start command is kept."""
    return RootLayout(root).leases / f"{key}.command.json"


def remember(  # noqa: PLR0917  (the record's fields, in its order)
    root: Path,
    key: str,
    command: Sequence[str],
    cwd: str | os.PathLike[str] | None,
    version: str,
    ports: tuple[int, int] | None,
    scope: str | None,
) -> None:
    """Record how the lease `key`'s holder was started (atomic, 0600); never raises OSError
    past it: a start that worked is not failed by its bookkeeping."""
    doc = {
        "command": list(command),
        "cwd": str(Path(cwd or os.getcwd()).resolve()),
        "version": version,
        "ports": None if ports is None else list(ports),
        "scope": scope,
    }
    data = json.dumps(doc, sort_keys=True).encode()
    if len(data) <= MAX_COMMAND_BYTES:
        with contextlib.suppress(OSError):
            atomic_write(command_path(root, key), data + b"\n")


def recorded(root: Path, key: str) -> Recorded | None:
    """The last recorded start of lease `key`, or None (absent, unreadable or of the wrong
    shape: nothing is started from a file that does not parse)."""
    try:
        data = read_nofollow(command_path(root, key), MAX_COMMAND_BYTES)
        doc = json.loads(data or b"")
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    command, cwd, version = doc.get("command"), doc.get("cwd"), doc.get("version")
    ports, scope = doc.get("ports"), doc.get("scope")
    if not (
        isinstance(command, list)
        and command
        and all(isinstance(a, str) for a in command)
        and isinstance(cwd, str)
        and isinstance(version, str)
        and (scope is None or isinstance(scope, str))
    ):
        return None
    if ports is not None:
        if not (
            isinstance(ports, list)
            and len(ports) == 2
            and all(isinstance(p, int) and not isinstance(p, bool) for p in ports)
        ):
            return None
        ports = (ports[0], ports[1])
    return Recorded(tuple(command), cwd, version, ports, scope)
