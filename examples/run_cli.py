"""A tool's CLI that keeps an unmodified server running under `tenure run` (no code change to
the server): python examples/run_cli.py VERSION LO-HI."""

import json
import sys

import tenure

version, lo, hi = sys.argv[1], *map(int, sys.argv[2].split("-"))
server = [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
wrapped = [sys.executable, "-m", "tenure", "run", "--", *server]  # family and version from env
found = tenure.ensure("web", wrapped, version=version, ports=(lo, hi))
print(json.dumps(found.to_json()))
