"""Kill escalation with the identity re-checked before every signal (adapter).

Per candidate: assert the port is in the family's range and the class is allowed; then for a
lease-aware daemon an authenticated /api/shutdown, for a legacy one SIGTERM; wait 1 s; SIGKILL;
wait 1 s; confirm the port closed. Identity (pid + create_time + uid + root marker) is read
again immediately before every signal or shutdown call.
"""

from __future__ import annotations

import enum
import json
import signal
from collections.abc import Callable
from pathlib import Path

from tenure.adapters import config, guard, platform
from tenure.adapters.http import request
from tenure.adapters.location import here
from tenure.adapters.ports import open_ports
from tenure.adapters.procfs import pid_namespace
from tenure.adapters.procinfo import (
    Mismatch,
    check_identity,
    read_process,
    signal_verified,
    tree_cookies,
)
from tenure.adapters.store import LeaseStore
from tenure.adapters.tokens import read_token
from tenure.adapters.waiting import wait_until
from tenure.core.classify import CleanupClass, DaemonIdentityRecord, Governance
from tenure.core.families import Family
from tenure.core.hints import TYPE_CHECKING
from tenure.core.identity import ProcessIdentity
from tenure.core.record import LeaseRecord
from tenure.core.values import asdict, field, frozen, mutable

if TYPE_CHECKING:
    from typing import Any

STEP_WAIT_S = 1.0


class CleanupPath(enum.StrEnum):
    """How a swept daemon ended."""

    HTTP_SHUTDOWN = "http_shutdown"
    TERMINATE = "terminate"
    KILL = "kill"


class FailureReason(enum.StrEnum):
    """Why a candidate could not be cleaned."""

    ACCESS_DENIED = "access_denied"
    IDENTITY_CHANGED = "identity_changed"
    STILL_ALIVE_AFTER_KILL = "still_alive_after_kill"
    PORT_STILL_LISTENING = "port_still_listening"
    NO_PID = "no_pid"
    OTHER_USER = "other_user"
    OUT_OF_RANGE = "out_of_range"
    TEST_GUARD = "test_guard"  # under a test, the target is not a process the test started
    FOREIGN = "foreign"  # lives in another boot or namespace: never signalled from here


@frozen
class Swept:
    """A daemon this cleanup ended."""

    pid: int
    port: int
    package_version: str | None
    cleanup_path: str
    reason: str


@frozen
class Skipped:
    """A candidate left alone, and why."""

    pid: int | None
    port: int
    cleanup_class: str
    skip_reason: str | None


@frozen
class Failed:
    """A candidate the cleanup tried and could not end."""

    pid: int | None
    port: int
    failure_reason: str


@mutable
class ReapResult:
    """Exactly what happened: nothing is counted that did not happen."""

    swept: list[Swept] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {k: [asdict(x) for x in getattr(self, k)] for k in ("swept", "skipped", "failed")}

    def extend(self, other: ReapResult) -> None:
        """Merge another family's result."""
        self.swept += other.swept
        self.skipped += other.skipped
        self.failed += other.failed


Confirm = Callable[[DaemonIdentityRecord], bool]


def _journal(rec: DaemonIdentityRecord, action: str, family: Family) -> None:
    path = config.signal_journal()
    if not path:
        return
    line = json.dumps(
        {
            "pid": rec.pid,
            "port": rec.port,
            "action": action,
            "family": family.name,
            "create_time": rec.create_time,  # the identity verified just before this action
        }
    )
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


class _Gone(Exception):
    """The candidate exited on its own before we acted."""


def verify(rec: DaemonIdentityRecord) -> FailureReason | None:
    """Re-read the live process and compare with the classified identity; raise _Gone if gone."""
    assert rec.pid is not None
    if rec.root_marker_name is not None:
        marker: tuple[str, str | None] | None = (rec.root_marker_name, rec.scope_id)
    elif rec.scope_id is not None:
        return FailureReason.IDENTITY_CHANGED  # a scope without a marker cannot be re-proved
    else:
        marker = None
    mismatch = check_identity(_ident(rec), marker)
    if mismatch is Mismatch.GONE:
        raise _Gone
    if mismatch is None and not _in_tree(rec, rec.pid):
        mismatch = Mismatch.IDENTITY_CHANGED
    if mismatch is None and rec.governance is Governance.LEASE and _elsewhere(rec.pid):
        mismatch = Mismatch.FOREIGN  # a holder of another namespace is never ours to end
    return None if mismatch is None else FailureReason(mismatch.value)


def _elsewhere(pid: int) -> bool:
    """Whether `pid` lives in a pid namespace other than ours (lease.md#foreign)."""
    where = here()  # None without /proc facts (portable mode, macOS, Windows)
    if where is None:
        return False
    seen = pid_namespace(pid)
    return seen is not None and seen != where.pid_ns


def _in_tree(rec: DaemonIdentityRecord, pid: int) -> bool:
    """A tree member's proof, re-read before each signal: it still carries the cookie."""
    return rec.tree_cookie is None or rec.tree_cookie in tree_cookies(pid)


def _ident(rec: DaemonIdentityRecord) -> ProcessIdentity:
    assert rec.pid is not None
    # A listener found through this machine's /proc lives here: no location to compare.
    return ProcessIdentity(
        rec.pid, -1.0 if rec.create_time is None else rec.create_time, rec.start_ticks
    )


