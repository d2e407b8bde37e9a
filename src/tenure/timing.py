"""Lease timing and its environment overrides (light: imported by the CLI's hot path)."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_TTL_S = 15.0
DEFAULT_HEARTBEAT_S = 5.0
DEFAULT_IDLE_S = 900.0  # same as the legacy 3.2.4 daemons' idle retirement
DRAIN_TIMEOUT_S = 10.0  # bound on waiting for in-flight work when retiring


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value > 0 else default


@dataclass(frozen=True, slots=True)
class Timing:
    """Lease timing; heartbeat defaults to TTL/3."""

    ttl_s: float = DEFAULT_TTL_S
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    idle_s: float = DEFAULT_IDLE_S
    drain_s: float = DRAIN_TIMEOUT_S

    @classmethod
    def from_env(cls, idle_default: float = DEFAULT_IDLE_S) -> Timing:
        """Read `TENURE_LEASE_TTL`, `TENURE_HEARTBEAT`, `TENURE_IDLE_SECONDS`."""
        ttl = _env_float("TENURE_LEASE_TTL", DEFAULT_TTL_S)
        hb = _env_float("TENURE_HEARTBEAT", ttl / 3)
        return cls(
            ttl_s=ttl,
            heartbeat_s=min(hb, ttl),
            idle_s=_env_float("TENURE_IDLE_SECONDS", idle_default),
        )
