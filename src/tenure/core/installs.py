"""Whether what a holder runs was upgraded on disk (pure): a watched file's identity changed
and has settled. spec: docs/protocol/control.md#installs

A file's identity is (device, inode, size, modification time in ns) as a stat that follows
symlinks reports it: a new install — the file replaced by rename, rewritten in place, or a
symlink pointed at another file — changes it. An install in progress (the file missing, or
still being written) is not acted on: a change counts only once two looks in a row agree on
the same new identity, so a holder restarts once per install, not once per write, and a file
rewritten while the holder starts settles the same way.
"""

from __future__ import annotations

import enum

from tenure.core.values import frozen

Identity = tuple[int, int, int, int] | None  # None: the file is missing now


class Install(enum.StrEnum):
    """What one look at the watched files says."""

    SAME = "same"
    SETTLING = "settling"  # changed, not yet the same twice in a row
    UPGRADED = "upgraded"


@frozen
class Watched:
    """The watched files' identities when the holder started (`baseline`) and at the last
    look that differed from it (`pending`)."""

    baseline: tuple[Identity, ...]
    pending: tuple[Identity, ...] | None = None


def look(watched: Watched, now: tuple[Identity, ...]) -> tuple[Install, Watched]:
    """One look: the verdict, and what to remember for the next look."""
    if now == watched.baseline:
        return Install.SAME, Watched(watched.baseline)
    if None in now or now != watched.pending:
        return Install.SETTLING, Watched(watched.baseline, now)
    # The same new identities twice in a row: the install is done. It is the new baseline.
    return Install.UPGRADED, Watched(now)
