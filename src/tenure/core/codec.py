"""The lease record's bytes (pure): a canonical encoder and a total parser.

Every reader parses through `parse`, which never raises: garbage, a wrong shape or an
out-of-range value is `Unreadable` with a reason. spec: docs/protocol/lease.md#record
"""

from __future__ import annotations

import json
import math

from tenure.core.hints import TYPE_CHECKING
from tenure.core.record import (
    MAX_EPOCH,
    MAX_ORPHANS,
    MAX_PID,
    MAX_RECORD_BYTES,
    PROTOCOL,
    Child,
    Extra,
    Holder,
    LeaseRecord,
    LeaseState,
    StopRequest,
    StopSpec,
    Supersession,
    Unreadable,
)
from tenure.core.shapes import (
    Bad,
    family_name,
    field,
    integer,
    number,
    optional_integer,
    parse_ready,
    parse_scope,
    parse_stop,
    parse_where,
    port_range,
    text,
    tree_cookie,
)
from tenure.core.timing import TTL_MAX_S, TTL_MIN_S

if TYPE_CHECKING:
    from typing import Any


# The keys this release reads; any other is kept as it was on every rewrite (versioning.md).
RECORD_KEYS = frozenset(
    [
        "protocol",
        "family",
        "epoch",
        "holder",
        "ttl_s",
        "renewed_at",
        "seq",
        "state",
        "superseded_by",
        "root_id",
        "ports",
        "child",
        "heartbeat_s",
        "stop_requested",
        "orphans",
        "ready",
        "scope",
    ]
)
HOLDER_KEYS = frozenset(
    [
        "pid",
        "create_time",
        "nonce",
        "version",
        "port",
        "started_at",
        "start_ticks",
        "control",
        "where",
        "stop",
    ]
)


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


def _encode_holder(h: Holder) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "pid": h.pid,
        "create_time": h.create_time,
        "nonce": h.nonce,
        "version": h.version,
        "port": h.port,
        "started_at": h.started_at,
    }
    if h.start_ticks is not None:
        doc["start_ticks"] = h.start_ticks
    if h.control:
        doc["control"] = True
    if h.stop is not None:
        doc["stop"] = _encode_stop(h.stop)
    if h.where is not None:
        w = h.where
        doc["where"] = {
            "boot_id": w.boot_id,
            "pid_ns": w.pid_ns,
            "time_ns": w.time_ns,
            "host": w.host,
        }
    return _with_extra(doc, h.extra)


def _with_extra(doc: dict[str, Any], extra: Extra) -> dict[str, Any]:
    """`doc` plus the keys this release does not know, as they were read (never over a key
    it writes itself)."""
    for key, value in extra:
        doc.setdefault(key, json.loads(value))
    return doc


def _encode_child(c: Child) -> dict[str, Any]:
    doc: dict[str, Any] = {"pid": c.pid, "create_time": c.create_time}
    if c.start_ticks is not None:
        doc["start_ticks"] = c.start_ticks
    if c.tree is not None:
        doc["tree"] = c.tree
    if c.stop is not None:
        doc["stop"] = _encode_stop(c.stop)
    return doc


def _encode_stop(spec: StopSpec) -> dict[str, Any]:
    return {"signal": spec.signal, "grace_s": spec.grace_s, "tree": spec.tree}


