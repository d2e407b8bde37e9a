"""Starting a detached daemon (adapter): a new session, its output appended to its log."""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tenure.adapters.files import open_regular
from tenure.adapters.platform import detach
from tenure.adapters.root import RootLayout, ensure_subdir
from tenure.core.hints import TYPE_CHECKING
from tenure.errors import ConfigError, RootError

if TYPE_CHECKING:
    import subprocess

DETACH = detach()


def check_command(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> str:
    """The executable `argv` starts, resolved as exec would (a path with a slash relative to
    `cwd`, else on `env`'s PATH, else this process's): `ConfigError` naming it when there is no
    such executable file, so a typo fails before any lease is touched (control.md#run)."""
    if not argv or not argv[0]:
        raise ConfigError("the command is empty: give the program to run and its arguments")
    name = argv[0]
    if os.sep in name or (os.altsep is not None and os.altsep in name):
        path = Path(cwd or ".") / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise ConfigError(f"command {name!r} is not an executable file (from {Path(cwd or '.')})")
    import shutil  # noqa: PLC0415  (only a spawn pays for it)

    search = (env or {}).get("PATH", os.environ.get("PATH", os.defpath))
    found = shutil.which(name, path=search)
    if found is None:
        raise ConfigError(f"command {name!r} not found on PATH")
    return found


def spawn_detached(
    root: Path,
    family: str,
    argv: Sequence[str],
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session with stdin closed and stdout/stderr to the family's log.

    The log is opened without following a link or blocking (root.md#files); a log that is a
    link or not a file is a `RootError` naming it. `env` adds to this process's environment;
    `cwd` replaces its working directory.
    """
    ensure_subdir(root, "logs")
    log = RootLayout(root).log(family)
    try:
        fd = open_regular(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    except OSError as exc:
        kind = "symlink" if exc.errno == errno.ELOOP else "not_directory"
        raise RootError(log, f"cannot be opened as the daemon log ({exc.strerror})", kind) from None
    import subprocess  # noqa: PLC0415  (~7 ms: `tenure.ensure` reusing a daemon never spawns)

    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=DETACH.new_session,
            creationflags=DETACH.creationflags,
            close_fds=True,
            env=None if env is None else {**os.environ, **env},
            cwd=cwd,
        )
    finally:
        os.close(fd)


def spawn_with_output(
    argv: Sequence[str], env: dict[str, str], output: Path
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session (a Ctrl-C meant for the caller is not its), stdin closed,
    stdout and stderr appended to `output` (the conformance kit's daemon under test)."""
    import subprocess  # noqa: PLC0415

    with open(output, "ab") as out:
        return subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
