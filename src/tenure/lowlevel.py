"""The low level, for daemons that drive their own loop instead of `tenure.hold`.

`Governor` is the holder driver (acquire, `work()`, heartbeats, retirement by the lifecycle
table); `LeaseStore` reads and writes one family's record under its lock; the record types
are the on-disk document (spec: docs/protocol/lease.md#record); `default_root` and
`ensure_root` find and prepare the daemon root (docs/protocol/root.md). These names are
stable; everything under `tenure.core`, `tenure.adapters` and the other subpackages is not.
"""

from __future__ import annotations

from tenure.adapters.root import default_root, ensure_root
from tenure.adapters.store import LeaseStore
from tenure.core.lifecycle import RetireReason
from tenure.core.record import PROTOCOL, LeaseRecord, LeaseState, Unreadable
from tenure.core.timing import Timing
from tenure.holder.governor import Governor
from tenure.version import current_version

__all__ = [
    "PROTOCOL",
    "Governor",
    "LeaseRecord",
    "LeaseState",
    "LeaseStore",
    "RetireReason",
    "Timing",
    "Unreadable",
    "current_version",
    "default_root",
    "ensure_root",
]
