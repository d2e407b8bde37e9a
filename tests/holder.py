"""A minimal lease holder used by the real-process tests: acquire, heartbeat, retire, report.

argv: ROOT FAMILY VERSION. Prints one JSON line when it holds, one when it retired.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tenure.errors import LeaseHeld, LeaseUnreadable, RootError
from tenure.holder.governor import Governor


def main() -> int:
    root, family, version = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    gov = Governor(root, family, version)
    try:
        rec = gov.acquire(wait_s=float(sys.argv[4]) if len(sys.argv) > 4 else 0.0)
    except (LeaseHeld, LeaseUnreadable, RootError) as exc:
        print(json.dumps({"event": "refused", "error": str(exc)}), flush=True)
        return 3
    print(json.dumps({"event": "holding", "epoch": rec.epoch}), flush=True)
    gov.start()
    reason = gov.wait_retired()
    print(json.dumps({"event": "retired", "reason": str(reason)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
