"""The protocol's documents as declarative field tables (pure): one table per kind drives the
codec's validation, and `core/published` renders the same tables as the JSON Schemas
(docs/protocol/*.schema.json) and the docs' type cells.

A node checks one JSON value and returns it typed (a number as float, an absent optional as its
default), raising `Bad` with the dotted path of the field at fault. What a table cannot say —
one field depending on another — the codec checks after it, and the schema's description says
so.
spec: docs/protocol/lease.md#record, root.md#tombstones, control.md#endpoints
"""

from __future__ import annotations

import math
import re

from tenure.core.hints import TYPE_CHECKING
from tenure.core.inputs import FAMILY_PATTERN, MAX_STOP_GRACE_S, STOP_SIGNAL_NAMES
from tenure.core.record import MAX_EPOCH, MAX_ORPHANS, MAX_PID, MAX_TEXT, PROTOCOL

if TYPE_CHECKING:
    from typing import Any

MAX_READY_S = 86_400.0  # the longest a holder may say it takes to be ready
MAX_SCOPE_PATH = 4096  # PATH_MAX: a longer path names no directory
MAX_ROOT_ID = 64
MAX_U64 = 2**64 - 1
MAX_FAULT = 1024  # a health answer's last error, cut to this by the daemon
MAX_WALL_S = 1e11  # a tombstone time past the year 5138 is garbage


class Bad(ValueError):
    """A document has the wrong shape; the message starts with the field's dotted path."""


_ABSENT = object()


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


