"""Every lease of a root (read-only): the families with a record, and every scoped lease found
by its file name and placed by its record's scope. spec: docs/protocol/lease.md#scopes
"""

from __future__ import annotations

import os
from pathlib import Path

from tenure.adapters.root import RootLayout
from tenure.adapters.store import LeaseStore, read_record_at
from tenure.core.families import FAMILIES
from tenure.core.inputs import lease_key, split_key
from tenure.core.record import LeaseRecord, LeaseState


def _lease_keys(root: Path) -> list[tuple[str, str | None]]:
    """(family, scope digest or None) of every lease record file in the root, sorted."""
    try:
        entries = sorted(os.listdir(RootLayout(root).leases))
    except OSError:
        return []
    keys = (split_key(e.removesuffix(".json")) for e in entries if e.endswith(".json"))
    return [k for k in keys if k is not None]


def family_names(root: Path) -> list[str]:
    """Built-in families first, then every other family with a lease record in the root (in
    any scope)."""
    names = list(FAMILIES)
    for name, _digest in _lease_keys(root):
        if name not in names:
            names.append(name)
    return names


def has_user_record(root: Path, name: str) -> bool:
    """Whether `name` has a lease record in the user scope."""
    return os.path.lexists(RootLayout(root).record(name))


def scoped_stores(root: Path, family: str | None = None) -> list[LeaseStore]:
    """The store of every scoped lease of the root (of `family`), by its record's scope. A
    record whose scope is not its file's (or unreadable) names no scope: it is left out."""
    found = []
    for name, digest in _lease_keys(root):
        if digest is None or (family is not None and name != family):
            continue
        rec = read_record_at(RootLayout(root).record(f"{name}.{digest}"))
        scope = rec.scope if isinstance(rec, LeaseRecord) and rec.family == name else None
        if scope is not None and scope.digest == digest:
            found.append(LeaseStore(root, name, scope))
    return sorted(found, key=lambda s: (s.family, "" if s.scope is None else s.scope.path))


def unplaced(root: Path) -> list[tuple[str, Path, str]]:
    """(family, path, why) of every scoped record file that names no scope of its own —
    garbage, not a regular file, or written for another scope or family: the doctor lists it
    as unreadable, nothing governs by it."""
    found = []
    for name, digest in _lease_keys(root):
        if digest is None:
            continue
        path = RootLayout(root).record(f"{name}.{digest}")
        rec = read_record_at(path)
        if rec is None:
            continue  # gone since the listing
        if not isinstance(rec, LeaseRecord):
            found.append((name, path, rec.reason))
        elif rec.family != name or rec.scope is None or rec.scope.digest != digest:
            found.append((name, path, "names another family or scope than its file's"))
    return found


def every_store(root: Path) -> list[LeaseStore]:
    """The store of every lease of the root: each family's user scope, then every scope."""
    users = [LeaseStore(root, n) for n in family_names(root) if has_user_record(root, n)]
    return [*users, *scoped_stores(root)]


def ports_taken(mine: LeaseStore) -> set[int]:
    """The ports other live holders of the family record (in any scope): a port is chosen
    apart from them, under the family's ports lock (lease.md#scopes)."""
    from tenure.adapters.procinfo import holder_liveness  # noqa: PLC0415
    from tenure.core.lease import SEEN  # noqa: PLC0415

    taken = set()
    for store in [LeaseStore(mine.root, mine.family), *scoped_stores(mine.root, mine.family)]:
        rec = store.read() if store.key != mine.key else None
        if not isinstance(rec, LeaseRecord) or rec.state is not LeaseState.HELD:
            continue
        if rec.holder.port is not None and holder_liveness(rec) in SEEN:
            taken.add(rec.holder.port)
    return taken


def recorded_ranges(root: Path, skip: str | None = None) -> list[tuple[str, int, int]]:
    """(family, lo, hi) of every family of the root with a port range (but `skip`): the
    built-in ones, and each other family as the first of its records that names one. One
    listing and at most a read per record until each family is found — a start pays this,
    however many scopes a family has."""
    out = [(f.name, f.lo, f.hi) for f in FAMILIES.values() if f.name != skip]
    found = {skip, *FAMILIES}
    for name, digest in _lease_keys(root):
        if name in found:
            continue
        rec = read_record_at(RootLayout(root).record(lease_key(name, digest)))
        if isinstance(rec, LeaseRecord) and rec.family == name and rec.ports is not None:
            out.append((name, *rec.ports))
            found.add(name)
    return out
