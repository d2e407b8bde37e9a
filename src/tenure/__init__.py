"""tenure: local background daemons that govern themselves.

The public API is exactly `__all__`. A tool's daemon holds its lease with `hold` / `hold_async`
(`Held`); its CLI makes sure one runs with `ensure` (`Ensured`), and reads or ends it with
`status` / `stop`; every error is a `TenureError` (`LeaseHeld`, `ConfigError`, `StopRefused`, …).
The lower level — `Governor` (the holder driver), `RetireReason`, `Timing`, the record types and
the root helpers — stays available for daemons that drive their own loop. Everything else
(`tenure.core`, `tenure.adapters`, `tenure.runtime`, `tenure.cli`) is internal and may change.
The layers: `core` is pure, `adapters` do I/O, `runtime` drives both, `cli` is the only place
typer and rich are imported, `testing` is the pytest plugin (no product module imports it).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

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
    "Retiring": "tenure.errors",
    "RootError": "tenure.errors",
    "TenureError": "tenure.errors",
    "Governor": "tenure.holder.governor",
    "Held": "tenure.holder.hold",
    "hold": "tenure.holder.hold",
    "hold_async": "tenure.holder.hold",
    "Ensured": "tenure.requester.ensure",
    "ensure": "tenure.requester.ensure",
    "status": "tenure.requester.ensure",
    "stop": "tenure.requester.ensure",
    "RetireReason": "tenure.holder.governor",
    "Timing": "tenure.core.timing",
    "PROTOCOL": "tenure.core.record",
    "LeaseRecord": "tenure.core.record",
    "LeaseState": "tenure.core.record",
    "Unreadable": "tenure.core.record",
    "LeaseStore": "tenure.adapters.store",
    "default_root": "tenure.adapters.root",
    "ensure_root": "tenure.adapters.root",
    "current_version": "tenure.version",
}

if TYPE_CHECKING:
    from tenure.adapters.root import default_root, ensure_root
    from tenure.adapters.store import LeaseStore
    from tenure.core.record import PROTOCOL, LeaseRecord, LeaseState, Unreadable
    from tenure.core.timing import Timing
    from tenure.errors import (
        ConfigError,
        DaemonStartError,
        LeaseHeld,
        LeaseLost,
        LeaseUnreadable,
        LockTimeout,
        Retiring,
        RootError,
        StopFailed,
        StopRefused,
        TenureError,
    )
    from tenure.holder.governor import Governor, RetireReason
    from tenure.holder.hold import Held, hold, hold_async
    from tenure.requester.ensure import Ensured, ensure, status, stop
    from tenure.version import current_version


def __dir__() -> list[str]:
    """The public names, lazy ones included (what `dir(tenure)` and completion show)."""
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tenure' has no attribute {name!r}")
    return getattr(import_module(module), name)


__all__ = [
    "PROTOCOL",
    "ConfigError",
    "DaemonStartError",
    "Ensured",
    "Governor",
    "Held",
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
    "StopFailed",
    "StopRefused",
    "TenureError",
    "Timing",
    "Unreadable",
    "__version__",
    "current_version",
    "default_root",
    "ensure",
    "ensure_root",
    "hold",
    "hold_async",
    "status",
    "stop",
]
