"""`tenure ls`: every family of a root on one line each (read-only gathering).

Families are the built-in ones plus any other that has a lease record in the root; for the
built-in families the port range is scanned too, and the other listeners are counted by class.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenure.adapters.root import RootLayout
from tenure.core import schemas
from tenure.core.classify import CleanupClass, SkipReason
from tenure.core.families import FAMILIES
from tenure.runtime.doctor import LeaseReport, lease_json, lease_report
from tenure.runtime.survey import survey

SCHEMA_VERSION = schemas.LS
_FAMILY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


@dataclass(frozen=True, slots=True)
class FamilyLine:
    """One family: its lease, and what else listens in its range."""

    lease: LeaseReport
    others: dict[str, int] = field(default_factory=dict)  # cleanup class → count
    scanned: bool = False  # False for families without a known port range

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
        safe = self.others.get(CleanupClass.SAFE_AUTO.value, 0)
        operator = self.others.get(CleanupClass.OPERATOR_REQUIRED.value, 0)
        if operator:
            return "tenure auth doctor --reset --force"
        if safe:
            return "tenure auth doctor --reset"
        return "ok"


def family_names(root: Path) -> list[str]:
    """Built-in families first, then every other family with a record in the root."""
    names = list(FAMILIES)
    try:
        entries = sorted(os.listdir(RootLayout(root).leases))
    except OSError:
        entries = []
    for entry in entries:
        name = entry.removesuffix(".json")
        if entry.endswith(".json") and _FAMILY_NAME.fullmatch(name) and name not in names:
            names.append(name)
    return names


def gather(root: Path, legacy_root: Path) -> list[FamilyLine]:
    """One line per family. Read-only: no spawn, no write, no signal."""
    now = time.time()
    lines = []
    for name in family_names(root):
        lease = lease_report(root, name, now)
        family = FAMILIES.get(name)
        if family is None:
            lines.append(FamilyLine(lease))
            continue
        others: dict[str, int] = {}
        for rec in survey(family, root, legacy_root).records:
            if rec.skip_reason is SkipReason.LEASE_HOLDER:
                continue
            others[rec.cleanup_class.value] = others.get(rec.cleanup_class.value, 0) + 1
        lines.append(FamilyLine(lease, others, scanned=True))
    return lines