class Node:
    """One value's rule. `nullable`: JSON null is allowed (and read as None); `name`: published
    once under `$defs` and referred to, when several fields share the rule (core/published)."""

    __slots__ = ("name", "nullable")

    def __init__(self, *, nullable: bool = False, name: str | None = None) -> None:
        self.nullable = nullable
        self.name = name

    def check(self, value: Any, path: str) -> Any:
        """`value` typed, or `Bad` naming `path`."""
        if value is None:
            if self.nullable:
                return None
            raise Bad(f"{path}: expected {self.expected()}, got null")
        return self.value(value, path)

    KIND = "a value"

    def value(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def expected(self) -> str:
        """What the rule accepts, in words."""
        return self.KIND


class Number(Node):
    """A finite JSON number (never true/false), read as float: lo <= v (or lo < v) <= hi."""

    __slots__ = ("hi", "lo", "lo_open")
    KIND = "a number"

    def __init__(
        self,
        lo: float | None = None,
        hi: float | None = None,
        *,
        lo_open: bool = False,
        nullable: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(nullable=nullable, name=name)
        self.lo, self.hi, self.lo_open = lo, hi, lo_open

    def value(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Bad(f"{path}: expected a number, got {_kind(value)}")
        v = float(value)
        if not math.isfinite(v):
            raise Bad(f"{path}: not a finite number")
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            raise Bad(f"{path}: {v:g} is not {'above' if self.lo_open else 'at least'} {self.lo:g}")
        if self.hi is not None and v > self.hi:
            raise Bad(f"{path}: {v:g} is above {self.hi:g}")
        return v


class Integer(Node):
    """A JSON integer (never true/false, never 1.0) in lo..hi."""

    __slots__ = ("hi", "lo")
    KIND = "an integer"

    def __init__(self, lo: int, hi: int, *, nullable: bool = False, name: str | None = None):
        super().__init__(nullable=nullable, name=name)
        self.lo, self.hi = lo, hi

    def value(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Bad(f"{path}: expected an integer, got {_kind(value)}")
        if not self.lo <= value <= self.hi:
            raise Bad(f"{path}: {value} is outside [{self.lo}, {self.hi}]")
        return value


class Text(Node):
    """A JSON string of min_len..max_len characters, matching `pattern` (whole) when given."""

    __slots__ = ("compiled", "max_len", "min_len", "pattern")
    KIND = "a string"

    def __init__(
        self,
        max_len: int = MAX_TEXT,
        *,
        min_len: int = 0,
        pattern: str | None = None,
        nullable: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(nullable=nullable, name=name)
        self.min_len, self.max_len, self.pattern = min_len, max_len, pattern
        self.compiled = None if pattern is None else re.compile(pattern)

    def value(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise Bad(f"{path}: expected a string, got {_kind(value)}")
        if len(value) > self.max_len:
            raise Bad(f"{path}: longer than {self.max_len} characters")
        if len(value) < self.min_len:
            raise Bad(f"{path}: {'empty' if not value else 'too short'}")
        if self.compiled is not None and self.compiled.fullmatch(value) is None:
            raise Bad(f"{path}: {value[:40]!r} does not match {self.pattern}")
        return value


class Flag(Node):
    """A JSON boolean."""

    __slots__ = ()
    KIND = "a boolean"

    def value(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise Bad(f"{path}: expected a boolean, got {_kind(value)}")
        return value


class Choice(Node):
    """One of a few strings."""

    __slots__ = ("choices",)

    def __init__(self, *choices: str, nullable: bool = False, name: str | None = None) -> None:
        super().__init__(nullable=nullable, name=name)
        self.choices = choices

    def value(self, value: Any, path: str) -> str:
        if value not in self.choices or not isinstance(value, str):
            shown = repr(value[:40]) if isinstance(value, str) else _kind(value)
            raise Bad(f"{path}: {shown} is not one of {', '.join(self.choices)}")
        return value

    def expected(self) -> str:
        return f"one of {', '.join(self.choices)}"


class Items(Node):
    """A JSON array of min_items..max_items values, each checked by `item`; read as a tuple."""

    __slots__ = ("item", "max_items", "min_items")
    KIND = "a list"

    def __init__(
        self,
        item: Node,
        min_items: int,
        max_items: int,
        *,
        nullable: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(nullable=nullable, name=name)
        self.item, self.min_items, self.max_items = item, min_items, max_items

    def value(self, value: Any, path: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise Bad(f"{path}: expected a list, got {_kind(value)}")
        if not self.min_items <= len(value) <= self.max_items:
            if self.min_items == self.max_items:
                raise Bad(f"{path}: expected {self.min_items} items, got {len(value)}")
            raise Bad(f"{path}: expected {self.min_items} to {self.max_items} items")
        return tuple(self.item.check(v, f"{path}[{i}]") for i, v in enumerate(value))


class Opaque(Node):
    """Any JSON object, read as it is (a report whose keys this protocol does not fix)."""

    __slots__ = ()
    KIND = "an object"

    def value(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise Bad(f"{path}: expected an object, got {_kind(value)}")
        return value


class Maybe(Node):
    """Null (read as None) or what `node` accepts: a named rule made nullable in one place."""

    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        super().__init__(nullable=True)
        self.node = node

    def value(self, value: Any, path: str) -> Any:
        return self.node.check(value, path)

    def expected(self) -> str:
        return self.node.expected()


class Field:
    """A key of an object: its rule, whether it must be present, and what an absent key reads
    as (`default`, None unless given)."""

    __slots__ = ("default", "key", "node", "required")

    def __init__(self, key: str, node: Node, *, required: bool = True, default: Any = None):
        self.key, self.node, self.required, self.default = key, node, required, default


def opt(key: str, node: Node, default: Any = None) -> Field:
    """An optional key."""
    return Field(key, node, required=False, default=default)


class Shape(Node):
    """A JSON object with these keys; other keys are allowed (kept by writers, versioning.md).
    `check` returns {key: typed value} for the table's keys only."""

    __slots__ = ("fields", "title")
    KIND = "an object"

    def __init__(
        self, *fields: Field, nullable: bool = False, name: str | None = None, title: str = ""
    ) -> None:
        super().__init__(nullable=nullable, name=name)
        self.fields = fields
        self.title = title

    @property
    def keys(self) -> frozenset[str]:
        """The keys this table knows."""
        return frozenset(f.key for f in self.fields)

    def value(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise Bad(f"{path}: expected an object, got {_kind(value)}")
        out: dict[str, Any] = {}
        for f in self.fields:
            at = f"{path}.{f.key}" if path else f.key
            got = value.get(f.key, _ABSENT)
            if got is _ABSENT:
                if f.required:
                    raise Bad(f"{at}: missing")
                out[f.key] = f.default
            else:
                out[f.key] = f.node.check(got, at)
        return out


# --- the lease record (lease.md#record) ------------------------------------------------------

PID = Integer(1, MAX_PID, name="pid")
COUNT = Integer(0, MAX_EPOCH, name="count")
PORT = Integer(1, 65535, name="port")
TEXT = Text(name="text")
WALL = Number(name="wall_time")
FAMILY = Text(64, pattern=FAMILY_PATTERN, name="family")

STOP = Shape(
    Field("signal", Choice(*STOP_SIGNAL_NAMES)),
    Field("grace_s", Number(0, MAX_STOP_GRACE_S)),
    opt("tree", Flag(), default=True),
    nullable=True,
    name="stop",
)
WHERE = Shape(
    Field("boot_id", Text(min_len=1)),
    Field("pid_ns", COUNT),
    opt("time_ns", Integer(0, MAX_EPOCH, nullable=True)),
    opt("host", Text(), default=""),
    nullable=True,
    name="where",
)
CHILD = Shape(
    Field("pid", PID),
    Field("create_time", Number()),
    opt("start_ticks", Integer(0, MAX_EPOCH, nullable=True)),
    opt("tree", Text(64, min_len=1, pattern="[A-Za-z0-9]+", nullable=True)),
    opt("stop", STOP),
    name="child",
)
HOLDER = Shape(
    Field("pid", PID),
    Field("create_time", Number(0)),
    Field("nonce", TEXT),
    Field("version", TEXT),
    opt("port", Integer(1, 65535, nullable=True)),
    Field("started_at", WALL),
    opt("start_ticks", Integer(0, MAX_EPOCH, nullable=True)),
    opt("control", Flag(), default=False),
    opt("where", WHERE),
    opt("stop", STOP),
    name="holder",
)
RECORD = Shape(
    Field("protocol", Choice(PROTOCOL)),
    Field("family", FAMILY),
    Field("epoch", COUNT),
    Field("holder", HOLDER),
    Field("ttl_s", Number(0, lo_open=True)),
    Field("renewed_at", WALL),
    Field("seq", COUNT),
    Field("state", Choice("held", "released")),
    opt(
        "superseded_by",
        Shape(Field("version", TEXT), Field("pid", PID), Field("at", WALL), nullable=True),
    ),
    opt("stop_requested", Shape(Field("pid", PID), Field("at", WALL), nullable=True)),
    opt("root_id", Text(MAX_ROOT_ID, min_len=1, nullable=True)),
    opt("ports", Items(PORT, 2, 2, nullable=True)),
    opt("child", Maybe(CHILD)),
    opt("heartbeat_s", Number(0, lo_open=True, nullable=True)),
    opt("orphans", Items(CHILD, 0, MAX_ORPHANS, nullable=True)),
    opt(
        "ready",
        Shape(
            Field("within_s", Number(0, MAX_READY_S, lo_open=True)),
            opt("at", Number(nullable=True)),
            nullable=True,
        ),
    ),
    opt(
        "scope",
        Shape(
            Field("path", Text(MAX_SCOPE_PATH, pattern="/[^\x00]*")),
            Field("dev", Integer(0, MAX_U64)),
            Field("ino", Integer(0, MAX_U64)),
            nullable=True,
        ),
    ),
    title=(
        "tenure lease record (protocol tenure/1): leases/<family>.json or "
        "leases/<family>.<digest>.json"
    ),
)
RECORD_NOTE = (
    "What a reader of tenure/1 accepts (lease.md#record). Keys not named here are allowed and "
    "MUST be kept by every rewrite (versioning.md#unknown-keys). Beyond this schema, the codec "
    "checks: holder.control true needs holder.port; ports[0] <= ports[1]; a scoped record's "
    "scope digest is its file's, and a user-scope record has no scope (lease.md#scopes)."
)

# --- a tombstone line (root.md#tombstones) ---------------------------------------------------

TOMBSTONE = Shape(
    Field("family", FAMILY),
    Field("pid", PID),
    Field("version", TEXT),
    Field("epoch", COUNT),
    Field("reason", TEXT),
    Field("at", Number(0, MAX_WALL_S)),
    title="tenure tombstone: one line of <root>/tombstones.jsonl",
)
TOMBSTONE_NOTE = (
    "One retirement (root.md#tombstones): reason is a retirement reason of lease.md#retirement "
    "or rolled_back. Readers skip a line that does not match; keys not named here are allowed."
)
