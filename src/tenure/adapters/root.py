"""The daemon root (adapter): its layout, its checks, its instance id.

spec: docs/protocol/root.md
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from tenure.adapters import config, platform
from tenure.adapters.files import DIR_MODE, read_nofollow, write_new
from tenure.core.inputs import check_key
from tenure.core.values import frozen
from tenure.errors import NotRegularFile, RootError

SUBDIRS = ("leases", "tokens", "logs")
ROOT_ID_FILE = "root.id"


@frozen
class RootLayout:
    """Every path in a daemon root, in one place (spec: root.md#layout).

    Every per-family path checks the family name first (`ConfigError`): no name can address a
    file outside `leases/`, `tokens/` or `logs/` (root.md#family-names). Where a family is
    named, so can a scoped lease's key be (`family.<digest>`, lease.md#scopes).
    """

    root: Path

    @property
    def leases(self) -> Path:
        """Directory of every family's lease record, lock and epoch floor."""
        return self.root / "leases"

    def record(self, family: str) -> Path:
        """The family's lease record."""
        return self.leases / f"{check_key(family)}.json"

    def lock(self, family: str) -> Path:
        """The lock file guarding every write of the family's record."""
        return self.leases / f"{check_key(family)}.lock"

    def epoch_floor(self, family: str) -> Path:
        """The highest epoch ever granted for the family."""
        return self.leases / f"{check_key(family)}.epoch"

    def start_lock(self, family: str) -> Path:
        """The lock that serialises check → spawn → wait-healthy of `start`."""
        return self.leases / f"{check_key(family)}.start.lock"

    def ports_lock(self, family: str) -> Path:
        """The lock under which a holder of any of the family's scopes claims a port."""
        return self.leases / f"{check_key(family)}.ports.lock"

    @property
    def tombstones(self) -> Path:
        """The retirement log."""
        return self.root / "tombstones.jsonl"

    @property
    def tombstones_lock(self) -> Path:
        """The lock around appending to the retirement log."""
        return self.root / "tombstones.lock"

    @property
    def tokens(self) -> Path:
        """Directory of the daemons' control tokens."""
        return self.root / "tokens"

    def token(self, family: str, pid: int) -> Path:
        """Where the daemon `pid` of `family` keeps its control token."""
        return self.tokens / f"{check_key(family)}.{pid}.token"

    @property
    def logs(self) -> Path:
        """Directory of the detached daemons' logs."""
        return self.root / "logs"

    def log(self, family: str) -> Path:
        """A family's daemon log (rotated to `.1` by the daemon)."""
        return self.logs / f"{check_key(family)}.log"

    @property
    def root_id(self) -> Path:
        """The root's instance id."""
        return self.root / ROOT_ID_FILE


def _check_dir(path: Path, what: str, missing_ok: bool = False) -> bool:
    """A directory tenure trusts: real (not a link), ours, not writable by group or others.
    False when it is missing and `missing_ok` (one lstat either way: this runs on every call
    of `ensure`)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if missing_ok:
            return False
        raise RootError(path, f"{what} does not exist", "missing") from None
    except OSError as exc:
        raise RootError(path, f"{what} cannot be inspected ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise RootError(path, f"{what} is a symlink; refusing to follow it", "symlink")
    if not stat.S_ISDIR(st.st_mode):
        raise RootError(path, f"{what} is not a directory", "not_directory")
    if st.st_uid != platform.euid():
        raise RootError(
            path, f"{what} is owned by uid {st.st_uid}, not {platform.euid()}", "foreign_owner"
        )
    if st.st_mode & 0o022:
        raise RootError(
            path,
            f"{what} is group/world-writable (mode {stat.S_IMODE(st.st_mode):04o})",
            "writable",
        )
    return True


def check_root(path: Path) -> Path:
    """Validate an existing root and its subdirectories without changing anything.

    Every command runs this before trusting a file of the root (read-only ones included): a
    link, a foreign owner or a group/world-writable mode anywhere is a `RootError` naming the
    path. Returns the resolved root. spec: root.md#permissions
    """
    return _check_root(path)[0]


def _check_root(path: Path) -> tuple[Path, set[str]]:
    """`check_root`, and which subdirectories are missing (so `ensure_root` creates them
    without a second look at those that are there)."""
    _check_dir(path, "root")
    missing = {sub for sub in SUBDIRS if not _check_dir(path / sub, f"{sub}/", missing_ok=True)}
    return path.resolve(), missing


def ensure_subdir(root: Path, name: str) -> Path:
    """Create `root/name` 0700 if missing and check it like the root."""
    sub = root / name
    if not _check_dir(sub, f"{name}/", missing_ok=True):
        with contextlib.suppress(FileExistsError):
            sub.mkdir(mode=DIR_MODE)
        _check_dir(sub, f"{name}/")
    return sub


def ensure_root(path: Path) -> Path:
    """Create the root 0700 if missing, then validate it (spec: root.md#permissions)."""
    if not os.path.lexists(path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
            with contextlib.suppress(FileExistsError):
                path.mkdir(mode=DIR_MODE)
        except OSError as exc:
            raise RootError(path, f"cannot be created ({exc.strerror})", "uncreatable") from None
    root, missing = _check_root(path)
    try:
        if "leases" in missing:
            ensure_subdir(root, "leases")
        ensure_root_id(root)
    except RootError:
        raise
    except OSError as exc:
        raise RootError(root, f"is not writable ({exc.strerror})", "unwritable") from None
    return root


def ensure_root_id(root: Path) -> str:
    """The root's random instance id, created once with the root (spec: root.md#instance).

    Two processes creating it at once agree: the id is linked into place, never overwritten.
    """
    current = read_root_id(root)
    if current is not None:
        return current
    fresh = os.urandom(8).hex()
    tmp = root / f".{ROOT_ID_FILE}.{os.urandom(6).hex()}.tmp"
    write_new(tmp, f"{fresh}\n".encode())
    try:
        os.link(tmp, RootLayout(root).root_id)  # fails if another process created it first
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    found = read_root_id(root)
    if found is None:
        raise RootError(root, f"{ROOT_ID_FILE} is unreadable")
    return found


def read_root_id(root: Path) -> str | None:
    """The root's instance id; None when absent or not a short token (garbage, a FIFO, a link).

    Other I/O errors (EMFILE, EIO) raise OSError: they say nothing about the root's identity.
    """
    try:
        data = read_nofollow(RootLayout(root).root_id, 64)
    except NotRegularFile:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    text = (data or b"").decode("ascii", "replace").strip()
    return text if text and len(text) <= 32 and text.isalnum() else None


@frozen
class RootIdentity:
    """What makes a root the same root: its inode and its instance id."""

    dev: int
    ino: int
    root_id: str | None


def root_identity(root: Path) -> RootIdentity | None:
    """The root's identity now, or None when it is gone or is no longer a directory."""
    try:
        st = os.lstat(root)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISDIR(st.st_mode):
        return None
    return RootIdentity(st.st_dev, st.st_ino, read_root_id(root))


def root_stamp(root: Path) -> tuple[int, int, int] | None:
    """(device, inode, ctime) of the root's `root.id`: a stat, not a read. A root recreated
    where the old one was may reuse the directory's inode; its new `root.id` has a new ctime."""
    try:
        st = os.stat(RootLayout(root).root_id, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_ctime_ns)


def given_or_default(root: str | os.PathLike[str] | None) -> Path:
    """The root a caller named (a str or a path), else `default_root()`."""
    return Path(root) if root is not None else default_root()


def default_root() -> Path:
    """`$TENURE_ROOT`, else the platform's per-user state dir for tenure."""
    override = config.root_override()
    if override is not None:
        return override
    import platformdirs  # noqa: PLC0415  (costs ~50 ms at import; only needed without the env)

    return Path(platformdirs.user_state_dir("tenure", appauthor=False))
