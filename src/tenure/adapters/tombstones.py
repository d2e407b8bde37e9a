"""Tombstones (adapter): a bounded log of retirements (spec: root.md#tombstones)."""

from __future__ import annotations

import json
from pathlib import Path

from tenure.adapters.files import atomic_write, locked, read_nofollow
from tenure.adapters.root import RootLayout
from tenure.core.fields import TOMBSTONE, Bad
from tenure.core.hints import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

TOMBSTONE_LIMIT = 200


def tombstone_path(root: Path) -> Path:
    """Path of the tombstone log."""
    return RootLayout(root).tombstones


def append_tombstone(root: Path, entry: dict[str, Any]) -> None:
    """Append one retirement to the log, keeping only the newest TOMBSTONE_LIMIT entries."""
    path = tombstone_path(root)
    with locked(RootLayout(root).tombstones_lock):
        old = read_tombstones(root)
        lines = [json.dumps(e, sort_keys=True) for e in [*old, entry][-TOMBSTONE_LIMIT:]]
        atomic_write(path, ("\n".join(lines) + "\n").encode())


TOMBSTONE_MAX_BYTES = 1024 * 1024


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def valid_tombstone(entry: object) -> bool:
    """Whether a parsed line is a tombstone a reader may show: its field table
    (core/fields.py TOMBSTONE, the published schema's source) accepts it."""
    try:
        TOMBSTONE.check(entry, "")
    except Bad:
        return False
    return True


def read_tombstones(root: Path) -> list[dict[str, Any]]:
    """Tombstones, oldest first; malformed or out-of-range entries are skipped."""
    try:
        data = read_nofollow(tombstone_path(root), TOMBSTONE_MAX_BYTES)
    except OSError:
        return []
    out: list[dict[str, Any]] = []
    for line in (data or b"").splitlines():
        try:
            entry = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            continue
        if valid_tombstone(entry):
            out.append(entry)
    return out
