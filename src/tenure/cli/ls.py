"""`tenure ls`: every family of the root, one line each."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from tenure.cli.cells import home_short
from tenure.cli.common import JSON_OPTION, LEGACY_ROOT_OPTION, QUIET_OPTION, ROOT_OPTION
from tenure.cli.out import EXIT_OK, clean, fail, lease_timing, note, paint, resolve_root
from tenure.errors import TenureError


def _line(doc: dict[str, object]) -> str:
    others = doc["other_listeners"]
    if others is None:
        elsewhere = "others: no port range known"
    elif not others:
        elsewhere = "others: none"
    else:
        assert isinstance(others, dict)
        counts = ", ".join(f"{n} {cls}" for cls, n in sorted(others.items()))
        elsewhere = f"others: {counts}"
    advice = doc["doctor_says"]
    if advice not in ("ok", "no port range known"):
        elsewhere += f" → {advice}"
    scope = f"  scope {home_short(str(doc['scope']))}" if doc.get("scope") else ""
    # Outside text is cleaned first; only then is the state (one of a few words) painted.
    family, scope, elsewhere = clean(f"{doc['family']:<10}"), clean(scope), clean(elsewhere)
    state = paint(clean(f"{doc['state']:<8}"), str(doc["state"]))
    if doc["state"] in ("absent", "unreadable"):
        return f"{family} {state}{scope} {elsewhere}"
    parts = [
        f"{family} {state}{scope}",
        f"pid {doc['holder_pid']}",
        f"port {doc['port'] or '-'}",
        f"v{doc['version']}",
        f"epoch {doc['epoch']}",
        f"lives on {doc['lives']}" if doc.get("lives") else "",
        lease_timing(doc),
    ]
    return "  ".join([parts[0], *(clean(p) for p in parts[1:] if p), elsewhere])


def ls_cmd(
    as_json: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    legacy_root: Path | None = LEGACY_ROOT_OPTION,
    _quiet: bool = QUIET_OPTION,
) -> None:
    """Every daemon family of this root on one line: holder, state, lease, other listeners."""
    from tenure.adapters.root import check_root  # noqa: PLC0415
    from tenure.hygiene import overview  # noqa: PLC0415  (keeps `tenure --help` fast)
    from tenure.hygiene import survey as engine  # noqa: PLC0415

    try:
        the_root = resolve_root(root)
        if the_root.exists():
            check_root(the_root)
        pruned = overview.prune_released(the_root, time.time()) if the_root.exists() else []
        lines = overview.gather(the_root, engine.legacy_root(legacy_root))
    except (TenureError, OSError) as exc:
        fail(exc, as_json)
    if pruned:
        note(f"pruned the records of {', '.join(pruned)}: released more than 30 days ago")
    docs = [line.to_json() for line in lines]
    if as_json:
        doc = {
            "schema_version": overview.SCHEMA_VERSION,
            "root": str(the_root),
            "families": docs,
            "pruned": pruned,
        }
        sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
    else:
        typer.echo(clean(f"root {the_root}"))
        for doc in docs:
            typer.echo(_line(doc))
    raise typer.Exit(EXIT_OK)
