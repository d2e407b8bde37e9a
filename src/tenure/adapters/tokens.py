"""Control tokens (adapter): per-daemon secrets, readable by the same user only."""

from __future__ import annotations

from pathlib import Path

from tenure.adapters.files import atomic_write, read_nofollow
from tenure.adapters.root import RootLayout, check_root, ensure_subdir
from tenure.errors import RootError


def token_path(root: Path, family: str, pid: int) -> Path:
    """Where the daemon `pid` of `family` keeps its control token."""
    return RootLayout(root).token(family, pid)


def write_token(root: Path, family: str, pid: int, token: str) -> Path:
    """Store a daemon's token 0600."""
    path = token_path(root, family, pid)
    ensure_subdir(root, "tokens")
    atomic_write(path, token.encode())
    return path


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
