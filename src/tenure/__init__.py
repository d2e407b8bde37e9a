"""tenure: local background daemons that govern themselves.

The adopter's API is exactly `__all__`: a tool's daemon holds its lease with `hold` /
`hold_async` (`Held`); its CLI makes sure one runs with `ensure` (`Ensured`), reads the lease
with `status` (`LeaseReport`, `LeaseStatus`) and ends it with `stop`; a holder leaves for a
`RetireReason`; `Timing` tunes TTL, heartbeat, idle and drain; every error is a `TenureError`
(`LeaseHeld`, `ConfigError`, `StopRefused`, …).

Two more public layers, each under its own name: `tenure.lowlevel` (the `Governor` holder
driver, the `LeaseStore`, the record types, the root helpers) for daemons that drive their own
loop, and `tenure.conformance` (`run_conformance`) for proving a daemon speaks `tenure/1`.
Everything else is internal and may change; the layout is docs/adr/0003-layout-by-purpose.md.
"""

from __future__ import annotations

import warnings
from importlib import import_module

from tenure.core.hints import TYPE_CHECKING
from tenure.version import __version__

# Names → defining module; imported on first use so `tenure --help` and the daemon start fast.
_EXPORTS = {
    "ConfigError": "tenure.errors",
    "DaemonStartError": "tenure.errors",
    "StopFailed": "tenure.errors",
    "StopRefused": "tenure.errors",
    "LeaseHeld": "tenure.errors",
    "LeaseLost": "tenure.errors",
    "LeaseUnreadable": "tenure.errors",
    "LockTimeout": "tenure.errors",
    "NotRegularFile": "tenure.errors",
    "Retiring": "tenure.errors",
    "RootError": "tenure.errors",
    "TenureError": "tenure.errors",
    "Held": "tenure.holder.hold",
    "hold": "tenure.holder.hold",
    "hold_async": "tenure.holder.hold_async",
    "Ensured": "tenure.requester.ensure",
    "ensure": "tenure.requester.ensure",
    "status": "tenure.requester.ensure",
    "stop": "tenure.requester.ensure",
    "LeaseReport": "tenure.protocol.report",
    "LeaseStatus": "tenure.core.lease",
    "RetireReason": "tenure.core.lifecycle",
    "Timing": "tenure.core.timing",
}
# Names that moved to `tenure.lowlevel`: still found here, with a DeprecationWarning.
_MOVED = frozenset(
    {
        "Governor",
        "LeaseStore",
        "LeaseRecord",
        "LeaseState",
        "Unreadable",
        "PROTOCOL",
        "default_root",
        "ensure_root",
        "current_version",
    }
)

if TYPE_CHECKING:
    from typing import Any

    from tenure.core.lease import LeaseStatus
    from tenure.core.lifecycle import RetireReason
    from tenure.core.timing import Timing
    from tenure.errors import (
        ConfigError,
        DaemonStartError,
        LeaseHeld,
        LeaseLost,
        LeaseUnreadable,
        LockTimeout,
        NotRegularFile,
        Retiring,
        RootError,
        StopFailed,
        StopRefused,
        TenureError,
    )
    from tenure.holder.hold import Held, hold
    from tenure.holder.hold_async import hold_async
    from tenure.protocol.report import LeaseReport
    from tenure.requester.ensure import Ensured, ensure, status, stop


def __dir__() -> list[str]:
    """The public names, lazy ones included (what `dir(tenure)` and completion show)."""
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"tenure.{name} moved to tenure.lowlevel.{name}", DeprecationWarning, stacklevel=2
        )
        return getattr(import_module("tenure.lowlevel"), name)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tenure' has no attribute {name!r}")
    return getattr(import_module(module), name)


__all__ = [
    "ConfigError",
    "DaemonStartError",
    "Ensured",
    "Held",
    "LeaseHeld",
    "LeaseLost",
    "LeaseReport",
    "LeaseStatus",
    "LeaseUnreadable",
    "LockTimeout",
    "NotRegularFile",
    "RetireReason",
    "Retiring",
    "RootError",
    "StopFailed",
    "StopRefused",
    "TenureError",
    "Timing",
    "__version__",
    "ensure",
    "hold",
    "hold_async",
    "status",
    "stop",
]
