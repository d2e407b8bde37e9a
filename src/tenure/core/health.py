"""The health document of a lease-aware daemon (pure): one typed shape, one encoder, one parser.

The daemon encodes it; every reader (start, status, stop, the doctor, the demo) parses it, so a
field is spelled once. Parsing is total: an answer of the wrong shape, from anyone, is None.
spec: docs/protocol/control.md#endpoints
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tenure.core.hints import TYPE_CHECKING
from tenure.core.record import PROTOCOL
from tenure.core.values import asdict, frozen

if TYPE_CHECKING:
    from typing import Any

# The health answer held until the startup reaper finished (at most REAPER_REPORT_WAIT_S):
# `start` is told when the report is ready instead of asking again and again (control.md).
AFTER_REAPER_PATH = "/api/health?wait=startup_reaper"
ROLE_HOLDER = "holder"
ROLE_RETIRING = "retiring"


@frozen
class Health:
    """What `GET /api/health` answers (never a token)."""

    status: str  # ok / retiring
    daemon_family: str
    package_version: str
    pid: int
    port: int
    root: str
    epoch: int
    role: str  # holder / retiring
    started_at: float
    in_flight: int
    startup_reaper: str  # pending / done / failed / none
    startup_reaper_result: dict[str, Any] | None = None
    root_id: str | None = None
    last_fault: str | None = None
    protocol: str = PROTOCOL
    scope: str | None = None  # the project (directory) a scoped daemon serves (lease.md#scopes)

    @property
    def is_holder(self) -> bool:
        """Whether it answers as the holder of its lease."""
        return self.role == ROLE_HOLDER

    def to_json(self) -> dict[str, Any]:
        """The JSON document."""
        return asdict(self)


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "status": str,
    "daemon_family": str,
    "package_version": str,
    "pid": int,
    "port": int,
    "root": str,
    "epoch": int,
    "role": str,
    "started_at": (int, float),
    "in_flight": int,
    "startup_reaper": str,
}


def parse_health(doc: Mapping[str, Any] | None) -> Health | None:
    """A tenure daemon's health answer, or None when it is not one (wrong protocol or shape)."""
    if not isinstance(doc, Mapping) or doc.get("protocol") != PROTOCOL:
        return None
    for key, kind in _FIELDS.items():
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, kind):
            return None
    started = float(doc["started_at"])
    result = doc.get("startup_reaper_result")
    root_id, fault = doc.get("root_id"), doc.get("last_fault")
    if not math.isfinite(started) or not (result is None or isinstance(result, dict)):
        return None
    if not (root_id is None or isinstance(root_id, str)):
        return None
    return Health(
        status=doc["status"],
        daemon_family=doc["daemon_family"],
        package_version=doc["package_version"],
        pid=doc["pid"],
        port=doc["port"],
        root=doc["root"],
        epoch=doc["epoch"],
        role=doc["role"],
        started_at=started,
        in_flight=doc["in_flight"],
        startup_reaper=doc["startup_reaper"],
        startup_reaper_result=result,
        root_id=root_id,
        last_fault=fault if isinstance(fault, str) else None,
        scope=doc["scope"] if isinstance(doc.get("scope"), str) else None,
    )
