"""The lease record's field shapes (pure): each checks one value of a parsed JSON document and
raises `Bad` naming the key when it is out of shape; `codec` builds the record from them.

spec: docs/protocol/lease.md#record
"""

from __future__ import annotations

import math

from tenure.core.hints import TYPE_CHECKING
from tenure.core.identity import Location
from tenure.core.inputs import MAX_STOP_GRACE_S, STOP_SIGNAL_NAMES, is_family_name
from tenure.core.record import MAX_EPOCH, MAX_TEXT, LeaseScope, Readiness, StopSpec

MAX_READY_S = 86_400.0  # the longest a holder may say it takes to be ready

if TYPE_CHECKING:
    from typing import Any


class Bad(ValueError):
    """Internal: the document has the wrong shape."""


def field(doc: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = doc.get(key)
    # bool is an int subclass; a JSON true is never a valid number here.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise Bad(f"{key}: expected {kind}, got bool")
    if not isinstance(value, kind):
        raise Bad(f"{key}: expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def number(doc: dict[str, Any], key: str) -> float:
    value = field(doc, key, (int, float))
    if not math.isfinite(value):
        raise Bad(f"{key}: not a finite number")
    return float(value)


def text(doc: dict[str, Any], key: str) -> str:
    value: str = field(doc, key, str)
    if len(value) > MAX_TEXT:
        raise Bad(f"{key}: longer than {MAX_TEXT} characters")
    return value


def integer(doc: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value: int = field(doc, key, int)
    if not lo <= value <= hi:
        raise Bad(f"{key}: {value} is outside [{lo}, {hi}]")
    return value


def port_range(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in value)
        and value[0] <= value[1]
    )
    if not ok:
        raise Bad("ports: expected [lo, hi] within 1..65535")
    return (value[0], value[1])


def tree_cookie(value: Any) -> str | None:
    if value is None:
        return None
    if not (
        isinstance(value, str) and 0 < len(value) <= 64 and value.isascii() and value.isalnum()
    ):
        raise Bad("child.tree: expected a short alphanumeric cookie")
    return value


def family_name(doc: dict[str, Any]) -> str:
    name = text(doc, "family")
    if not is_family_name(name):
        raise Bad(f"family {name[:40]!r} is not a family name")
    return name


def optional_integer(doc: dict[str, Any], key: str, lo: int, hi: int) -> int | None:
    return None if doc.get(key) is None else integer(doc, key, lo, hi)


def parse_where(doc: Any) -> Location | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise Bad("holder.where: expected an object")
    boot_id = text(doc, "boot_id")
    if not boot_id:
        raise Bad("holder.where.boot_id: empty")
    host = doc.get("host", "")
    if not isinstance(host, str) or len(host) > MAX_TEXT:
        raise Bad("holder.where.host: expected a short string")
    return Location(
        boot_id=boot_id,
        pid_ns=integer(doc, "pid_ns", 0, MAX_EPOCH),
        time_ns=optional_integer(doc, "time_ns", 0, MAX_EPOCH),
        host=host,
    )


def parse_stop(doc: Any, where: str) -> StopSpec | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise Bad(f"{where}: expected an object")
    signal = doc.get("signal")
    if signal not in STOP_SIGNAL_NAMES:
        raise Bad(f"{where}.signal: expected one of {', '.join(STOP_SIGNAL_NAMES)}")
    grace = number(doc, "grace_s")
    if not 0 <= grace <= MAX_STOP_GRACE_S:
        raise Bad(f"{where}.grace_s: 0 to {MAX_STOP_GRACE_S:g} seconds")
    tree = doc.get("tree", True)
    if not isinstance(tree, bool):
        raise Bad(f"{where}.tree: expected a boolean")
    return StopSpec(signal, grace, tree)


def parse_ready(doc: Any) -> Readiness | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise Bad("ready: expected an object")
    within = number(doc, "within_s")
    if not 0 < within <= MAX_READY_S:
        raise Bad(f"ready.within_s: above 0, at most {MAX_READY_S:g} seconds")
    at = None if doc.get("at") is None else number(doc, "at")
    return Readiness(within, at)


MAX_SCOPE_PATH = 4096  # PATH_MAX: a longer path names no directory


def parse_scope(doc: Any) -> LeaseScope | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise Bad("scope: expected an object")
    path = doc.get("path")
    if not (isinstance(path, str) and path.startswith("/") and 0 < len(path) <= MAX_SCOPE_PATH):
        raise Bad("scope.path: expected an absolute path")
    if "\0" in path:
        raise Bad("scope.path: a NUL byte")
    return LeaseScope(path, integer(doc, "dev", 0, 2**64 - 1), integer(doc, "ino", 0, 2**64 - 1))
