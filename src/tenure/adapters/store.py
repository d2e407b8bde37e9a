"""The lease store (adapter): one family's record, read and written under its OS lock.

spec: docs/protocol/lease.md#transitions, root.md#layout
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from tenure.adapters.files import (
    LOCK_TIMEOUT_S,
    atomic_write,
    locked,
    read_nofollow,
)
from tenure.adapters.root import RootLayout, ensure_subdir
from tenure.core.codec import encode, parse
from tenure.core.hints import TypeVar
from tenure.core.inputs import check_family, lease_key
from tenure.core.record import LeaseRecord, LeaseScope, LeaseState, Unreadable
from tenure.core.values import frozen
from tenure.errors import NotRegularFile, RootError

T = TypeVar("T")


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


@frozen
class LeaseStore:
    """One family's lease record in one scope (None: the user scope), its lock, and the
    epoch high-water mark."""

    root: Path
    family: str
    scope: LeaseScope | None = None

    def __post_init__(self) -> None:
        check_family(self.family)  # before any file is touched (root.md#family-names)

    @property
    def key(self) -> str:
        """The lease's name in file names: the family, or the family and its scope's digest."""
        return lease_key(self.family, None if self.scope is None else self.scope.digest)

    @property
    def record_path(self) -> Path:
        """Path of the lease record."""
        return RootLayout(self.root).record(self.key)

    @property
    def lock_path(self) -> Path:
        """Path of the lock file guarding every write of the record."""
        return RootLayout(self.root).lock(self.key)

    @property
    def floor_path(self) -> Path:
        """Path of the highest epoch ever granted (survives a garbage record)."""
        return RootLayout(self.root).epoch_floor(self.key)

    def read(self) -> LeaseRecord | Unreadable | None:
        """The current record, without taking the lock (writes are atomic renames)."""
        return self._placed(read_record_at(self.record_path))

    def _placed(self, rec: LeaseRecord | Unreadable | None) -> LeaseRecord | Unreadable | None:
        """A record in this file must be of this family and scope: one naming another scope
        (or none, in a scoped file) was put there by someone else (lease.md#scopes)."""
        if not isinstance(rec, LeaseRecord):
            return rec
        if rec.family != self.family:
            return Unreadable(f"names family {rec.family!r}, not {self.family!r}")
        theirs = None if rec.scope is None else rec.scope.digest
        if theirs != (None if self.scope is None else self.scope.digest):
            return Unreadable("names another scope than its file's")
        return rec

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

    def check_writable(self) -> None:
        """Raise `RootError` when a directory stands where the record or the epoch floor
        belongs: no rename can replace it, so waiting for it is pointless (root.md#files)."""
        for path in (self.record_path, self.floor_path):
            try:
                st = os.lstat(path)
            except OSError:
                continue  # absent, or a problem the write itself reports
            if stat.S_ISDIR(st.st_mode):
                raise RootError(
                    path, "a directory stands where a lease file belongs", "not_directory"
                )

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
            result, write = decide(self._placed(read_record_strict(self.record_path)))
            if write is not None:
                self.check_writable()  # before the floor moves: nothing half-written
                if write.epoch > self.epoch_floor():
                    atomic_write(self.floor_path, f"{write.epoch}\n".encode())
                atomic_write(self.record_path, encode(write))
        return result

    def prune_if_released_before(self, cutoff_wall: float) -> bool:
        """Remove the record when it says `released` at a time before `cutoff_wall`, under the
        lock; True when removed. The lock, start lock and epoch floor stay: a waiter may hold
        the lock file, and epochs must keep rising (lease.md#pruning)."""
        if not os.path.lexists(self.record_path):
            return False  # nothing to prune: no lock taken, no lock file (or leases/) made
        with locked(self.lock_path, LOCK_TIMEOUT_S):
            current = read_record_strict(self.record_path)
            if (
                not isinstance(current, LeaseRecord)
                or current.state is not LeaseState.RELEASED
                or current.renewed_at >= cutoff_wall
            ):
                return False
            if current.epoch > self.epoch_floor():
                atomic_write(self.floor_path, f"{current.epoch}\n".encode())
            os.unlink(self.record_path)
        return True


def log_path(root: Path, family: str) -> Path:
    """Where a detached daemon's stdout/stderr go (rotated to `.1` by the daemon)."""
    return RootLayout(root).log(family)
