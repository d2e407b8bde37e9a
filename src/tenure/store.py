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

from tenure.errors import LockTimeout, RootError
from tenure.record import MAX_RECORD_BYTES, LeaseRecord, Unreadable, encode, parse

ROOT_ENV = "TENURE_ROOT"
FAULT_ENV = "TENURE_FAULT_CRASH_BEFORE_RENAME"  # test-only fault injection, off unless set
LOCK_TIMEOUT_S = 2.0
LOCK_POLL_S = 0.005  # waiters retry this often; the default 50 ms would serialise starts slowly
TOMBSTONE_LIMIT = 200
FILE_MODE = 0o600
DIR_MODE = 0o700

T = TypeVar("T")


def default_root() -> Path:
    """`$TENURE_ROOT`, else the platform's per-user state dir for tenure."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs  # noqa: PLC0415  (costs ~50 ms at import; only needed without the env)

    return Path(platformdirs.user_state_dir("tenure", appauthor=False))


def check_root(path: Path) -> Path:
    """Validate an existing root without changing anything; return its resolved path."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise RootError(path, "does not exist") from None
    if stat.S_ISLNK(st.st_mode):
        raise RootError(path, "is a symlink; refusing to follow it")
    if not stat.S_ISDIR(st.st_mode):
        raise RootError(path, "is not a directory")
    if st.st_uid != os.geteuid():
        raise RootError(path, f"is owned by uid {st.st_uid}, not {os.geteuid()}")
    if st.st_mode & 0o022:
        raise RootError(path, f"is group/world-writable (mode {stat.S_IMODE(st.st_mode):04o})")
    return path.resolve()


def ensure_root(path: Path) -> Path:
    """Create the root 0700 if missing, then validate it (spec: root.md#permissions)."""
    if not os.path.lexists(path):
        path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=DIR_MODE)
    root = check_root(path)
    (root / "leases").mkdir(mode=DIR_MODE, exist_ok=True)
    return root


def read_nofollow(path: Path, limit: int = MAX_RECORD_BYTES + 1) -> bytes | None:
    """Read a file without following a symlink; None when absent.

    Raises OSError(ELOOP) for a symlink so callers can say so.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
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


def atomic_write(path: Path, data: bytes) -> None:
    """Write via temp file + fsync + rename + dir fsync (spec: root.md#atomic-writes)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE
    )
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if os.environ.get(FAULT_ENV) == "1":
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


@contextlib.contextmanager
def locked(lock_path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an OS file lock on `lock_path`; a timeout names the holder's pid when known."""
    # filelock costs ~40 ms to import; reading a record (the CLI's reuse path) needs no lock.
    import filelock  # noqa: PLC0415

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
    """Read and parse a record; never raises for content problems."""
    try:
        data = read_nofollow(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return Unreadable("record is a symlink; refusing to follow it")
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        return Unreadable(f"cannot read: {exc.strerror}")
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
        """Highest epoch granted so far, 0 when unknown."""
        try:
            data = read_nofollow(self.floor_path, 64)
        except OSError:
            return 0
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
        try:
            self.record_path.parent.mkdir(mode=DIR_MODE, exist_ok=True)
        except FileNotFoundError:
            raise RootError(self.root, "disappeared") from None
        with locked(self.lock_path, timeout_s):
            result, write = decide(self.read())
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


def read_tombstones(root: Path) -> list[dict[str, Any]]:
    """Tombstones, oldest first; malformed lines are skipped."""
    try:
        data = read_nofollow(tombstone_path(root), 4 * 1024 * 1024)
    except OSError:
        return []
    out: list[dict[str, Any]] = []
    for line in (data or b"").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


# --- tokens: per-daemon secrets, readable by the same user only ----------------------------


def token_path(root: Path, family: str, pid: int) -> Path:
    """Where the daemon `pid` of `family` keeps its control token."""
    return root / "tokens" / f"{family}.{pid}.token"


def write_token(root: Path, family: str, pid: int, token: str) -> Path:
    """Store a daemon's token 0600."""
    path = token_path(root, family, pid)
    path.parent.mkdir(mode=DIR_MODE, exist_ok=True)
    atomic_write(path, token.encode())
    return path


def read_token(root: Path, family: str, pid: int) -> str | None:
    """A daemon's token, or None if it has none on disk."""
    try:
        data = read_nofollow(token_path(root, family, pid), 256)
    except OSError:
        return None
    return data.decode("ascii", "replace").strip() if data else None
