"""`tenure ls`: every family of a root on one line each (read-only gathering).

Families are the built-in ones plus any other that has a lease record in the root; for the
built-in families the port range is scanned too, and the other listeners are counted by class.
"""

from __future__ import annotations

import time
from pathlib import Path

from tenure.adapters.store import LeaseStore
from tenure.core import schemas
from tenure.core.classify import CleanupClass, SkipReason
from tenure.core.families import FAMILIES
from tenure.core.hints import TYPE_CHECKING
from tenure.core.timing import PRUNE_RELEASED_AFTER_S
from tenure.core.values import field, frozen
from tenure.hygiene.survey import (
    family_names,
    family_of,
    has_user_record,
    scoped_stores,
    survey,
)
from tenure.protocol.report import LeaseReport, lease_json, lease_report

if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = schemas.LS


@frozen
class FamilyLine:
    """One family: its lease, and what else listens in its range."""

    lease: LeaseReport
    others: dict[str, int] = field(default_factory=dict)  # cleanup class → count
    scanned: bool = False  # False for families without a known port range
    not_scanned: str | None = None  # why a known range could not be scanned

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            **lease_json(self.lease),
            "other_listeners": self.others if self.scanned else None,
            "doctor_says": self.advice(),
        }

    def advice(self) -> str:
        """What the doctor would say about the other listeners, in a few words."""
        if not self.scanned:
            return "no port range known"
        if self.not_scanned is not None:
            return f"not scanned: {self.not_scanned}"
        safe = self.others.get(CleanupClass.SAFE_AUTO.value, 0)
        operator = self.others.get(CleanupClass.OPERATOR_REQUIRED.value, 0)
        if operator:
            return "tenure auth doctor --reset --force"
        if safe:
            return "tenure auth doctor --reset"
        return "ok"


def prune_released(root: Path, now: float) -> list[str]:
    """Remove the records of leases released more than 30 days ago, in every scope, and of
    released scoped leases whose directory is gone (nothing comes back to them) — never their
    lock, start lock or epoch floor; the leases pruned. spec: lease.md#pruning"""
    from tenure.adapters.scopes import scope_intact  # noqa: PLC0415

    pruned = []
    stores = [LeaseStore(root, name) for name in family_names(root)]
    for store in [*stores, *scoped_stores(root)]:
        gone = store.scope is not None and not scope_intact(store.scope)
        if store.prune_if_released_before(now if gone else now - PRUNE_RELEASED_AFTER_S):
            where = "" if store.scope is None else f" ({store.scope.path})"
            pruned.append(store.family + where)
    return pruned


def gather(root: Path, legacy_root: Path) -> list[FamilyLine]:
    """One line per family. Read-only: no spawn, no write, no signal."""
    now = time.time()
    lines: list[FamilyLine] = []
    every_scope = scoped_stores(root)  # each scoped record read once, not once per family
    for name in family_names(root):
        # The user scope's line (a built-in family always has one), then one per scope.
        mine = [s for s in every_scope if s.family == name]
        scoped = [lease_report(root, name, now, s.scope) for s in mine]
        leases = scoped
        if name in FAMILIES or has_user_record(root, name) or not scoped:
            leases = [lease_report(root, name, now), *scoped]
        family = family_of(root, name)
        if family is None:
            lines.extend(FamilyLine(lease) for lease in leases)
            continue
        others: dict[str, int] = {}
        found = survey(family, root, legacy_root)
        for rec in found.records:
            if rec.skip_reason is SkipReason.LEASE_HOLDER:
                continue
            others[rec.cleanup_class.value] = others.get(rec.cleanup_class.value, 0) + 1
        lines.extend(
            FamilyLine(lease, others, scanned=True, not_scanned=found.not_scanned)
            for lease in leases
        )
    return lines