def _marker(rec: DaemonIdentityRecord) -> tuple[str, str | None] | None:
    return None if rec.root_marker_name is None else (rec.root_marker_name, rec.scope_id)


def _wait_gone(pid: int, timeout: float) -> bool:
    return wait_until(lambda: read_process(pid) is None, timeout) is not None  # zombies: gone


def _signal(rec: DaemonIdentityRecord, sig: signal.Signals, family: Family) -> FailureReason | None:
    if rec.tree_cookie is not None and rec.pid is not None and _in_tree(rec, rec.pid):
        guard.allow(_ident(rec))  # the test guard learns the members of a tree (control.md#run)
    failure = verify(rec)  # raises _Gone; refuses a scope without a marker
    if failure is not None:
        return failure
    _journal(rec, sig.name, family)
    mismatch = signal_verified(_ident(rec), sig, _marker(rec), proof=lambda p: _in_tree(rec, p))
    if mismatch is Mismatch.GONE:
        raise _Gone
    return None if mismatch is None else FailureReason(mismatch.value)


def _end(rec: DaemonIdentityRecord, family: Family, root: Path) -> CleanupPath | FailureReason:
    """Escalate until the process is gone; the path it took or why it failed."""
    assert rec.pid is not None
    if rec.governance is Governance.LEASE:
        token = read_token(root, family.name, rec.pid)
        if token is not None:
            failure = verify(rec)
            if failure is not None:
                return failure
            _journal(rec, "http_shutdown", family)
            request(rec.port, "POST", "/api/shutdown", token=token, timeout=STEP_WAIT_S)
            if _wait_gone(rec.pid, STEP_WAIT_S):
                return CleanupPath.HTTP_SHUTDOWN
    first, grace = _tree_stop(rec, family, root)
    failure = _signal(rec, first, family)
    if failure is not None:
        return failure
    if _wait_gone(rec.pid, grace):
        return CleanupPath.TERMINATE
    failure = _signal(rec, platform.KILL, family)
    if failure is not None:
        return failure
    if _wait_gone(rec.pid, STEP_WAIT_S):
        return CleanupPath.KILL
    return FailureReason.STILL_ALIVE_AFTER_KILL


def _tree_stop(
    rec: DaemonIdentityRecord, family: Family, root: Path
) -> tuple[signal.Signals, float]:
    """The first signal and grace for `rec`: a governed tree's member gets the stop its
    holder recorded for the tree (control.md#stop-policy), anything else SIGTERM and 1 s."""
    if rec.tree_cookie is not None:
        lease = LeaseStore(root, family.name).read()
        if isinstance(lease, LeaseRecord):
            for c in (lease.child, *lease.orphans):
                if c is not None and c.tree == rec.tree_cookie and c.stop is not None:
                    return platform.signal_named(c.stop.signal), max(c.stop.grace_s, STEP_WAIT_S)
    return signal.SIGTERM, STEP_WAIT_S


def reap(
    records: list[DaemonIdentityRecord],
    family: Family,
    root: Path,
    *,
    allow_operator: bool | Confirm = False,
    into: ReapResult | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> ReapResult:
    """Clean `safe_auto` candidates (and `operator_required` when allowed); report exactly.

    `skipped` holds the operator_required candidates left alone (and any that exited before
    we acted); never_touch listeners never appear in the result. Each outcome is added to
    `into` (default: a new result) as it happens, and `should_stop` is asked between
    candidates, never inside one's escalation: an interrupted reset reports exactly what it did.
    """
    result = ReapResult() if into is None else into
    for rec in records:
        if should_stop():
            break
        # never_touch listeners are not candidates; they are reported by the survey, not here.
        if rec.cleanup_class is CleanupClass.NEVER_TOUCH:
            continue
        allowed = rec.cleanup_class is CleanupClass.SAFE_AUTO
        if rec.cleanup_class is CleanupClass.OPERATOR_REQUIRED:
            allowed = allow_operator(rec) if callable(allow_operator) else allow_operator
        if not allowed:
            result.skipped.append(Skipped(rec.pid, rec.port, rec.cleanup_class.value, _reason(rec)))
            continue
        # Safety: never act outside the family's official range, whatever the classifier said.
        if not family.contains(rec.port):
            result.failed.append(Failed(rec.pid, rec.port, FailureReason.OUT_OF_RANGE.value))
            continue
        if rec.pid is None:
            result.failed.append(Failed(None, rec.port, FailureReason.NO_PID.value))
            continue
        try:
            outcome = _end(rec, family, root)
        except _Gone:
            result.skipped.append(
                Skipped(rec.pid, rec.port, rec.cleanup_class.value, "gone_before_action")
            )
            continue
        if isinstance(outcome, FailureReason):
            result.failed.append(Failed(rec.pid, rec.port, outcome.value))
            continue
        if open_ports([rec.port]):
            result.failed.append(
                Failed(rec.pid, rec.port, FailureReason.PORT_STILL_LISTENING.value)
            )
            continue
        why = (
            rec.cleanup_class.value
            if rec.skip_reason is None
            else f"forced:{rec.skip_reason.value}"
        )
        result.swept.append(Swept(rec.pid, rec.port, rec.package_version, outcome.value, why))
    return result


def _reason(rec: DaemonIdentityRecord) -> str | None:
    return None if rec.skip_reason is None else rec.skip_reason.value
