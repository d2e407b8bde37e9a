"""The lease record's bytes (pure): a canonical encoder and a total parser.

Every reader parses through `parse`, which never raises: garbage, a wrong shape or an
out-of-range value is `Unreadable` with a reason. spec: docs/protocol/lease.md#record
"""

from __future__ import annotations

import json
import math

from tenure.core.hints import TYPE_CHECKING
from tenure.core.identity import Location
from tenure.core.inputs import MAX_STOP_GRACE_S, STOP_SIGNAL_NAMES, is_family_name
from tenure.core.record import (
    MAX_EPOCH,
    MAX_ORPHANS,
    MAX_PID,
    MAX_RECORD_BYTES,
    MAX_TEXT,
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
    for key, text in extra:
        doc.setdefault(key, json.loads(text))
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
    if record.heartbeat_s is not None:
        doc["heartbeat_s"] = record.heartbeat_s
    if record.stop_requested is not None:
        doc["stop_requested"] = {"pid": record.stop_requested.pid, "at": record.stop_requested.at}
    doc = _with_extra(doc, record.extra)
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


def _tree(value: Any) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and 0 < len(value) <= 64 and value.isalnum()):
        raise _Bad("child.tree: expected a short alphanumeric cookie")
    return value


def _family(doc: dict[str, Any]) -> str:
    name = _text(doc, "family")
    if not is_family_name(name):
        raise _Bad(f"family {name[:40]!r} is not a family name")
    return name


def _optional_int(doc: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    return None if doc.get(key) is None else _int(doc, key, lo, hi)


def _parse_where(doc: Any) -> Location | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise _Bad("holder.where: expected an object")
    boot_id = _text(doc, "boot_id")
    if not boot_id:
        raise _Bad("holder.where.boot_id: empty")
    host = doc.get("host", "")
    if not isinstance(host, str) or len(host) > MAX_TEXT:
        raise _Bad("holder.where.host: expected a short string")
    return Location(
        boot_id=boot_id,
        pid_ns=_int(doc, "pid_ns", 0, MAX_EPOCH),
        time_ns=_optional_int(doc, "time_ns", 0, MAX_EPOCH),
        host=host,
    )


def _parse_holder(doc: dict[str, Any]) -> Holder:
    port = _optional_int(doc, "port", 1, 65535)
    create_time = _number(doc, "create_time")
    if create_time < 0:
        raise _Bad("holder.create_time: negative")
    control = doc.get("control", False)
    if not isinstance(control, bool):
        raise _Bad("holder.control: expected a boolean")
    if control and port is None:
        raise _Bad("holder.control: true without a port")
    return Holder(
        extra=_extra(doc, HOLDER_KEYS),
        pid=_int(doc, "pid", 1, MAX_PID),
        create_time=create_time,
        nonce=_text(doc, "nonce"),
        version=_text(doc, "version"),
        port=port,
        started_at=_number(doc, "started_at"),
        start_ticks=_optional_int(doc, "start_ticks", 0, MAX_EPOCH),
        where=_parse_where(doc.get("where")),
        control=control,
        stop=_parse_stop(doc.get("stop"), "holder.stop"),
    )


def _parse_stop(doc: Any, where: str) -> StopSpec | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise _Bad(f"{where}: expected an object")
    signal = doc.get("signal")
    if signal not in STOP_SIGNAL_NAMES:
        raise _Bad(f"{where}.signal: expected one of {', '.join(STOP_SIGNAL_NAMES)}")
    grace = _number(doc, "grace_s")
    if not 0 <= grace <= MAX_STOP_GRACE_S:
        raise _Bad(f"{where}.grace_s: 0 to {MAX_STOP_GRACE_S:g} seconds")
    tree = doc.get("tree", True)
    if not isinstance(tree, bool):
        raise _Bad(f"{where}.tree: expected a boolean")
    return StopSpec(signal, grace, tree)


def _extra(doc: dict[str, Any], known: frozenset[str]) -> Extra:
    """The keys of `doc` this release does not know, each with its value as canonical JSON."""
    return tuple(
        (key, json.dumps(doc[key], sort_keys=True, allow_nan=False))
        for key in sorted(doc)
        if key not in known
    )


def _parse_child(doc: Any, where: str) -> Child:
    if not isinstance(doc, dict):
        raise _Bad(f"{where}: expected an object")
    return Child(
        pid=_int(doc, "pid", 1, MAX_PID),
        create_time=_number(doc, "create_time"),
        start_ticks=_optional_int(doc, "start_ticks", 0, MAX_EPOCH),
        tree=_tree(doc.get("tree")),
        stop=_parse_stop(doc.get("stop"), f"{where}.stop"),
    )


def _parse_orphans(value: Any) -> tuple[Child, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_ORPHANS:
        raise _Bad(f"orphans: expected a list of at most {MAX_ORPHANS} objects")
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
        raise _Bad("stop_requested: expected object or null")
    return StopRequest(pid=_int(doc, "pid", 1, MAX_PID), at=_number(doc, "at"))


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
            return _newer(doc, protocol)
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
        child = None if child_doc is None else _parse_child(child_doc, "child")
        heartbeat_s = None if doc.get("heartbeat_s") is None else _number(doc, "heartbeat_s")
        if heartbeat_s is not None and heartbeat_s <= 0:
            raise _Bad("heartbeat_s: must be positive")
        root_id = doc.get("root_id")
        if root_id is not None and not (isinstance(root_id, str) and 0 < len(root_id) <= 64):
            raise _Bad("root_id: expected a short string or absent")
        return LeaseRecord(
            protocol=protocol,
            family=_family(doc),
            epoch=epoch,
            holder=_parse_holder(_field(doc, "holder", dict)),
            ttl_s=ttl_s,
            renewed_at=_number(doc, "renewed_at"),
            seq=seq,
            state=state,
            superseded_by=_parse_supersession(doc.get("superseded_by")),
            stop_requested=_parse_stop_request(doc.get("stop_requested")),
            root_id=root_id,
            ports=ports,
            child=child,
            heartbeat_s=heartbeat_s,
            orphans=_parse_orphans(doc.get("orphans")),
            extra=_extra(doc, RECORD_KEYS),
        )
    except _Bad as exc:
        return Unreadable(f"wrong shape: {exc}")
