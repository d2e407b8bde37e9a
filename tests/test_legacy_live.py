"""Classifier, scanner and reaper against live listeners on real loopback ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from tenure.classify import CleanupClass, SkipReason
from tenure.engine import legacy_root, survey
from tenure.families import DASHBOARD, SYNC
from tenure.probe import listening_pids, open_ports
from tenure.reaper import reap
from tenure.record import Holder, LeaseRecord, LeaseState
from tenure.standins import spawn_legacy, spawn_other, spawn_singleton
from tenure.store import LeaseStore, read_token
from tenure.testing import ProcessRegistry, make_fleet, pid_gone
from tests.conftest import wait_for

NEVER, OPERATOR, SAFE = (
    CleanupClass.NEVER_TOUCH,
    CleanupClass.OPERATOR_REQUIRED,
    CleanupClass.SAFE_AUTO,
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Private tenure and legacy roots, a signal journal, and test sub-ranges of both families."""
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    legacy = tmp_path / "home" / ".spec-kitty"
    legacy.mkdir(parents=True)
    journal = tmp_path / "signals.jsonl"
    monkeypatch.setenv("TENURE_ROOT", str(root))
    monkeypatch.setenv("SPEC_KITTY_HOME", str(legacy))
    monkeypatch.setenv("TENURE_SYNC_PORTS", "9410-9429")
    monkeypatch.setenv("TENURE_DASHBOARD_PORTS", "9300-9309")
    monkeypatch.setenv("TENURE_SIGNAL_JOURNAL", str(journal))
    return {"root": root.resolve(), "legacy": legacy.resolve(), "journal": journal, "tmp": tmp_path}


def signals(journal: Path) -> list[dict[str, object]]:
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text().splitlines()]


def by_port(records: list) -> dict[int, tuple[CleanupClass, SkipReason | None]]:  # type: ignore[type-arg]
    return {r.port: (r.cleanup_class, r.skip_reason) for r in records}


def test_version_matrix_stale_daemons_are_swept_and_the_singleton_survives(
    env: dict[str, Path], proc_registry: ProcessRegistry
) -> None:
    """3.2.2 / 3.2.3 / 3.2.4 stale daemons of the same root: safe_auto, swept, pids dead, ports free."""
    legacy = env["legacy"]
    singleton = spawn_singleton(proc_registry, 9410, legacy)
    stale = {
        port: spawn_legacy(proc_registry, port, legacy, version)[0]
        for port, version in [(9411, "3.2.2"), (9412, "3.2.3"), (9413, "3.2.4")]
    }
    found = survey(SYNC, env["root"], legacy_root())
    assert by_port(found.records) == {
        9410: (NEVER, SkipReason.IS_RECORDED_SINGLETON),
        9411: (SAFE, None),
        9412: (SAFE, None),
        9413: (SAFE, None),
    }
    assert {r.port: r.package_version for r in found.records} == {
        9410: "3.2.4",
        9411: "3.2.2",
        9412: "3.2.3",
        9413: "3.2.4",
    }
    result = reap(found.records, SYNC, env["root"])
    assert sorted((s.port, s.cleanup_path) for s in result.swept) == [
        (9411, "terminate"),
        (9412, "terminate"),
        (9413, "terminate"),
    ]
    assert result.failed == []
    assert result.skipped == []  # the singleton is never_touch: not a candidate at all
    for proc in stale.values():
        assert proc.wait(5) is not None
    assert open_ports(range(9411, 9414)) == []
    assert singleton.poll() is None
    assert {s["pid"] for s in signals(env["journal"])} == {p.pid for p in stale.values()}


def test_operator_required_cases_are_untouched_without_force(
    env: dict[str, Path], proc_registry: ProcessRegistry
) -> None:
    """Pre-marker, cross-root, missing pid, wedged and mismatch: operator_required, alive without force."""
    legacy = env["legacy"]
    other_home = env["tmp"] / "other-home" / ".spec-kitty"
    other_home.mkdir(parents=True)
    procs = {
        9414: spawn_legacy(proc_registry, 9414, legacy, "3.2.2", marker=False)[0],
        9415: spawn_legacy(proc_registry, 9415, other_home, "3.2.3")[0],
        9416: spawn_legacy(proc_registry, 9416, legacy, "3.2.4", mode="wedged")[0],
        9418: spawn_legacy(proc_registry, 9417, legacy, "3.2.4", mode="listen_elsewhere=9418")[0],
        9419: spawn_legacy(proc_registry, 9419, legacy, "3.2.2")[0],
    }

    def lookup_without_9419() -> dict[int, int]:
        # Fact gathering with one listener unattributed, as when the socket table hides its pid.
        pids = listening_pids()
        pids.pop(9419, None)
        return pids

    t0 = time.monotonic()
    found = survey(SYNC, env["root"], legacy_root(), pid_lookup=lookup_without_9419)
    assert time.monotonic() - t0 < 5
    assert by_port(found.records) == {
        9414: (OPERATOR, SkipReason.PRE_MARKER),
        9415: (OPERATOR, SkipReason.CROSS_ROOT),
        9416: (OPERATOR, SkipReason.UNRESPONSIVE),
        9418: (OPERATOR, SkipReason.PID_PORT_MISMATCH),
        9419: (OPERATOR, SkipReason.MISSING_PID),
    }
    result = reap(found.records, SYNC, env["root"])
    assert result.swept == []
    assert result.failed == []
    assert sorted(s.port for s in result.skipped) == sorted(procs)
    assert all(p.poll() is None for p in procs.values())
    assert signals(env["journal"]) == []

    forced = reap(found.records, SYNC, env["root"], allow_operator=True)
    assert sorted(s.port for s in forced.swept) == [9414, 9415, 9416, 9418]
    assert [(f.port, f.failure_reason) for f in forced.failed] == [(9419, "no_pid")]
    for port in (9414, 9415, 9416, 9418):
        assert procs[port].wait(5) is not None
    assert procs[9419].poll() is None


