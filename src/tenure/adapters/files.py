"""Files of the daemon root (adapter): no-follow, non-blocking reads, atomic writes, OS locks.

spec: docs/protocol/root.md#files, root.md#atomic-writes
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tenure.adapters import config, platform
from tenure.adapters.procinfo import lock_holder_pid
from tenure.core.record import MAX_RECORD_BYTES
from tenure.errors import LockTimeout, NotRegularFile, RootError

LOCK_TIMEOUT_S = 2.0
LOCK_POLL_S = 0.005  # waiters retry this often; the default 50 ms would serialise starts slowly
FILE_MODE = 0o600
DIR_MODE = 0o700


def open_regular(path: Path, flags: int = os.O_RDONLY) -> int:
    """Open without following a link and without blocking; refuse anything but a file.

    O_NONBLOCK keeps a FIFO planted in the root from hanging the opener (spec: root.md#files).
    """
    fd = os.open(path, flags | platform.NOFOLLOW | platform.NONBLOCK | platform.CLOEXEC, FILE_MODE)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", str(path))
        platform.set_blocking(fd, True)
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


def write_new(path: Path, data: bytes) -> None:
    """Create `path` exclusively and write `data` durably; remove it again on any failure."""
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | platform.NOFOLLOW | platform.CLOEXEC, FILE_MODE
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
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    write_new(tmp, data)
    if config.crash_before_rename():
        # Simulates a crash between writing the temp file and renaming it.
        os._exit(86)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if platform.WINDOWS:
        return  # a directory cannot be opened (or fsynced) there; the rename is what counts
    dfd = os.open(path.parent, os.O_RDONLY | platform.DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


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
    """Hold an OS file lock on `lock_path`; a timeout names the holder's pid when known.

    POSIX: `flock(2)` on the file (mode 0600, never deleted, opened without following a link
    or blocking on a FIFO), polled every LOCK_POLL_S up to `timeout_s` (spec: lease.md#lock).
    Windows: `LockFileEx` through filelock, imported only there.
    """
    _check_lock_file(lock_path)
    if sys.platform == "win32":
        with _locked_windows(lock_path, timeout_s):
            yield
        return
    import fcntl  # noqa: PLC0415  (POSIX only)

    fd = open_regular(lock_path, os.O_RDWR | os.O_CREAT)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(lock_path, timeout_s, lock_holder_pid(lock_path)) from None
                time.sleep(LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


@contextlib.contextmanager
def _locked_windows(lock_path: Path, timeout_s: float) -> Iterator[None]:  # pragma: no cover
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
