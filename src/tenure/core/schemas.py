"""The version of every JSON document tenure prints, one constant each (pure).

A reader keys on `schema_version`; a document's version goes up when a key changes meaning or
goes away (adding a key does not). spec: docs/protocol/versioning.md
"""

from __future__ import annotations

DOCTOR = 3  # `tenure auth doctor --json` (docs/protocol/doctor-json.md)
DAEMON = 1  # `tenure <family> start|status|stop|restart --json`
LS = 1  # `tenure ls --json`
DEMO = 1  # `tenure demo --json`
