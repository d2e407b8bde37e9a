"""The one polling helper: wait for a condition, bounded by a deadline on the monotonic clock."""

from __future__ import annotations

import time
from collections.abc import Callable

from tenure.core.hints import TypeVar

T = TypeVar("T")
DEFAULT_INTERVAL_S = 0.01


def wait_until(
    predicate: Callable[[], T | None], timeout: float, interval: float = DEFAULT_INTERVAL_S
) -> T | None:
    """Poll `predicate` until it returns something truthy (returned) or `timeout` passes (None).

    The predicate is tried once more at the deadline, so a slow poll never loses the last look.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
