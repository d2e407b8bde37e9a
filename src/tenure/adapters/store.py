"""The daemon root on disk (adapter): checks, atomic writes, locked read-modify-write.

spec: docs/protocol/root.md
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tenure.adapters import config
from tenure.core.record import MAX_RECORD_BYTES, LeaseRecord, Unreadable, encode, parse
from tenure.errors import LockTimeout, RootError

LOCK_TIMEOUT_S = 2.0
LOCK_POLL_S = 0.005  # waiters retry this often; the default 50 ms would serialise starts slowly
TOMBSTONE_LIMIT = 200
FILE_MODE = 0o600
DIR_MODE = 0o700

T = TypeVar("T")


def default_root() -> Path:
    """`$TENURE_ROOT`, else the platform's per-user state dir for tenure."""
    override = config.root_override()
    if override is not None:
        return override
    import platformdirs  # noqa: PLC0415  (costs ~50 ms at import; only needed without the env)

    return Path(platformdirs.user_state_dir("tenure", appauthor=False))


SUBDIRS = ("leases", "tokens", "logs")
ROOT_ID_FILE = "root.id"


def _check_dir(path: Path, what: str) -> None:
    """A directory tenure trusts: real (not a link), ours, not writable by group or others."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise RootError(path, f"{what} does not exist", "missing") from None
    except OSError as exc:
        raise RootError(path, f"{what} cannot be inspected ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise RootError(path, f"{what} is a symlink; refusing to follow it", "symlink")
    if not stat.S_ISDIR(st.st_mode):
        raise RootError(path, f"{what} is not a directory", "not_directory")
    if st.st_uid != os.geteuid():
        raise RootError(
            path, f"{what} is owned by uid {st.st_uid}, not {os.geteuid()}", "foreign_owner"
        )
    if st.st_mode & 0o022:
        raise RootError(
            path,
            f"{what} is group/world-writable (mode {stat.S_IMODE(st.st_mode):04o})",
            "writable",
        )


def check_root(path: Path) -> Path:
    """Validate an existing root and its subdirectories without changing anything.

    Every command runs this before trusting a file of the root (read-only ones included): a
    link, a foreign owner or a group/world-writable mode anywhere is a `RootError` naming the
    path. Returns the resolved root. spec: root.md#permissions
    """
    _check_dir(path, "root")
    for sub in SUBDIRS:
        if os.path.lexists(path / sub):
            _check_dir(path / sub, f"{sub}/")
    return path.resolve()


def ensure_subdir(root: Path, name: str) -> Path:
    """Create `root/name` 0700 if missing and check it like the root."""
    sub = root / name
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
    root = check_root(path)
    try:
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
    fresh = secrets.token_hex(8)
    tmp = root / f".{ROOT_ID_FILE}.{secrets.token_hex(6)}.tmp"
    _write_new(tmp, f"{fresh}\n".encode())
    try:
        os.link(tmp, root / ROOT_ID_FILE)  # fails if another process created it first
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
        data = read_nofollow(root / ROOT_ID_FILE, 64)
    except NotRegularFile:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    text = (data or b"").decode("ascii", "replace").strip()
    return text if text and len(text) <= 32 and text.isalnum() else None


@dataclass(frozen=True, slots=True)
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


class NotRegularFile(OSError):
    """A path in the root is a FIFO, device, socket or directory where a file belongs."""


def open_regular(path: Path, flags: int = os.O_RDONLY) -> int:
    """Open without following a link and without blocking; refuse anything but a file.

    O_NONBLOCK keeps a FIFO planted in the root from hanging the opener (spec: root.md#files).
    """
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, FILE_MODE)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_nofollow(path: Path, limit: int = MAX_RECORD_BYTES + 1) -> bytes | None:
    """Read at most `limit` bytes of a regular file without following a link; None if absent.

    Raises OSError(ELOOP) for a symlink and `NotRegularFile` for anything but a file.
    """
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return None
    try:
        chunks: list[bytes] = []
        remaining = limit
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` exclusively and write `data` durably; remove it again on any failure."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
    )
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write via temp file + fsync + rename + dir fsync (spec: root.md#atomic-writes).

    On any failure (a full disk, say) the temp file is removed and the old content stays.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    _write_new(tmp, data)
    if config.crash_before_rename():
        # Simulates a crash between writing the temp file and renaming it.
        os._exit(86)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def lock_holder_pid(lock_path: Path) -> int | None:
    """The pid holding an flock on `lock_path`, from /proc/locks where available."""
    try:
        st = os.stat(lock_path)
        with open("/proc/locks", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    want = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; blocked waiters carry "->".
        if "->" in parts:
            continue
        if len(parts) >= 6 and parts[5] == want and parts[4].isdigit():
            return int(parts[4])
    return None


def _check_lock_file(lock_path: Path) -> None:
    """A lock file must be a plain file of ours: never lock (and truncate) through a link."""
    try:
        st = os.lstat(lock_path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise RootError(lock_path, "lock file is a symlink; refusing to follow it", "symlink")
    if not stat.S_ISREG(st.st_mode):
        raise RootError(lock_path, "lock file is not a regular file", "not_directory")


@contextlib.contextmanager
def locked(lock_path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an OS file lock on `lock_path`; a timeout names the holder's pid when known."""
    # filelock costs ~40 ms to import; reading a record (the CLI's reuse path) needs no lock.
    import filelock  # noqa: PLC0415

    _check_lock_file(lock_path)
    lock = filelock.FileLock(
        lock_path,
        timeout=timeout_s,
        mode=FILE_MODE,
        preserve_lock_file=True,
        thread_local=False,
        poll_interval=LOCK_POLL_S,
    )
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockTimeout(lock_path, timeout_s, lock_holder_pid(lock_path)) from None
    try:
        yield
    finally:
        lock.release()


def read_record_at(path: Path) -> LeaseRecord | Unreadable | None:
    """Read and parse a record for a report; never raises (I/O errors read as unreadable)."""
    try:
        return read_record_strict(path)
    except OSError as exc:
        return Unreadable(f"cannot read: {exc.strerror or exc}")


def read_record_strict(path: Path) -> LeaseRecord | Unreadable | None:
    """Read and parse a record; content problems are `Unreadable`, I/O errors raise OSError.

    The difference matters to a holder: garbage in the record means somebody else wrote it,
    while EMFILE, EIO or EACCES says nothing about the lease and is retried (lease.md#faults).
    """
    try:
        data = read_nofollow(path)
    except NotRegularFile:
        return Unreadable("not a regular file")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Unreadable("record is a symlink; refusing to follow it")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise
    if data is None:
        return None
    return parse(data)


@dataclass(frozen=True, slots=True)
class LeaseStore:
    """One family's lease record, its lock, and the epoch high-water mark."""

    root: Path
    family: str

    @property
    def record_path(self) -> Path:
        """Path of the lease record."""
        return self.root / "leases" / f"{self.family}.json"

    @property
    def lock_path(self) -> Path:
        """Path of the lock file guarding every write of the record."""
        return self.root / "leases" / f"{self.family}.lock"

    @property
    def floor_path(self) -> Path:
        """Path of the highest epoch ever granted (survives a garbage record)."""
        return self.root / "leases" / f"{self.family}.epoch"

    def read(self) -> LeaseRecord | Unreadable | None:
        """The current record, without taking the lock (writes are atomic renames)."""
        return read_record_at(self.record_path)

    def read_raw(self) -> bytes | None:
        """The record's bytes, for change detection; None when absent or unreadable as a file."""
        try:
            return read_nofollow(self.record_path)
        except OSError:
            return b"<unreadable file>"

    def epoch_floor(self) -> int:
        """Highest epoch granted so far, 0 when unknown (garbage or not a file)."""
        try:
            data = read_nofollow(self.floor_path, 64)
        except (NotRegularFile, FileNotFoundError):
            return 0
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return 0
            raise
        try:
            return int((data or b"0").strip() or b"0")
        except ValueError:
            return 0

    def transact(
        self,
        decide: Callable[[LeaseRecord | Unreadable | None], tuple[T, LeaseRecord | None]],
        timeout_s: float = LOCK_TIMEOUT_S,
    ) -> T:
        """Read-modify-write under the lock: `decide` sees the record, returns (result, write)."""
        if not os.path.isdir(self.root):
            raise RootError(self.root, "disappeared")
        try:
            ensure_subdir(self.root, "leases")
        except FileNotFoundError:
            raise RootError(self.root, "disappeared") from None
        with locked(self.lock_path, timeout_s):
            result, write = decide(read_record_strict(self.record_path))
            if write is not None:
                if write.epoch > self.epoch_floor():
                    atomic_write(self.floor_path, f"{write.epoch}\n".encode())
                atomic_write(self.record_path, encode(write))
        return result


# --- tombstones: a bounded log of retirements (spec: root.md#tombstones) -------------------


def tombstone_path(root: Path) -> Path:
    """Path of the tombstone log."""
    return root / "tombstones.jsonl"


def append_tombstone(root: Path, entry: dict[str, Any]) -> None:
    """Append one retirement to the log, keeping only the newest TOMBSTONE_LIMIT entries."""
    path = tombstone_path(root)
    with locked(root / "tombstones.lock"):
        old = read_tombstones(root)
        lines = [json.dumps(e, sort_keys=True) for e in [*old, entry][-TOMBSTONE_LIMIT:]]
        atomic_write(path, ("\n".join(lines) + "\n").encode())


TOMBSTONE_MAX_BYTES = 1024 * 1024
_TOMBSTONE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "family": str,
    "pid": int,
    "version": str,
    "epoch": int,
    "reason": str,
    "at": (int, float),
}


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def valid_tombstone(entry: object) -> bool:
    """Whether a parsed line is a tombstone a reader may show: typed, bounded, finite."""
    if not isinstance(entry, dict):
        return False
    for key, kind in _TOMBSTONE_FIELDS.items():
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            return False
        if isinstance(value, str) and len(value) > 256:
            return False
    at = float(entry["at"])
    return entry["pid"] > 0 and entry["epoch"] >= 0 and 0 <= at < 1e11


def read_tombstones(root: Path) -> list[dict[str, Any]]:
    """Tombstones, oldest first; malformed or out-of-range entries are skipped."""
    try:
        data = read_nofollow(tombstone_path(root), TOMBSTONE_MAX_BYTES)
    except OSError:
        return []
    out: list[dict[str, Any]] = []
    for line in (data or b"").splitlines():
        try:
            entry = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            continue
        if valid_tombstone(entry):
            out.append(entry)
    return out


def layout_leases_dir(root: Path) -> Path:
    """Where the lease records of every family live."""
    return root / "leases"


# --- logs: what a detached daemon writes (spec: root.md#layout) ---------------------------


def log_path(root: Path, family: str) -> Path:
    """Where a detached daemon's stdout/stderr go (rotated to `.1` by the daemon)."""
    return root / "logs" / f"{family}.log"


# --- tokens: per-daemon secrets, readable by the same user only ----------------------------


def token_path(root: Path, family: str, pid: int) -> Path:
    """Where the daemon `pid` of `family` keeps its control token."""
    return root / "tokens" / f"{family}.{pid}.token"


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
