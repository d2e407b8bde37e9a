"""The parent watchdog of `tenure run` where there is no parent-death signal (macOS; portable
mode) (adapter): when the wrapper dies — SIGKILL included — its tree ends with it.

The wrapper starts `python -m tenure.adapters.watchdog COOKIE` before its child, with the read
end of a pipe as the watchdog's stdin; only the wrapper holds the write end (pipes are not
inherited by the child). Reading blocks until the wrapper closes it: after `DONE` the wrapper
ended the tree itself and the watchdog just exits; a bare end of file means the wrapper died,
and the watchdog ends every process carrying the tree's cookie that started after it did,
each proven a member (cookie, uid, start) right before its signal, under the tree stop
policy. Without a watchdog (it failed to start) the next holder still ends the tree it finds
by cookie (control.md#run). spec: docs/protocol/control.md#run
"""

from __future__ import annotations

import sys

DONE = b"done\n"


def main(argv: list[str]) -> int:
    """Wait for the wrapper; end its tree if it died. Imports tenure only then."""
    if len(argv) != 1:
        print("usage: python -m tenure.adapters.watchdog COOKIE", file=sys.stderr)
        return 2
    said = sys.stdin.buffer.read(len(DONE))
    if said == DONE:
        return 0
    from tenure.adapters.procinfo import own_identity  # noqa: PLC0415  (only when needed)
    from tenure.adapters.tree import Tree, stop_tree  # noqa: PLC0415
    from tenure.core.timing import TREE_STOP  # noqa: PLC0415

    tree = Tree(argv[0], None, own_identity().start_ticks)
    stop_tree(tree, None, TREE_STOP)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
