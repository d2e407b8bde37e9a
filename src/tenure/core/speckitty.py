"""Facts about pre-lease spec-kitty-cli 3.2.x sync daemons (pure: parsing only).

Process shape: `<python> -c "<script ... run_sync_daemon(<port>, '<token>') ...>"
--spec-kitty-daemon-root=<root> --spec-kitty-daemon-exec=<python>`. The root marker in argv is
the scope proof; owner.json is reporting data only and never decides anything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePath

from tenure.core.argv import argv_option
from tenure.core.values import frozen

ROOT_MARKER = "spec-kitty-daemon-root"
HOME_ENV = "SPEC_KITTY_HOME"
STATE_FILE = "sync-daemon"
_RUN_CALL = re.compile(r"run_sync_daemon\(\s*(\d{1,5})\s*,\s*['\"]([^'\"]*)['\"]")


@frozen
class StateFile:
    """The legacy root's `sync-daemon` file: the recorded singleton."""

    url: str | None
    port: int | None
    token: str | None
    pid: int | None


@frozen
class SpawnShape:
    """What a legacy daemon's argv says about it."""

    port: int | None
    token: str | None
    root_marker: str | None


def legacy_root(env: Mapping[str, str], home: str) -> PurePath:
    """`$SPEC_KITTY_HOME` if set, else `~/.spec-kitty` (not yet resolved)."""
    return PurePath(env[HOME_ENV]) if env.get(HOME_ENV) else PurePath(home) / ".spec-kitty"


def parse_state_file(text: str) -> StateFile:
    """Lines url, port, token, pid; token and pid may be absent; blank lines ignored."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    url = lines[0] if lines else None
    port = _int(lines[1]) if len(lines) > 1 else None
    token = lines[2] if len(lines) > 2 else None
    pid = _int(lines[3]) if len(lines) > 3 else None
    if pid is None and len(lines) == 3 and _int(lines[2]) is not None:
        # Three lines whose last is a number: url, port, pid with the token absent.
        token, pid = None, _int(lines[2])
    return StateFile(url=url, port=port, token=token, pid=pid)


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 10 else None


def spawn_shape(cmdline: tuple[str, ...]) -> SpawnShape | None:
    """The legacy spawn shape (`-c` script calling run_sync_daemon), or None if absent."""
    if "-c" not in cmdline:
        return None
    idx = cmdline.index("-c")
    if idx + 1 >= len(cmdline):
        return None
    match = _RUN_CALL.search(cmdline[idx + 1])
    if match is None:
        return None
    root = argv_option(cmdline[idx + 2 :], ROOT_MARKER)
    return SpawnShape(port=int(match.group(1)), token=match.group(2), root_marker=root)


def looks_like_legacy_sync_health(doc: Mapping[str, object]) -> bool:
    """Health JSON shaped like a legacy sync daemon's (protocol_version 1 and a sync block)."""
    return doc.get("protocol_version") == 1 and isinstance(doc.get("sync"), dict)


def looks_like_legacy_dashboard_health(doc: Mapping[str, object]) -> bool:
    """Health JSON shaped like a legacy spec-kitty dashboard (project_path + status)."""
    return "project_path" in doc and "status" in doc and "protocol" not in doc