def _encode(record: LeaseRecord) -> bytes:
    doc: dict[str, Any] = {
        "protocol": record.protocol,
        "family": record.family,
        "epoch": record.epoch,
        "holder": _encode_holder(record.holder),
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
        doc["child"] = _encode_child(record.child)
    if record.orphans:
        doc["orphans"] = [_encode_child(c) for c in record.orphans]
    if record.ready is not None:
        doc["ready"] = {"within_s": record.ready.within_s, "at": record.ready.at}
    if record.scope is not None:
        sc = record.scope
        doc["scope"] = {"path": sc.path, "dev": sc.dev, "ino": sc.ino}
    if record.heartbeat_s is not None:
        doc["heartbeat_s"] = record.heartbeat_s
    if record.stop_requested is not None:
        doc["stop_requested"] = {"pid": record.stop_requested.pid, "at": record.stop_requested.at}
    doc = _with_extra(doc, record.extra)
    return (json.dumps(doc, sort_keys=True, allow_nan=False) + "\n").encode()


def _parse_holder(doc: dict[str, Any]) -> Holder:
    port = optional_integer(doc, "port", 1, 65535)
    create_time = number(doc, "create_time")
    if create_time < 0:
        raise Bad("holder.create_time: negative")
    control = doc.get("control", False)
    if not isinstance(control, bool):
        raise Bad("holder.control: expected a boolean")
    if control and port is None:
        raise Bad("holder.control: true without a port")
    return Holder(
        extra=_extra(doc, HOLDER_KEYS),
        pid=integer(doc, "pid", 1, MAX_PID),
        create_time=create_time,
        nonce=text(doc, "nonce"),
        version=text(doc, "version"),
        port=port,
        started_at=number(doc, "started_at"),
        start_ticks=optional_integer(doc, "start_ticks", 0, MAX_EPOCH),
        where=parse_where(doc.get("where")),
        control=control,
        stop=parse_stop(doc.get("stop"), "holder.stop"),
    )


def _extra(doc: dict[str, Any], known: frozenset[str]) -> Extra:
    """The keys of `doc` this release does not know, each with its value as canonical JSON."""
    return tuple(
        (key, json.dumps(doc[key], sort_keys=True, allow_nan=False))
        for key in sorted(doc)
        if key not in known
    )


def _parse_child(doc: Any, where: str) -> Child:
    if not isinstance(doc, dict):
        raise Bad(f"{where}: expected an object")
    return Child(
        pid=integer(doc, "pid", 1, MAX_PID),
        create_time=number(doc, "create_time"),
        start_ticks=optional_integer(doc, "start_ticks", 0, MAX_EPOCH),
        tree=tree_cookie(doc.get("tree")),
        stop=parse_stop(doc.get("stop"), f"{where}.stop"),
    )


def _parse_orphans(value: Any) -> tuple[Child, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_ORPHANS:
        raise Bad(f"orphans: expected a list of at most {MAX_ORPHANS} objects")
    return tuple(_parse_child(doc, "orphans[]") for doc in value)


def _newer(doc: dict[str, Any], protocol: str) -> Unreadable:
    """A record of another tenure protocol: unreadable, keeping the epoch and TTL it states
    when they are sane, so it is judged on its own terms (lease.md#unreadable)."""
    reason = f"wrong shape: protocol {protocol[:40]!r} is not {PROTOCOL}"
    epoch, ttl = doc.get("epoch"), doc.get("ttl_s")
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and 0 <= epoch <= MAX_EPOCH):
        epoch = None
    if not (
        isinstance(ttl, int | float)
        and not isinstance(ttl, bool)
        and math.isfinite(ttl)
        and TTL_MIN_S <= ttl <= TTL_MAX_S
    ):
        ttl = None
    return Unreadable(reason, epoch, None if ttl is None else float(ttl))


def _parse_stop_request(doc: Any) -> StopRequest | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise Bad("stop_requested: expected object or null")
    return StopRequest(pid=integer(doc, "pid", 1, MAX_PID), at=number(doc, "at"))


def _parse_supersession(doc: Any) -> Supersession | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise Bad("superseded_by: expected object or null")
    return Supersession(
        version=text(doc, "version"), pid=integer(doc, "pid", 1, MAX_PID), at=number(doc, "at")
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
        protocol = field(doc, "protocol", str)
        if not protocol.startswith("tenure/"):
            raise Bad(f"protocol {protocol[:40]!r} is not a tenure protocol")
        if protocol != PROTOCOL:
            return _newer(doc, protocol)
        state_text = field(doc, "state", str)
        try:
            state = LeaseState(state_text)
        except ValueError:
            raise Bad(f"state {state_text[:40]!r} unknown") from None
        epoch = integer(doc, "epoch", 0, MAX_EPOCH)
        seq = integer(doc, "seq", 0, MAX_EPOCH)
        ttl_s = number(doc, "ttl_s")
        if ttl_s <= 0:
            raise Bad("ttl_s: must be positive")
        ports = port_range(doc.get("ports"))
        child_doc = doc.get("child")
        child = None if child_doc is None else _parse_child(child_doc, "child")
        heartbeat_s = None if doc.get("heartbeat_s") is None else number(doc, "heartbeat_s")
        if heartbeat_s is not None and heartbeat_s <= 0:
            raise Bad("heartbeat_s: must be positive")
        root_id = doc.get("root_id")
        if root_id is not None and not (isinstance(root_id, str) and 0 < len(root_id) <= 64):
            raise Bad("root_id: expected a short string or absent")
        return LeaseRecord(
            protocol=protocol,
            family=family_name(doc),
            epoch=epoch,
            holder=_parse_holder(field(doc, "holder", dict)),
            ttl_s=ttl_s,
            renewed_at=number(doc, "renewed_at"),
            seq=seq,
            state=state,
            superseded_by=_parse_supersession(doc.get("superseded_by")),
            stop_requested=_parse_stop_request(doc.get("stop_requested")),
            root_id=root_id,
            ports=ports,
            child=child,
            heartbeat_s=heartbeat_s,
            orphans=_parse_orphans(doc.get("orphans")),
            ready=parse_ready(doc.get("ready")),
            scope=parse_scope(doc.get("scope")),
            extra=_extra(doc, RECORD_KEYS),
        )
    except Bad as exc:
        return Unreadable(f"wrong shape: {exc}")
