"""Daemon families as data: name, official port range, idle constant (pure).

spec: docs/protocol/control.md#families
"""

from __future__ import annotations

from collections.abc import Mapping

from tenure.core.inputs import parse_ports
from tenure.core.timing import DEFAULT_IDLE_S
from tenure.core.values import frozen
from tenure.errors import ConfigError

# Daemon process exit codes other than 0 (retired normally); shared by the daemon and its client.
EXIT_HELD = 3
EXIT_NO_PORT = 4
EXIT_ROOT = 5
EXIT_CONFIG = 6


@frozen
class Family:
    """A daemon family. `lo`..`hi` is inclusive, as every port range in tenure (root.md)."""

    name: str
    lo: int
    hi: int
    idle_s: float = DEFAULT_IDLE_S

    def contains(self, port: int) -> bool:
        """Whether `port` lies in the family's official range."""
        return self.lo <= port <= self.hi

    def ports(self, env: Mapping[str, str] | None = None) -> range:
        """Ports to use: the official range, or a test override that lies inside it.

        `TENURE_<NAME>_PORTS=LO-HI` (inclusive) narrows the range so parallel tests do not
        collide; an override that reaches outside the official range is an error.
        """
        name = f"TENURE_{self.name.upper()}_PORTS"
        raw = (env or {}).get(name)
        if not raw:
            return range(self.lo, self.hi + 1)
        lo, hi = parse_ports(raw, name)
        if not (self.contains(lo) and self.contains(hi)):
            raise ConfigError(f"{name}={raw[:40]!r} leaves the family range {self.lo}-{self.hi}")
        return range(lo, hi + 1)


SYNC = Family("sync", 9400, 9449)
DASHBOARD = Family("dashboard", 9237, 9336)
FAMILIES: dict[str, Family] = {f.name: f for f in (SYNC, DASHBOARD)}


def family_named(name: str) -> Family:
    """The built-in family called `name`."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown daemon family {name!r}") from None


def overlaps(ranges: list[tuple[str, int, int]]) -> list[tuple[str, str, int, int]]:
    """Each pair of distinct families whose inclusive ranges share ports, with the span they
    share: (first, second, lo, hi), in the order the ranges were given."""
    found = []
    for i, (a, alo, ahi) in enumerate(ranges):
        for b, blo, bhi in ranges[i + 1 :]:
            lo, hi = max(alo, blo), min(ahi, bhi)
            if a != b and lo <= hi:
                found.append((a, b, lo, hi))
    return found
