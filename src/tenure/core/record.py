"""Lease record: the versioned on-disk document, with a pure encoder and a total parser.

spec: docs/protocol/lease.md#record
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from typing import Any

PROTOCOL = "tenure/1"
MAX_RECORD_BYTES = 64 * 1024
MAX_TEXT = 256  # longest version, family or nonce a record may carry (lease.md#record)
MAX_PID = 2**31 - 1
MAX_EPOCH = 2**53  # JSON numbers stay exact below this


class LeaseState(enum.StrEnum):
    """Whether somebody holds the lease (spec: lease.md#states)."""

    HELD = "held"
    RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or last held) a lease: enough to prove the process is the same one."""

    pid: int
    create_time: float
    nonce: str
    version: str
    port: int | None
    started_at: float


@dataclass(frozen=True, slots=True)
class Child:
    """The unmodified daemon a `tenure run` holder governs: part of its holder, never a stranger."""

    pid: int
    create_time: float


@dataclass(frozen=True, slots=True)
class Supersession:
    """A strictly newer version asked the holder to retire (spec: lease.md#supersession)."""

    version: str
    pid: int
    at: float


@dataclass(frozen=True, slots=True)
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
    protocol: str = PROTOCOL


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record that exists but cannot be trusted; `reason` says why, for humans."""

    reason: str


def encode(record: LeaseRecord) -> bytes:
    """Serialise a record to canonical JSON bytes.

    The bytes are checked by the same parser every reader uses: a record that readers would
    call unreadable (a 70,000-character version, pid -1) raises ValueError and is never written.
    """
    data = _encode(record)
    back = parse(data)
    if isinstance(back, Unreadable):
        raise ValueError(f"refusing to write an invalid lease record: {back.reason}")
    return data


def _encode(record: LeaseRecord) -> bytes:
    doc: dict[str, Any] = {
        "protocol": record.protocol,
        "family": record.family,
        "epoch": record.epoch,
        "holder": {
            "pid": record.holder.pid,
            "create_time": record.holder.create_time,
            "nonce": record.holder.nonce,
            "version": record.holder.version,
            "port": record.holder.port,
            "started_at": record.holder.started_at,
        },
        "ttl_s": record.ttl_s,
        "renewed_at": record.renewed_at,
        "seq": record.seq,
        "state": record.state.value,
        "superseded_by": None
        if record.superseded_by is None
        else {
            "version": record.superseded_by.version,
            "pid": record.superseded_by.pid,
            "at": record.superseded_by.at,
        },
    }
    if record.root_id is not None:
        doc["root_id"] = record.root_id
    if record.ports is not None:
        doc["ports"] = list(record.ports)
    if record.child is not None:
        doc["child"] = {"pid": record.child.pid, "create_time": record.child.create_time}
    return (json.dumps(doc, sort_keys=True, allow_nan=False) + "\n").encode()


class _Bad(ValueError):
    """Internal: the document has the wrong shape."""


def _field(doc: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = doc.get(key)
    # bool is an int subclass; a JSON true is never a valid number here.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _Bad(f"{key}: expected {kind}, got bool")
    if not isinstance(value, kind):
        raise _Bad(f"{key}: expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def _number(doc: dict[str, Any], key: str) -> float:
    value = _field(doc, key, (int, float))
    if not math.isfinite(value):
        raise _Bad(f"{key}: not a finite number")
    return float(value)


def _text(doc: dict[str, Any], key: str) -> str:
    value: str = _field(doc, key, str)
    if len(value) > MAX_TEXT:
        raise _Bad(f"{key}: longer than {MAX_TEXT} characters")
    return value


def _int(doc: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value: int = _field(doc, key, int)
    if not lo <= value <= hi:
        raise _Bad(f"{key}: {value} is outside [{lo}, {hi}]")
    return value


def _ports(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in value)
        and value[0] <= value[1]
    )
    if not ok:
        raise _Bad("ports: expected [lo, hi] within 1..65535")
    return (value[0], value[1])


def _object(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value: dict[str, Any] = _field(doc, key, dict)
    return value


def _parse_holder(doc: dict[str, Any]) -> Holder:
    port = doc.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise _Bad("holder.port: expected int or null")
    if port is not None and not 1 <= port <= 65535:
        raise _Bad(f"holder.port: {port} is not a TCP port")
    create_time = _number(doc, "create_time")
    if create_time < 0:
        raise _Bad("holder.create_time: negative")
    return Holder(
        pid=_int(doc, "pid", 1, MAX_PID),
        create_time=create_time,
        nonce=_text(doc, "nonce"),
        version=_text(doc, "version"),
        port=port,
        started_at=_number(doc, "started_at"),
    )


def _parse_supersession(doc: Any) -> Supersession | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise _Bad("superseded_by: expected object or null")
    return Supersession(
        version=_text(doc, "version"), pid=_int(doc, "pid", 1, MAX_PID), at=_number(doc, "at")
    )


def parse(data: bytes) -> LeaseRecord | Unreadable:
    """Parse record bytes; never raises. Unknown keys are ignored (spec: lease.md#readers)."""
    if not data:
        return Unreadable("empty record")
    if len(data) > MAX_RECORD_BYTES:
        return Unreadable(f"record larger than {MAX_RECORD_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return Unreadable(f"not JSON: {type(exc).__name__}")
    if not isinstance(doc, dict):
        return Unreadable("not a JSON object")
    try:
        protocol = _field(doc, "protocol", str)
        if not protocol.startswith("tenure/"):
            raise _Bad(f"protocol {protocol[:40]!r} is not a tenure protocol")
        if protocol != PROTOCOL:
            raise _Bad(f"protocol {protocol[:40]!r} is not {PROTOCOL}")
        state_text = _field(doc, "state", str)
        try:
            state = LeaseState(state_text)
        except ValueError:
            raise _Bad(f"state {state_text[:40]!r} unknown") from None
        epoch = _int(doc, "epoch", 0, MAX_EPOCH)
        seq = _int(doc, "seq", 0, MAX_EPOCH)
        ttl_s = _number(doc, "ttl_s")
        if ttl_s <= 0:
            raise _Bad("ttl_s: must be positive")
        ports = _ports(doc.get("ports"))
        child_doc = doc.get("child")
        child = None
        if child_doc is not None:
            if not isinstance(child_doc, dict):
                raise _Bad("child: expected an object")
            child = Child(
                pid=_int(child_doc, "pid", 1, MAX_PID),
                create_time=_number(child_doc, "create_time"),
            )
        root_id = doc.get("root_id")
        if root_id is not None and not (isinstance(root_id, str) and 0 < len(root_id) <= 64):
            raise _Bad("root_id: expected a short string or absent")
        return LeaseRecord(
            protocol=protocol,
            family=_text(doc, "family"),
            epoch=epoch,
            holder=_parse_holder(_object(doc, "holder")),
            ttl_s=ttl_s,
            renewed_at=_number(doc, "renewed_at"),
            seq=seq,
            state=state,
            superseded_by=_parse_supersession(doc.get("superseded_by")),
            root_id=root_id,
            ports=ports,
            child=child,
        )
    except _Bad as exc:
        return Unreadable(f"wrong shape: {exc}")
