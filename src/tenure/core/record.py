"""Lease record: the versioned on-disk document's types (pure); `codec` reads and writes it.

spec: docs/protocol/lease.md#record
"""

from __future__ import annotations

import enum

from tenure.core.identity import Location, ProcessIdentity
from tenure.core.values import frozen

PROTOCOL = "tenure/1"
MAX_RECORD_BYTES = 64 * 1024
MAX_TEXT = 256  # longest version, family or nonce a record may carry (lease.md#record)
MAX_PID = 2**31 - 1
MAX_EPOCH = 2**53  # JSON numbers stay exact below this
MAX_ORPHANS = 32  # replaced trees a record carries until their stop is confirmed (control.md#run)

# Keys this release does not know, kept on every rewrite (versioning.md#unknown-keys): each as
# (key, its value as canonical JSON), sorted by key, so records stay hashable values.
Extra = tuple[tuple[str, str], ...]


class LeaseState(enum.StrEnum):
    """Whether somebody holds the lease (spec: lease.md#states)."""

    HELD = "held"
    RELEASED = "released"


@frozen
class StopSpec:
    """How a process asks to be stopped (control.md#stop-policy): `signal` first, then
    `grace_s` to leave before SIGKILL. For a governed tree, `tree` says whether the signal goes
    to every member (True) or to the child alone, which ends its own children (SIGKILL still
    reaches every member left after the grace)."""

    signal: str = "SIGTERM"
    grace_s: float = 5.0
    tree: bool = True


@frozen
class Holder:
    """Who holds (or last held) a lease: enough to prove the process is the same one."""

    pid: int
    create_time: float
    nonce: str
    version: str
    port: int | None
    started_at: float
    start_ticks: int | None = None  # clock ticks since boot (lease.md#identity); optional
    where: Location | None = None  # where the pid means something; absent in older records
    control: bool = False  # `port` serves tenure's control plane (GET /api/health, control.md)
    stop: StopSpec | None = None  # how stoppers end this holder; absent: SIGTERM, the default grace
    extra: Extra = ()  # the holder's keys this release does not know (kept while it holds)

    @property
    def ident(self) -> ProcessIdentity:
        """The holder process's identity, with its location."""
        return ProcessIdentity(self.pid, self.create_time, self.start_ticks, self.where)


@frozen
class Child:
    """The unmodified daemon a `tenure run` holder governs: part of its holder, never a stranger."""

    pid: int
    create_time: float
    start_ticks: int | None = None
    tree: str | None = None  # the cookie its process tree inherits (control.md#run)
    stop: StopSpec | None = None  # how its tree is ended, by whoever ends it (control.md#run)


@frozen
class Supersession:
    """A strictly newer version asked the holder to retire (spec: lease.md#supersession)."""

    version: str
    pid: int
    at: float


@frozen
class StopRequest:
    """Someone asked the holder to leave through the record (spec: lease.md#stop)."""

    pid: int
    at: float


@frozen
class Readiness:
    """A holder that is not serving yet (control.md#readiness): it is ready, or has released,
    within `within_s` of taking the lease; `at` is when it became ready (None: not yet)."""

    within_s: float
    at: float | None = None


@frozen
class LeaseScope:
    """The directory a scoped lease is for (a project, a worktree): its resolved path and
    what identifies the directory itself, so a directory replaced at the path is another
    scope (lease.md#scopes)."""

    path: str
    dev: int
    ino: int

    @property
    def digest(self) -> str:
        """16 hex digits naming the scope in file names: never the path text."""
        import hashlib  # noqa: PLC0415  (scoped leases only)

        text = f"{self.dev}:{self.ino}:{self.path}".encode("utf-8", "surrogateescape")
        return hashlib.sha256(text).hexdigest()[:16]


@frozen
class LeaseRecord:
    """One family's lease document."""

    family: str
    epoch: int
    holder: Holder
    ttl_s: float
    renewed_at: float
    seq: int
    state: LeaseState
    superseded_by: Supersession | None = None
    root_id: str | None = None  # the root instance it was granted in (lease.md#fencing)
    ports: tuple[int, int] | None = None  # the family's port range, inclusive, when it has one
    child: Child | None = None  # the process a `tenure run` wrapper governs for the holder
    heartbeat_s: float | None = None  # the holder's renew interval (lease.md#expiry); optional
    stop_requested: StopRequest | None = None  # a stop asked through the record (lease.md#stop)
    protocol: str = PROTOCOL
    # Trees of replaced holders whose stop nobody has confirmed yet (control.md#run): they stay
    # here, whoever holds, until a holder saw every member gone.
    orphans: tuple[Child, ...] = ()
    # Absent: the holder serves once it holds. Present: whether its child is ready yet — what
    # a superseded wrapper in standby waits for before it lets go (control.md#readiness).
    ready: Readiness | None = None
    scope: LeaseScope | None = None  # absent: the user scope (lease.md#scopes)
    extra: Extra = ()  # the lease's keys this release does not know (kept on every write)

    @property
    def starting(self) -> bool:
        """Whether the holder said it is not ready yet (a `tenure run` child starting)."""
        return self.ready is not None and self.ready.at is None

    @property
    def child_ident(self) -> ProcessIdentity | None:
        """The governed child's identity; it lives where its holder lives."""
        if self.child is None:
            return None
        c = self.child
        return ProcessIdentity(c.pid, c.create_time, c.start_ticks, self.holder.where)


@frozen
class Unreadable:
    """A record that exists but cannot be trusted; `reason` says why, for humans.

    A record of a newer protocol that still states a sane `epoch` and `ttl_s` keeps them: it
    is judged by its own TTL, and its epoch is never granted again (lease.md#unreadable)."""

    reason: str
    epoch: int | None = None
    ttl_s: float | None = None