def test_never_touch_listeners_survive_every_entry_point(
    env: dict[str, Path], proc_registry: ProcessRegistry, tmp_path: Path
) -> None:
    """Third-party HTTP, raw TCP, a legacy dashboard and a lease-aware dashboard are never touched."""
    others = [
        spawn_other(proc_registry, "third_party_http", 9420),
        spawn_other(proc_registry, "raw_tcp", 9421),
        spawn_other(proc_registry, "legacy_dashboard", 9300),
    ]
    fleet = make_fleet(
        env["root"],
        proc_registry,
        TENURE_DASHBOARD_PORTS="9301-9309",
        TENURE_SYNC_PORTS="9410-9429",
        SPEC_KITTY_HOME=str(env["legacy"]),
    )
    dash = fleet.start("dashboard")
    sync_found = survey(SYNC, env["root"], legacy_root())
    assert by_port(sync_found.records) == {
        9420: (NEVER, SkipReason.THIRD_PARTY),
        9421: (NEVER, SkipReason.THIRD_PARTY),
    }
    dash_found = survey(DASHBOARD, env["root"], legacy_root())
    assert by_port(dash_found.records) == {
        9300: (NEVER, SkipReason.DASHBOARD_FAMILY),
        dash["port"]: (NEVER, SkipReason.LEASE_HOLDER),
    }
    for family, found in ((SYNC, sync_found), (DASHBOARD, dash_found)):
        for force in (False, True):
            result = reap(found.records, family, env["root"], allow_operator=force)
            assert result.swept == []
            assert result.failed == []
    assert all(p.poll() is None for p in others)
    assert not pid_gone(dash["pid"])
    assert signals(env["journal"]) == []


