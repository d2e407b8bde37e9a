"""A tool's own daemon governed by tenure: one lease, heartbeats, self-retirement."""

import sys
import time
from pathlib import Path

from tenure import LeaseHeld, Retiring
from tenure.lowlevel import Governor, ensure_root

root = ensure_root(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / ".local/state/indexer")
gov = Governor(root, family="indexer", version="2.1.0")
try:
    gov.acquire()  # takes the lease, or says who holds it
except LeaseHeld as held:
    sys.exit(f"already running: {held}")
gov.start()  # heartbeats; retires itself when lost, superseded, idle or orphaned
while gov.holding():
    try:
        with gov.work():  # in-flight work is drained before retiring
            time.sleep(0.1)  # one unit of real work goes here
    except Retiring:
        break
print("retired:", gov.wait_retired())
