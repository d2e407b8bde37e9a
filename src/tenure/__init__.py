"""tenure: local background daemons that govern themselves.

Library entry points: `Governor` (hold a lease, heartbeat, retire), the pure decisions in
`tenure.machine`, the record codec in `tenure.record`, and the daemon root in `tenure.store`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from tenure.version import __version__

# Names → defining module; imported on first use so `tenure --help` and the daemon start fast.
_EXPORTS = {
    "DaemonStartError": "tenure.errors",
    "LeaseHeld": "tenure.errors",
    "LeaseLost": "tenure.errors",
    "LeaseUnreadable": "tenure.errors",
    "LockTimeout": "tenure.errors",
    "Retiring": "tenure.errors",
    "RootError": "tenure.errors",
    "TenureError": "tenure.errors",
    "Governor": "tenure.governor",
    "RetireReason": "tenure.governor",
    "Timing": "tenure.timing",
    "PROTOCOL": "tenure.record",
    "LeaseRecord": "tenure.record",
    "LeaseState": "tenure.record",
    "Unreadable": "tenure.record",
    "LeaseStore": "tenure.store",
    "default_root": "tenure.store",
    "ensure_root": "tenure.store",
    "current_version": "tenure.version",
}

if TYPE_CHECKING:
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
    from tenure.governor import Governor, RetireReason
    from tenure.record import PROTOCOL, LeaseRecord, LeaseState, Unreadable
    from tenure.store import LeaseStore, default_root, ensure_root
    from tenure.timing import Timing
    from tenure.version import current_version


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tenure' has no attribute {name!r}")
    return getattr(import_module(module), name)


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
    "__version__",
    "current_version",
    "default_root",
    "ensure_root",
]