@pytest.mark.realports
def test_boundary_ports_are_never_probed_and_survive(
    env: dict[str, Path],
    proc_registry: ProcessRegistry,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Listeners just outside both families' ranges are never connected to; the edges are inside."""
    monkeypatch.delenv("TENURE_SYNC_PORTS")
    monkeypatch.delenv("TENURE_DASHBOARD_PORTS")
    counters = {}
    for port in (9399, 9450, 9236, 9337):
        counter = tmp_path / f"accepts-{port}"
        code = (
            "import socket,sys\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(8)\n"
            "open(sys.argv[2], 'w').close()\n"
            "while True:\n c,_=s.accept(); open(sys.argv[2],'a').write('x'); c.close()\n"
        )
        counters[port] = (
            proc_registry.spawn([sys.executable, "-c", code, str(port), str(counter)]),
            counter,
        )
        wait_for(counter.exists, what=f"counter listener {port}")
    legacy = env["legacy"]
    edge = {port: spawn_legacy(proc_registry, port, legacy, "3.2.3")[0] for port in (9400, 9449)}
    dash_edges = [spawn_other(proc_registry, "legacy_dashboard", port) for port in (9237, 9336)]
    sync_found = survey(SYNC, env["root"], legacy_root())
    dash_found = survey(DASHBOARD, env["root"], legacy_root())
    assert {r.port for r in sync_found.records} == {9400, 9449}
    assert {r.port for r in dash_found.records} == {9237, 9336}
    swept = reap(sync_found.records, SYNC, env["root"], allow_operator=True)
    reap(dash_found.records, DASHBOARD, env["root"], allow_operator=True)
    assert sorted(s.port for s in swept.swept) == [9400, 9449]
    assert all(p.wait(5) is not None for p in edge.values())
    assert all(p.poll() is None for p in dash_edges)
    for port, (proc, counter) in counters.items():
        assert proc.poll() is None, port
        assert counter.read_text() == "", f"port {port} was connected to"


def test_reused_pid_is_not_signalled(env: dict[str, Path], proc_registry: ProcessRegistry) -> None:
    """A candidate whose create_time no longer matches fails as identity_changed, with no signal."""
    proc, _ = spawn_legacy(proc_registry, 9422, env["legacy"], "3.2.2")
    found = survey(SYNC, env["root"], legacy_root())
    (record,) = found.records
    assert record.cleanup_class is SAFE
    stale_identity = replace(record, create_time=(record.create_time or 0) - 3600)
    result = reap([stale_identity], SYNC, env["root"])
    assert [(f.pid, f.failure_reason) for f in result.failed] == [(proc.pid, "identity_changed")]
    assert result.swept == []
    assert proc.poll() is None
    assert signals(env["journal"]) == []


def test_term_ignoring_daemon_is_escalated_to_kill(
    env: dict[str, Path], proc_registry: ProcessRegistry
) -> None:
    """A stale daemon that ignores SIGTERM is killed and reported with cleanup_path kill."""
    proc, _ = spawn_legacy(proc_registry, 9423, env["legacy"], "3.2.2", mode="ignore_term")
    found = survey(SYNC, env["root"], legacy_root())
    result = reap(found.records, SYNC, env["root"])
    assert [(s.pid, s.cleanup_path) for s in result.swept] == [(proc.pid, "kill")]
    assert [s["action"] for s in signals(env["journal"])] == ["SIGTERM", "SIGKILL"]
    assert proc.wait(5) == -9


def test_lease_holder_is_never_touched_and_a_lingering_non_holder_is_swept(
    env: dict[str, Path], proc_registry: ProcessRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder is never_touch; a superseded daemon lingering past grace is safe_auto and swept."""
    fleet = make_fleet(
        env["root"],
        proc_registry,
        TENURE_SYNC_PORTS="9424-9429",
        SPEC_KITTY_HOME=str(env["legacy"]),
    )
    monkeypatch.setenv("TENURE_SYNC_PORTS", "9424-9429")
    old = fleet.start(version="1.0")
    assert by_port(survey(SYNC, env["root"], legacy_root()).records) == {
        old["port"]: (NEVER, SkipReason.LEASE_HOLDER)
    }
    # Keep the old daemon busy, then hand the lease to a newer holder (this test process).
    token = read_token(env["root"], "sync", old["pid"])
    work = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from tenure.httpc import request; request({old['port']}, 'POST', '/api/work', token={token!r}, payload={{'seconds': 30}}, timeout=40)",
        ]
    )
    proc_registry.popens.append(work)
    proc_registry.track(work.pid)
    wait_for(
        lambda: (
            (h := __import__("tenure.httpc", fromlist=["health"]).health(old["port"]))
            and h["in_flight"] == 1
        ),
        what="work in flight",
    )
    store = LeaseStore(env["root"], "sync")
    me = psutil.Process(os.getpid())
    newer = Holder(
        pid=me.pid,
        create_time=me.create_time(),
        nonce="test",
        version="1.1",
        port=None,
        started_at=time.time() - 60,
    )
    store.transact(
        lambda cur: (
            None,
            LeaseRecord("sync", cur.epoch + 1, newer, 15.0, time.time(), 0, LeaseState.HELD),
        )
    )  # type: ignore[union-attr]
    wait_for(
        lambda: (
            (h := __import__("tenure.httpc", fromlist=["health"]).health(old["port"]))
            and h["role"] == "retiring"
        ),
        what="old daemon retiring",
    )
    monkeypatch.setenv("TENURE_RETIRE_GRACE", "3600")
    assert by_port(survey(SYNC, env["root"], legacy_root()).records) == {
        old["port"]: (NEVER, SkipReason.RETIRING)
    }
    monkeypatch.setenv("TENURE_RETIRE_GRACE", "1")
    found = survey(SYNC, env["root"], legacy_root())
    assert by_port(found.records) == {old["port"]: (SAFE, None)}
    result = reap(found.records, SYNC, env["root"])
    assert [(s.pid, s.cleanup_path) for s in result.swept] == [(old["pid"], "http_shutdown")]
    assert pid_gone(old["pid"])


def test_startup_reaper_of_a_new_holder_sweeps_stale_legacy_daemons(
    env: dict[str, Path], proc_registry: ProcessRegistry
) -> None:
    """A new sync holder cleans safe_auto legacy holdouts of its own family and nothing else."""
    legacy = env["legacy"]
    singleton = spawn_singleton(proc_registry, 9425, legacy)
    stale, _ = spawn_legacy(proc_registry, 9426, legacy, "3.2.2")
    wedged, _ = spawn_legacy(proc_registry, 9427, legacy, "3.2.3", mode="wedged")
    fleet = make_fleet(
        env["root"],
        proc_registry,
        TENURE_SYNC_PORTS="9424-9429",
        SPEC_KITTY_HOME=str(legacy),
        TENURE_SIGNAL_JOURNAL=str(env["journal"]),
    )
    started = fleet.start()
    assert stale.wait(10) is not None
    assert singleton.poll() is None
    assert wedged.poll() is None
    assert [(s["pid"], s["action"]) for s in signals(env["journal"])] == [(stale.pid, "SIGTERM")]
    assert not pid_gone(started["pid"])
