"""Control tokens (adapter): per-daemon secrets, readable by the same user only."""

from __future__ import annotations

import contextlib
from pathlib import Path

from tenure.adapters.files import atomic_write, read_nofollow
from tenure.adapters.root import RootLayout, check_root, ensure_subdir
from tenure.errors import RootError


def token_path(root: Path, family: str, pid: int) -> Path:
    """Where the daemon `pid` of `family` keeps its control token."""
    return RootLayout(root).token(family, pid)


def write_token(root: Path, family: str, pid: int, token: str) -> Path:
    """Store a daemon's token 0600, and remove the tokens of earlier holders of the same lease
    whose process no longer exists (one SIGKILLed cannot remove its own; control.md#endpoints)."""
    path = token_path(root, family, pid)
    ensure_subdir(root, "tokens")
    atomic_write(path, token.encode())
    _sweep(path.parent, family, pid)
    return path


def _sweep(tokens: Path, key: str, mine: int) -> None:
    from tenure.adapters.procinfo import read_process  # noqa: PLC0415  (the daemon has it)

    prefix, suffix = f"{key}.", ".token"
    try:
        names = [p.name for p in tokens.iterdir()]
    except OSError:
        return
    for name in names:
        ok = name.startswith(prefix) and name.endswith(suffix)
        middle = name[len(prefix) : -len(suffix)] if ok else ""
        # A scoped key's files (`key.<digest>.<pid>.token`) never match: `middle` is no pid.
        if not (middle.isascii() and middle.isdigit() and len(middle) <= 10) or int(middle) == mine:
            continue
        if read_process(int(middle)) is None:
            with contextlib.suppress(OSError):
                (tokens / name).unlink()


def read_token(root: Path, family: str, pid: int) -> str | None:
    """A daemon's token, or None if it has none on disk or the root fails its checks.

    A token from a root another user could have written to is never used (root.md#files).
    """
    try:
        check_root(root)
    except RootError:
        return None
    try:
        data = read_nofollow(token_path(root, family, pid), 256)
    except OSError:
        return None
    return data.decode("ascii", "replace").strip() if data else None
