"""What one tenure of a `tenure run` wrapper starts with and how it ended (values shared by
`run` and its standby). spec: docs/protocol/control.md#run
"""

from __future__ import annotations

from tenure.adapters.child import Watchdog
from tenure.adapters.installs import InstallWatch
from tenure.adapters.readiness import ReadySpec, ReadyWatch
from tenure.adapters.tree import Tree
from tenure.core.hints import TYPE_CHECKING
from tenure.core.identity import ProcessIdentity
from tenure.core.record import LeaseScope, StopSpec
from tenure.core.values import frozen, mutable
from tenure.requester.standby import Watch

if TYPE_CHECKING:
    import subprocess


@frozen
class Launch:
    """What one tenure of the wrapper starts with: its command and how it is stopped, the
    port it was given or prefers, and how readiness is judged (control.md#readiness)."""

    command: tuple[str, ...]
    stop: StopSpec
    ready: ReadySpec
    idle_s: float
    port: int | None  # given by a launcher (TENURE_PORT): fixed
    ports: tuple[int, int] | None
    subreaper: bool
    watch: tuple[str, ...] = ()  # files whose new install restarts the child in place
    socket: bool = False  # the wrapper binds the port and passes it on (--socket)
    scope: LeaseScope | None = None  # the directory the lease is for (--scope)


@frozen
class Running:
    """A child this wrapper started, and its tree: kept serving through a socket handover,
    so that a rollback takes it back (control.md#socket-handover)."""

    child: subprocess.Popen[bytes]
    watch: Watchdog | None
    tree: Tree
    cookie: str
    ident: ProcessIdentity | None
    stop: StopSpec | None


@frozen
class Done:
    """How one tenure ended: the exit code, and the lease to stand by on when superseded."""

    code: int
    standby_after: Watch | None = None
    kept: Running | None = None  # our tree, still serving for a successor handed the socket


@mutable
class Served:
    """How the child went: its exit code (0 when the wrapper ended it), whether it became
    ready, and why not (for the message of a rolled-back successor)."""

    code: int = 0
    ready: bool = False
    why: str = ""
    upgraded: str | None = None  # the watched file whose new install ended this child
    kept: Running | None = None  # handed over: the tree still serves until the successor does


@frozen
class Looks:
    """What the governing loop looks at besides the tree: readiness (until the child is ready;
    `deadline` bounds it when a standby waits), the port whose connections count as work
    (`--idle-seconds`), and the files whose new install restarts the child."""

    readiness: ReadyWatch
    deadline: float | None
    timeout_s: float
    idle_port: int | None
    installs: InstallWatch
