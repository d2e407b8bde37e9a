"""A daemon that governs itself with `tenure.hold` (run: python examples/held.py ROOT [VERSION])."""

import sys
from pathlib import Path

import tenure

root, version = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "1.0"
try:
    with tenure.hold("indexer", version=version, root=root) as held:
        print("holding epoch", held.epoch, flush=True)
        while not held.retiring.wait(0.2):
            with held.work():  # raises Retiring (ending the block quietly) once leaving
                pass  # one unit of real work goes here
    print("retiring:", held.reason, flush=True)
except tenure.LeaseHeld as exc:
    sys.exit(f"already running: {exc}")
