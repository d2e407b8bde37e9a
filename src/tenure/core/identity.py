"""The one process-identity rule (pure): a pid names the same process only with its start time.

spec: docs/protocol/lease.md#identity
"""

from __future__ import annotations

# Two create_time readings of one process agree to well under this; psutil rounds to 10 ms.
CREATE_TIME_TOLERANCE_S = 0.05


def same_create_time(a: float, b: float) -> bool:
    """Whether two create_time readings name the same process start."""
    return abs(a - b) <= CREATE_TIME_TOLERANCE_S
