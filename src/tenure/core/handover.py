"""Pure decisions about a holder leaving: supersession by a newer version, a stop asked
through the record, and the release by compare-and-set. No I/O.
spec: docs/protocol/lease.md#supersession, #stop, #release
"""

from __future__ import annotations

import enum

from tenure.core.hints import TYPE_CHECKING, Generic, TypeVar
from tenure.core.record import LeaseRecord, LeaseState, StopRequest, Supersession, Unreadable
from tenure.core.values import frozen, replace

if TYPE_CHECKING:
    from packaging.version import Version

V = TypeVar("V", bound=enum.Enum)


@frozen
class Decision(Generic[V]):
    """A verdict, and the record to write for it (None: write nothing)."""

    verdict: V
    write: LeaseRecord | None


def parse_version(text: str) -> Version | None:
    """A PEP 440 version, or None when the text is not one."""
    # packaging costs ~10 ms to import: only when two versions differ.
    from packaging.version import InvalidVersion, Version  # noqa: PLC0415

    try:
        return Version(text)
    except (InvalidVersion, ValueError):  # ValueError: more digits than int() converts
        return None


def is_newer(candidate: str, incumbent: str) -> bool:
    """True only when both parse and candidate is strictly newer (spec: lease.md#supersession)."""
    if candidate == incumbent:
        return False  # the reuse path: no parsing needed
    cand, inc = parse_version(candidate), parse_version(incumbent)
    return cand is not None and inc is not None and cand > inc


class SupersedeVerdict(enum.StrEnum):
    """Outcome of a supersession request."""

    REQUESTED = "requested"
    NOT_NEWER = "not_newer"
    UNPARSEABLE = "unparseable"
    NOT_HELD = "not_held"


SupersedeDecision = Decision[SupersedeVerdict]  # `write` carries `superseded_by` when REQUESTED


def decide_supersede(
    current: LeaseRecord | Unreadable | None, version: str, pid: int, now_wall: float
) -> SupersedeDecision:
    """Ask the holder to retire; only a strictly newer PEP 440 version may ask."""
    if not isinstance(current, LeaseRecord) or current.state is not LeaseState.HELD:
        return Decision(SupersedeVerdict.NOT_HELD, None)
    if parse_version(version) is None or parse_version(current.holder.version) is None:
        return Decision(SupersedeVerdict.UNPARSEABLE, None)
    if not is_newer(version, current.holder.version):
        return Decision(SupersedeVerdict.NOT_NEWER, None)
    request = Supersession(version=version, pid=pid, at=now_wall)
    return Decision(SupersedeVerdict.REQUESTED, replace(current, superseded_by=request))


def decide_stop_request(
    current: LeaseRecord | Unreadable | None, epoch: int, pid: int, now_wall: float
) -> LeaseRecord | None:
    """Ask the holder of `epoch` to leave through the record (lease.md#stop); the record to
    write, or None when the record no longer holds that epoch (nothing to ask)."""
    if not isinstance(current, LeaseRecord) or current.state is not LeaseState.HELD:
        return None
    if current.epoch != epoch:
        return None
    return replace(current, stop_requested=StopRequest(pid=pid, at=now_wall))


class ReleaseVerdict(enum.StrEnum):
    """Outcome of a release (spec: lease.md#release)."""

    RELEASED = "released"
    NOT_MINE = "not_mine"  # compare-and-set failed: never clobber a newer holder


ReleaseDecision = Decision[ReleaseVerdict]


def decide_release(
    current: LeaseRecord | Unreadable | None, epoch: int, nonce: str, now_wall: float
) -> ReleaseDecision:
    """Release by compare-and-set on epoch and nonce."""
    if (
        isinstance(current, LeaseRecord)
        and current.epoch == epoch
        and current.holder.nonce == nonce
        and current.state is LeaseState.HELD
    ):
        released = replace(current, state=LeaseState.RELEASED, renewed_at=now_wall)
        return Decision(ReleaseVerdict.RELEASED, released)
    return Decision(ReleaseVerdict.NOT_MINE, None)
