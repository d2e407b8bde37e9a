"""Boundary regression matrix: every entry point by every listener kind, on the real ranges.

Each entry point runs against a fresh fleet laid out over both families' real port ranges,
including the first/last port inside and the first port outside each range. Every signal and
shutdown call the reaper makes is journaled; the assertions count them per listener.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tenure.adapters.http import health
from tenure.adapters.ports import open_ports
from tenure.adapters.reaper import reap
from tenure.core.families import DASHBOARD
from tenure.hygiene.survey import legacy_root as resolve_legacy
from tenure.hygiene.survey import survey
from tenure.legacy.simulated import spawn_legacy, spawn_other, spawn_singleton
from tenure.testing import Fleet, ProcessRegistry, make_fleet
from tests.conftest import wait_for

SYSTEM_PY = "/usr/bin/python3"
ENTRY_POINTS = ["startup_reaper", "doctor", "reset", "reset_force", "dashboard_cleanup"]
MATRIX: list[dict[str, Any]] = []  # printed by conftest's terminal summary

# kind, port, family range it sits in (None = outside both), signals allowed by entry point
#   "clean": swept by any cleaning sync entry point; "force": only by reset --force; "never".
LAYOUT = [
    ("legacy stale 3.2.2 (outside, below sync)", 9399, "never"),
    ("legacy stale 3.2.3 (first sync port)", 9400, "clean"),
    ("lease holder (sync)", 9401, "never"),
    ("legacy singleton 3.2.4", 9402, "never"),
    ("legacy pre-marker", 9403, "force"),
    ("legacy cross-root", 9404, "force"),
    ("legacy wedged", 9405, "force"),
    ("third-party HTTP", 9406, "never"),
    ("raw TCP", 9407, "never"),
    ("lease-aware retiring (waiting, not holder)", 9408, "never"),
    ("legacy stale of another uid", 9409, "never"),
    ("lease-aware holder of another tenure root", 9410, "never"),
    ("legacy stale 3.2.4 (last sync port)", 9449, "clean"),
    ("legacy stale 3.2.2 (outside, above sync)", 9450, "never"),
    ("legacy stale 3.2.2 (outside, below dashboard)", 9236, "never"),
    ("legacy dashboard (first dashboard port)", 9237, "never"),
    ("legacy sync daemon in the dashboard range", 9238, "never"),
    ("lease-aware dashboard (last dashboard port)", 9336, "never"),
    ("legacy stale 3.2.3 (outside, above dashboard)", 9337, "never"),
]


def real_env(fleet: Fleet) -> dict[str, str]:
    env = dict(fleet.env)
    env.pop("TENURE_SYNC_PORTS", None)
    env.pop("TENURE_DASHBOARD_PORTS", None)
    return env


@pytest.fixture
def nobody_home() -> Iterator[Path | None]:
    if os.geteuid() != 0 or not os.path.exists(SYSTEM_PY):
        yield None
        return
    home = Path(tempfile.mkdtemp(prefix="tenure-nobody-"))
    os.chmod(home, 0o755)
    (home / ".spec-kitty").mkdir()
    os.chown(home / ".spec-kitty", 65534, 65534)
    yield home / ".spec-kitty"
    shutil.rmtree(home, ignore_errors=True)


def build_fleet(fleet: Fleet, entry: str, nobody_legacy: Path | None, tmp: Path) -> dict[int, int]:
    """Start every listener of LAYOUT; returns port → pid."""
    reg, legacy = fleet.registry, Path(fleet.env["SPEC_KITTY_HOME"])
    pids: dict[int, int] = {}
    dash = fleet.start("dashboard", TENURE_DASHBOARD_PORTS="9336-9336")
    pids[9336] = dash["pid"]
    if entry != "startup_reaper":
        pids[9401] = fleet.start("sync", TENURE_SYNC_PORTS="9401-9401")["pid"]
    # Another root of the same user: its holder governs itself; this root's cleanup never acts.
    neighbour_legacy = tmp / "neighbour-home" / ".spec-kitty"
    neighbour_legacy.mkdir(parents=True)
    neighbour = make_fleet(
        tmp / "other-tenure-root",
        reg,
        TENURE_SYNC_PORTS="9410-9410",
        SPEC_KITTY_HOME=str(neighbour_legacy),
        TENURE_SIGNAL_JOURNAL=fleet.env["TENURE_SIGNAL_JOURNAL"],
    )
    pids[9410] = neighbour.start("sync")["pid"]
    other_root = tmp / "other-home" / ".spec-kitty"
    other_root.mkdir(parents=True, exist_ok=True)
    for port, version in [
        (9399, "3.2.2"),
        (9400, "3.2.3"),
        (9449, "3.2.4"),
        (9450, "3.2.2"),
        (9236, "3.2.2"),
        (9337, "3.2.3"),
        (9238, "3.2.2"),
    ]:
        pids[port] = spawn_legacy(reg, port, legacy, version)[0].pid
    single = spawn_singleton(reg, 9402, legacy)
    pids[9402] = single.pid
    pids[9403] = spawn_legacy(reg, 9403, legacy, "3.2.2", marker=False)[0].pid
    pids[9404] = spawn_legacy(reg, 9404, other_root, "3.2.3")[0].pid
    pids[9405] = spawn_legacy(reg, 9405, legacy, "3.2.4", mode="wedged")[0].pid
    pids[9406] = spawn_other(reg, "third_party_http", 9406).pid
    pids[9407] = spawn_other(reg, "raw_tcp", 9407).pid
    pids[9237] = spawn_other(reg, "legacy_dashboard", 9237).pid
    if nobody_legacy is not None:
        pids[9409] = spawn_legacy(reg, 9409, nobody_legacy, "3.2.2", python=SYSTEM_PY, user=65534)[
            0
        ].pid
    if entry == "startup_reaper":
        # With no holder yet, a waiting lease-aware daemon would simply become the holder.
        return pids
    waiting = reg.spawn(
        [
            sys.executable,
            "-m",
            "tenure.daemon.main",
            f"--tenure-root={fleet.root}",
            "--tenure-family=sync",
            "--acquire-wait=120",
        ],
        env={**fleet.env, "TENURE_SYNC_PORTS": "9408-9408"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: open_ports([9408]), what="waiting lease-aware daemon bound")
    pids[9408] = waiting.pid
    return pids


def run_entry(fleet: Fleet, entry: str, pids: dict[int, int]) -> None:
    env = real_env(fleet)
    if entry == "startup_reaper":
        out = subprocess.run(
            [sys.executable, "-m", "tenure", "sync", "start", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        started = json.loads(out.stdout)
        fleet.registry.track(started["pid"])
        pids[started["port"]] = started["pid"]
        assert started["port"] == 9401
        wait_for(
            lambda: (h := health(9401)) is not None and h["startup_reaper"] == "done",
            what="startup reaper done",
        )
    elif entry == "dashboard_cleanup":
        # The dashboard family's own cleanup, at its most permissive (operator_required allowed).
        os.environ["TENURE_SIGNAL_JOURNAL"] = env["TENURE_SIGNAL_JOURNAL"]
        try:
            found = survey(DASHBOARD, fleet.root, resolve_legacy(Path(env["SPEC_KITTY_HOME"])))
            reap(found.records, DASHBOARD, fleet.root, allow_operator=True)
        finally:
            del os.environ["TENURE_SIGNAL_JOURNAL"]
    else:
        args = {"doctor": [], "reset": ["--reset"], "reset_force": ["--reset", "--force"]}[entry]
        proc = subprocess.run(
            [sys.executable, "-m", "tenure", "auth", "doctor", "--json", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode in (0, 1), proc.stderr


def expected_signalled(entry: str, rule: str) -> bool:
    if entry in ("doctor", "dashboard_cleanup") or rule == "never":
        return False
    return rule == "clean" or entry == "reset_force"


@pytest.mark.realports
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_boundary_matrix(
    entry: str, tmp_path: Path, proc_registry: ProcessRegistry, nobody_home: Path | None
) -> None:
    """Signals go only where the entry point's family range, class and force allow."""
    legacy = tmp_path / "home" / ".spec-kitty"
    legacy.mkdir(parents=True)
    journal = tmp_path / "signals.jsonl"
    fleet = make_fleet(
        tmp_path / "root",
        proc_registry,
        SPEC_KITTY_HOME=str(legacy.resolve()),
        TENURE_SIGNAL_JOURNAL=str(journal),
    )
    pids = build_fleet(fleet, entry, nobody_home, tmp_path)
    run_entry(fleet, entry, pids)
    entries = [json.loads(x) for x in journal.read_text().splitlines()] if journal.exists() else []
    by_pid: dict[int, list[str]] = {}
    for e in entries:
        by_pid.setdefault(e["pid"], []).append(e["action"])
    known = set(pids.values())
    assert set(by_pid) <= known, f"signal to a process outside the fleet: {set(by_pid) - known}"
    family_lo, family_hi = (9237, 9337) if entry == "dashboard_cleanup" else (9400, 9450)
    for e in entries:
        assert family_lo <= e["port"] < family_hi, (
            f"{entry} signalled outside its family range: {e}"
        )
    for kind, port, rule in LAYOUT:
        if port not in pids:
            MATRIX.append(
                {
                    "entry": entry,
                    "kind": kind,
                    "port": port,
                    "signals": "n/a (no holder yet)" if port == 9408 else "n/a (no uid 65534)",
                    "ok": True,
                }
            )
            continue
        got = by_pid.get(pids[port], [])
        want = expected_signalled(entry, rule)
        ok = bool(got) == want
        MATRIX.append(
            {"entry": entry, "kind": kind, "port": port, "signals": ",".join(got) or "-", "ok": ok}
        )
        assert ok, (
            f"{entry}: {kind} on {port} got {got or 'no signal'}, expected {'signals' if want else 'none'}"
        )
