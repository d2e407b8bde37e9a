"""A tool's CLI: make sure its daemon runs (python examples/ensure_cli.py VERSION LO-HI)."""

import json
import sys
from pathlib import Path

import tenure

version, lo, hi = sys.argv[1], *map(int, sys.argv[2].split("-"))
daemon = Path(__file__).with_name("served.py")
found = tenure.ensure(
    "indexer", [sys.executable, str(daemon), version], version=version, ports=(lo, hi)
)
print(json.dumps(found.to_json()))
