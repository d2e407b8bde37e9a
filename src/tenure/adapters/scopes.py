"""Scopes (adapter): a directory given as a lease's scope, checked and identified, and
whether it is still there. spec: docs/protocol/lease.md#scopes
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tenure.adapters import platform
from tenure.core.fields import MAX_SCOPE_PATH
from tenure.core.record import LeaseScope
from tenure.errors import ConfigError

SCOPE_ENV = "TENURE_SCOPE"  # the scope a launcher gives the daemon it spawns


def resolve_scope(path: str | os.PathLike[str]) -> LeaseScope:
    """The scope of directory `path`: resolved (symlinks followed), with its device and
    inode. `ConfigError` in one line when it is missing, not a directory, not this user's or
    unreadable — before anything is touched."""
    given = os.fspath(path)
    if not given or "\0" in given:
        raise ConfigError(f"scope {given!r} is not a directory path")
    try:
        resolved = Path(given).expanduser().resolve(strict=True)
        st = os.stat(resolved)
    except FileNotFoundError:
        raise ConfigError(f"scope {given}: no such directory") from None
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"scope {given}: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"scope {given}: not a directory")
    if not platform.WINDOWS and st.st_uid != platform.uid():
        raise ConfigError(f"scope {given}: owned by uid {st.st_uid}, not this user's")
    if not os.access(resolved, os.R_OK | os.X_OK):
        raise ConfigError(f"scope {given}: not readable by this user")
    text = str(resolved)
    if len(text) > MAX_SCOPE_PATH:
        raise ConfigError(f"scope {given}: the path is longer than {MAX_SCOPE_PATH} characters")
    return LeaseScope(text, st.st_dev, st.st_ino)


def scope_intact(scope: LeaseScope) -> bool:
    """Whether the scope's path still leads to its directory (not removed, moved away or
    replaced by another directory)."""
    try:
        st = os.stat(scope.path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) == (scope.dev, scope.ino)


def given_scope(scope: str | os.PathLike[str] | LeaseScope | None) -> LeaseScope | None:
    """A scope from an argument (a path, or one already resolved), or None (the user scope)."""
    if scope is None or isinstance(scope, LeaseScope):
        return scope
    return resolve_scope(scope)
