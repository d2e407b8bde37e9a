"""The field tables as published (pure): JSON Schemas (docs/protocol/*.schema.json, written by
scripts/render-schemas) and the `type` cells of the docs' tables, which a test holds to them.

Only the docs and tests read this; the codec checks with the tables themselves (core/fields).
"""

from __future__ import annotations

import json

from tenure.core.fields import (
    MAX_U64,
    MAX_WALL_S,
    RECORD,
    RECORD_NOTE,
    TOMBSTONE,
    TOMBSTONE_NOTE,
    Choice,
    Field,
    Flag,
    Integer,
    Items,
    Maybe,
    Node,
    Number,
    Opaque,
    Shape,
    Text,
)
from tenure.core.health import HEALTH, HEALTH_NOTE
from tenure.core.hints import TYPE_CHECKING
from tenure.core.record import MAX_EPOCH, MAX_PID

if TYPE_CHECKING:
    from typing import Any

SCHEMAS = {
    "lease-record.schema.json": (RECORD, "tenure/lease-record/1", RECORD_NOTE),
    "tombstone.schema.json": (TOMBSTONE, "tenure/tombstone/1", TOMBSTONE_NOTE),
    "health.schema.json": (HEALTH, "tenure/health/1", HEALTH_NOTE),
}


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


def _rule(node: Node, defs: dict[str, Any]) -> dict[str, Any]:
    if isinstance(node, Maybe):
        return schema_of(node.node, defs)
    if isinstance(node, Number):
        out: dict[str, Any] = {"type": "number"}
        if node.lo is not None:
            out["exclusiveMinimum" if node.lo_open else "minimum"] = _num(node.lo)
        if node.hi is not None:
            out["maximum"] = _num(node.hi)
        return out
    if isinstance(node, Integer):
        return {"type": "integer", "minimum": node.lo, "maximum": node.hi}
    if isinstance(node, Text):
        out = {"type": "string"}
        if node.min_len:
            out["minLength"] = node.min_len
        out["maxLength"] = node.max_len
        if node.pattern is not None:
            out["pattern"] = f"^(?:{node.pattern})$"
        return out
    if isinstance(node, Flag):
        return {"type": "boolean"}
    if isinstance(node, Choice):
        return {"const": node.choices[0]} if len(node.choices) == 1 else {"enum": [*node.choices]}
    if isinstance(node, Items):
        out = {"type": "array"}
        if node.min_items:
            out["minItems"] = node.min_items
        return {**out, "maxItems": node.max_items, "items": schema_of(node.item, defs)}
    if isinstance(node, Shape):
        out = {"type": "object"}
        required = [f.key for f in node.fields if f.required]
        if required:
            out["required"] = required
        out["properties"] = {f.key: schema_of(f.node, defs) for f in node.fields}
        return out
    assert isinstance(node, Opaque), node
    return {"type": "object"}


def schema_of(node: Node, defs: dict[str, Any]) -> dict[str, Any]:
    """`node`'s rule as JSON Schema (draft 2020-12); a named rule goes into `defs` once and is
    referred to."""
    if node.name is None:
        body = _rule(node, defs)
    else:
        if node.name not in defs:
            defs[node.name] = {}  # placeholder first: a rule may refer to itself
            defs[node.name] = _rule(node, defs)
        body = {"$ref": f"#/$defs/{node.name}"}
    return {"oneOf": [{"type": "null"}, body]} if node.nullable else body


def json_schema(shape: Shape, schema_id: str, description: str) -> dict[str, Any]:
    """A whole document's published JSON Schema."""
    defs: dict[str, Any] = {}
    body = _rule(shape, defs)
    doc: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id,
        "title": shape.title,
        "description": description,
        **body,
    }
    if defs:
        doc["$defs"] = dict(sorted(defs.items()))
    return doc


def leaves(shape: Shape, prefix: str = "") -> list[tuple[str, Field]]:
    """Every field, depth first, by dotted path (objects inside lists as `key[].field`)."""
    out: list[tuple[str, Field]] = []
    for f in shape.fields:
        at = f"{prefix}{f.key}"
        out.append((at, f))
        node = f.node.node if isinstance(f.node, Maybe) else f.node
        inner = node.item if isinstance(node, Items) else node
        if isinstance(inner, Shape):
            out.extend(leaves(inner, f"{at}[]." if isinstance(node, Items) else f"{at}."))
    return out


_POWERS = {MAX_PID: "2³¹-1", MAX_EPOCH: "2⁵³", MAX_U64: "2⁶⁴-1", int(MAX_WALL_S): "10¹¹"}


def _bound(v: float) -> str:
    return _POWERS.get(int(v), f"{_num(v)}") if float(v).is_integer() else f"{v:g}"


def _type_of(node: Node) -> str:
    if isinstance(node, Maybe):
        return _type_of(node.node)
    if isinstance(node, Integer):
        return f"int {_bound(node.lo)}..{_bound(node.hi)}"
    if isinstance(node, Number):
        lo = None if node.lo is None else f"{'>' if node.lo_open else '≥'} {_bound(node.lo)}"
        if node.hi is None:
            return "number" if lo is None else f"number {lo}"
        if node.lo is not None and not node.lo_open:
            return f"number {_bound(node.lo)}..{_bound(node.hi)}"
        return f"number {lo}, ≤ {_bound(node.hi)}"
    if isinstance(node, Text):
        size = f"≤ {node.max_len}" if not node.min_len else f"{node.min_len}..{node.max_len}"
        shape = "" if node.pattern is None else f" matching `{node.pattern}`"
        return f"string{shape} ({size} chars)".replace("\x00", "\\0")
    if isinstance(node, Flag):
        return "bool"
    if isinstance(node, Choice):
        return " / ".join(f"`{c}`" for c in node.choices)
    if isinstance(node, Items):
        count = f"{node.min_items}" if node.min_items == node.max_items else (
            f"{node.min_items}..{node.max_items}"
        )  # fmt: skip
        kind = "objects" if isinstance(node.item, Shape) else _type_of(node.item)
        return f"list of {count} {kind}"
    return "object"


def describe(f: Field) -> str:
    """The `type` cell of a field's row in the protocol's tables."""
    out = _type_of(f.node)
    if f.node.nullable:
        out += " or null"
    if not f.required:
        out += ", optional"
        if f.default is not None:
            out += f" (default {json.dumps(f.default)})"
    return out
