"""What a holder tells the operator once it holds (adapter glue): its life in the family's log
(holding, retiring, left) and a warning when its port range overlaps another family's.
spec: docs/protocol/root.md#layout, docs/protocol/doctor-json.md#findings
"""

from __future__ import annotations

import contextlib
import sys

from tenure.adapters.daemonlog import lifecycle
from tenure.adapters.root import ensure_subdir
from tenure.adapters.store import log_path
from tenure.core.hints import TYPE_CHECKING
from tenure.errors import RootError

if TYPE_CHECKING:
    from pathlib import Path

    from tenure.holder.governor import Governor


def announce(governor: Governor) -> None:
    """Both, for a governor that has just taken its lease; neither ever fails the start."""
    if governor.ports is not None:
        warn_overlaps(governor.root, governor.family, governor.ports)
    log_lifecycle(governor)


def warn_overlaps(root: Path, family: str, ports: tuple[int, int]) -> None:
    """Say on stderr which families of the root share ports with ours: each scans the other's
    servers, and the doctor reports it (`ports_overlap`); a start is never refused for it."""
    from tenure.core.families import overlaps  # noqa: PLC0415  (a range was given)
    from tenure.protocol.leases import recorded_ranges  # noqa: PLC0415

    try:
        others = recorded_ranges(root, skip=family)
    except OSError:
        return
    for mine, other, lo, hi in overlaps([(family, *ports), *others]):
        if mine == family:
            print(
                f"tenure: warning: {family}'s ports {ports[0]}-{ports[1]} overlap {other}'s "
                f"({lo}-{hi}); give one of them a range of its own",
                file=sys.stderr,
            )


def log_lifecycle(g: Governor) -> None:
    """Holding, retiring and left lines in `logs/<key>.log` (root.md#layout)."""
    with contextlib.suppress(OSError, RootError):
        ensure_subdir(g.root, "logs")
    path = log_path(g.root, g.store.key)
    port = "" if g.me.port is None else f", port {g.me.port}"
    scope = "" if g.scope is None else f", scope {g.scope.path}"
    lifecycle(path, f"holding {g.family} lease epoch {g.epoch}: version {g.version}{port}{scope}")
    g.on_retiring.append(lambda reason: lifecycle(path, f"retiring: {reason.value}"))
    g.on_retired.append(lambda _reason: lifecycle(path, f"left epoch {g.epoch}"))
