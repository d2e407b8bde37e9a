"""The health document of a lease-aware daemon (pure): one typed shape, one encoder, one parser.

The daemon encodes it; every reader (start, status, stop, the doctor, the demo) parses it, so a
field is spelled once. Parsing is total: an answer of the wrong shape, from anyone, is None.
spec: docs/protocol/control.md#endpoints
"""

from __future__ import annotations

from collections.abc import Mapping

from tenure.core.fields import (
    COUNT,
    FAMILY,
    MAX_FAULT,
    MAX_ROOT_ID,
    MAX_SCOPE_PATH,
    PID,
    PORT,
    TEXT,
    WALL,
    Bad,
    Choice,
    Field,
    Opaque,
    Shape,
    Text,
    opt,
)
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


# The answer's field table: the parser's checks, health.schema.json and control.md's table.
HEALTH = Shape(
    Field("protocol", Choice(PROTOCOL)),
    Field("status", Choice("ok", "retiring")),
    Field("daemon_family", FAMILY),
    Field("package_version", TEXT),
    Field("pid", PID),
    Field("port", PORT),
    Field("root", Text(MAX_SCOPE_PATH)),
    Field("epoch", COUNT),
    Field("role", Choice(ROLE_HOLDER, ROLE_RETIRING)),
    Field("started_at", WALL),
    Field("in_flight", COUNT),
    Field("startup_reaper", Choice("pending", "done", "failed", "none")),
    opt("startup_reaper_result", Opaque(nullable=True)),
    opt("root_id", Text(MAX_ROOT_ID, min_len=1, nullable=True)),
    opt("last_fault", Text(MAX_FAULT, nullable=True)),
    opt("scope", Text(MAX_SCOPE_PATH, nullable=True)),
    title="tenure health answer: GET /api/health on a control port",
)
HEALTH_NOTE = (
    "What a daemon whose record sets holder.control answers (control.md#endpoints); never a "
    "token. Readers treat an answer that does not match as no tenure daemon."
)


def parse_health(doc: Mapping[str, Any] | None) -> Health | None:
    """A tenure daemon's health answer, or None when it is not one (wrong protocol or shape:
    the answer's field table, HEALTH, decides)."""
    if not isinstance(doc, Mapping) or doc.get("protocol") != PROTOCOL:
        return None
    try:
        v = HEALTH.check(dict(doc), "")
    except Bad:
        return None
    return Health(**v)
