"""The parent watchdog of `tenure run` where there is no parent-death signal (macOS; portable
mode) (adapter): when the wrapper dies — SIGKILL included — its tree ends with it.

The wrapper starts `python -m tenure.adapters.watchdog COOKIE` before its child, with the read
end of a pipe as the watchdog's stdin; only the wrapper holds the write end (pipes are not
inherited by the child). Reading blocks until the wrapper closes it: after `DONE` the wrapper
ended the tree itself and the watchdog just exits; a bare end of file means the wrapper died,
and the watchdog ends every process carrying the tree's cookie that started after it did,
each proven a member (cookie, uid, start) right before its signal, under the tree's stop
policy (`COOKIE SIGNAL GRACE` when the wrapper recorded one). Without a watchdog (it failed
to start) the next holder still ends the tree it finds by cookie.
spec: docs/protocol/control.md#run
"""

from __future__ import annotations

import sys

DONE = b"done\n"


def main(argv: list[str]) -> int:
    """Wait for the wrapper; end its tree if it died. Imports tenure only then."""
    if len(argv) not in (1, 3):
        print("usage: python -m tenure.adapters.watchdog COOKIE [SIGNAL GRACE]", file=sys.stderr)
        return 2
    said = sys.stdin.buffer.read(len(DONE))
    if said == DONE:
        return 0
    from tenure.adapters.procinfo import own_identity  # noqa: PLC0415  (only when needed)
    from tenure.adapters.tree import Tree, stop_tree  # noqa: PLC0415
    from tenure.core.record import StopSpec  # noqa: PLC0415
    from tenure.core.timing import TREE_STOP  # noqa: PLC0415

    policy = TREE_STOP
    if len(argv) == 3:  # the tree's own stop policy (control.md#stop-policy)
        policy = TREE_STOP.following(StopSpec(argv[1], float(argv[2])))
    tree = Tree(argv[0], None, own_identity().start_ticks)
    stop_tree(tree, None, policy)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
