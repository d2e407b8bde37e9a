"""tenure: local background daemons that govern themselves.

Library entry points: `Governor` (hold a lease, heartbeat, retire), the pure decisions in
`tenure.machine`, the record codec in `tenure.record`, and the daemon root in `tenure.store`.
"""

from __future__ import annotations

from tenure.errors import (
    DaemonStartError,
    LeaseHeld,
    LeaseLost,
    LeaseUnreadable,
    LockTimeout,
    Retiring,
    RootError,
    TenureError,
)
from tenure.governor import Governor, RetireReason, Timing
from tenure.record import PROTOCOL, LeaseRecord, LeaseState, Unreadable
from tenure.store import LeaseStore, default_root, ensure_root
from tenure.version import current_version

__all__ = [
    "PROTOCOL",
    "DaemonStartError",
    "Governor",
    "LeaseHeld",
    "LeaseLost",
    "LeaseRecord",
    "LeaseState",
    "LeaseStore",
    "LeaseUnreadable",
    "LockTimeout",
    "RetireReason",
    "Retiring",
    "RootError",
    "TenureError",
    "Timing",
    "Unreadable",
    "current_version",
    "default_root",
    "ensure_root",
]
