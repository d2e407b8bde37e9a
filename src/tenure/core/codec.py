"""The lease record's bytes (pure): a canonical encoder and a total parser.

Every reader parses through `parse`, which never raises: garbage, a wrong shape or an
out-of-range value is `Unreadable` with a reason. spec: docs/protocol/lease.md#record
"""

from __future__ import annotations

import json
import math

from tenure.core.fields import HOLDER, RECORD, Bad
from tenure.core.hints import TYPE_CHECKING
from tenure.core.identity import Location
from tenure.core.record import (
    MAX_EPOCH,
    MAX_RECORD_BYTES,
    PROTOCOL,
    Child,
    Extra,
    Holder,
    LeaseRecord,
    LeaseScope,
    LeaseState,
    Readiness,
    StopRequest,
    StopSpec,
    Supersession,
    Unreadable,
)
from tenure.core.timing import TTL_MAX_S, TTL_MIN_S

if TYPE_CHECKING:
    from typing import Any


# The keys this release reads (the field table's); any other is kept as it was on every
# rewrite (versioning.md).
RECORD_KEYS = RECORD.keys
HOLDER_KEYS = HOLDER.keys


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


def _extra(doc: dict[str, Any], known: frozenset[str]) -> Extra:
    """The keys of `doc` this release does not know, each with its value as canonical JSON."""
    return tuple(
        (key, json.dumps(doc[key], sort_keys=True, allow_nan=False))
        for key in sorted(doc)
        if key not in known
    )


def _stop(v: dict[str, Any] | None) -> StopSpec | None:
    return None if v is None else StopSpec(v["signal"], v["grace_s"], v["tree"])


def _child(v: dict[str, Any]) -> Child:
    return Child(v["pid"], v["create_time"], v["start_ticks"], v["tree"], _stop(v["stop"]))


def _holder(v: dict[str, Any], doc: dict[str, Any]) -> Holder:
    if v["control"] and v["port"] is None:
        raise Bad("holder.control: true without a port")
    w = v["where"]
    return Holder(
        pid=v["pid"],
        create_time=v["create_time"],
        nonce=v["nonce"],
        version=v["version"],
        port=v["port"],
        started_at=v["started_at"],
        start_ticks=v["start_ticks"],
        where=None if w is None else Location(w["boot_id"], w["pid_ns"], w["time_ns"], w["host"]),
        control=v["control"],
        stop=_stop(v["stop"]),
        extra=_extra(doc, HOLDER_KEYS),
    )


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


def parse(data: bytes) -> LeaseRecord | Unreadable:
    """Parse record bytes; never raises. Every field is checked by the record's field table
    (core/fields.py, the published schema's source); unknown keys are kept aside as `extra`
    (spec: lease.md#readers)."""
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
    protocol = doc.get("protocol")
    if isinstance(protocol, str) and protocol.startswith("tenure/") and protocol != PROTOCOL:
        return _newer(doc, protocol)
    try:
        v = RECORD.check(doc, "")
        ports = v["ports"]
        if ports is not None and ports[0] > ports[1]:
            raise Bad(f"ports: {ports[0]} is above {ports[1]}")
        sup, stop, ready, sc = v["superseded_by"], v["stop_requested"], v["ready"], v["scope"]
        return LeaseRecord(
            protocol=v["protocol"],
            family=v["family"],
            epoch=v["epoch"],
            holder=_holder(v["holder"], doc["holder"]),
            ttl_s=v["ttl_s"],
            renewed_at=v["renewed_at"],
            seq=v["seq"],
            state=LeaseState(v["state"]),
            superseded_by=None if sup is None else Supersession(**sup),
            stop_requested=None if stop is None else StopRequest(stop["pid"], stop["at"]),
            root_id=v["root_id"],
            ports=ports,
            child=None if v["child"] is None else _child(v["child"]),
            heartbeat_s=v["heartbeat_s"],
            orphans=tuple(_child(c) for c in v["orphans"] or ()),
            ready=None if ready is None else Readiness(ready["within_s"], ready["at"]),
            scope=None if sc is None else LeaseScope(sc["path"], sc["dev"], sc["ino"]),
            extra=_extra(doc, RECORD_KEYS),
        )
    except Bad as exc:
        return Unreadable(f"wrong shape: {exc}")
