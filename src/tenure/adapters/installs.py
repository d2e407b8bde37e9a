"""The identities of the files a holder watches for a new install (adapter): a stat that
follows symlinks. The rules are pure (`core/installs.py`). spec: control.md#installs"""

from __future__ import annotations

import os
from collections.abc import Sequence

from tenure.core.installs import Identity, Install, Watched, look
from tenure.errors import ConfigError


def check_watched(paths: Sequence[str | os.PathLike[str]]) -> tuple[str, ...]:
    """The files to watch, each an existing file (`ConfigError` naming one that is not), as
    absolute paths: checked before anything in the root is touched."""
    found = []
    for path in paths:
        text = os.fspath(path)
        if not os.path.isfile(text):
            raise ConfigError(f"watch {text!r}: no such file to watch for a new install")
        found.append(os.path.abspath(text))
    return tuple(found)


def identities(paths: Sequence[str]) -> tuple[Identity, ...]:
    """Each file's (device, inode, size, mtime ns); None for one that cannot be read now."""
    found: list[Identity] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            found.append(None)
        else:
            found.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(found)


class InstallWatch:
    """The files one holder watches, and the state of the rules between looks."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = tuple(paths)
        self._watched = Watched(identities(self.paths))

    def upgraded(self) -> bool:
        """One look: True once a new install of any watched file has settled."""
        if not self.paths:
            return False
        verdict, self._watched = look(self._watched, identities(self.paths))
        return verdict is Install.UPGRADED
