"""Classifier, scanner and reaper against live listeners on real loopback ports."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tenure.adapters import platform
from tenure.adapters.config import GUARD_ENV
from tenure.adapters.ports import open_ports
from tenure.adapters.probe import listening_pids
from tenure.adapters.reaper import reap
from tenure.adapters.store import LeaseStore
from tenure.adapters.tokens import read_token
from tenure.core.classify import CleanupClass, SkipReason
from tenure.core.families import DASHBOARD, SYNC
from tenure.core.record import Holder, LeaseRecord, LeaseState
from tenure.core.values import replace
from tenure.hygiene.survey import legacy_root, survey
from tenure.legacy.simulated import spawn_legacy, spawn_other, spawn_singleton
from tenure.testing import ProcessRegistry, make_fleet, pid_gone
from tests.conftest import block, wait_for

BLOCK = block(__name__)  # ports below are literals inside this block

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
    monkeypatch.setenv("TENURE_SYNC_PORTS", BLOCK.sync_env)
    monkeypatch.setenv("TENURE_DASHBOARD_PORTS", BLOCK.dashboard_env)
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
    singleton = spawn_singleton(proc_registry, 9430, legacy)
    stale = {
        port: spawn_legacy(proc_registry, port, legacy, version)[0]
        for port, version in [(9431, "3.2.2"), (9432, "3.2.3"), (9433, "3.2.4")]
    }
    found = survey(SYNC, env["root"], legacy_root())
    assert by_port(found.records) == {
        9430: (NEVER, SkipReason.IS_RECORDED_SINGLETON),
        9431: (SAFE, None),
        9432: (SAFE, None),
        9433: (SAFE, None),
    }
    assert {r.port: r.package_version for r in found.records} == {
        9430: "3.2.4",
        9431: "3.2.2",
        9432: "3.2.3",
        9433: "3.2.4",
    }
    result = reap(found.records, SYNC, env["root"])
    assert sorted((s.port, s.cleanup_path) for s in result.swept) == [
        (9431, "terminate"),
        (9432, "terminate"),
        (9433, "terminate"),
    ]
    assert result.failed == []
    assert result.skipped == []  # the singleton is never_touch: not a candidate at all
    for proc in stale.values():
        assert proc.wait(5) is not None
    assert open_ports(range(9431, 9434)) == []
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
        9434: spawn_legacy(proc_registry, 9434, legacy, "3.2.2", marker=False)[0],
        9435: spawn_legacy(proc_registry, 9435, other_home, "3.2.3")[0],
        9436: spawn_legacy(proc_registry, 9436, legacy, "3.2.4", mode="wedged")[0],
        9438: spawn_legacy(proc_registry, 9437, legacy, "3.2.4", mode="listen_elsewhere=9438")[0],
        9439: spawn_legacy(proc_registry, 9439, legacy, "3.2.2")[0],
    }

    def lookup_without_9439() -> dict[int, int]:
        # Fact gathering with one listener unattributed, as when the socket table hides its pid.
        pids = listening_pids()
        pids.pop(9439, None)
        return pids

    found = survey(SYNC, env["root"], legacy_root(), pid_lookup=lookup_without_9439)
    assert by_port(found.records) == {
        9434: (OPERATOR, SkipReason.PRE_MARKER),
        9435: (OPERATOR, SkipReason.CROSS_ROOT),
        9436: (OPERATOR, SkipReason.UNRESPONSIVE),
        9438: (OPERATOR, SkipReason.PID_PORT_MISMATCH),
        9439: (OPERATOR, SkipReason.MISSING_PID),
    }
    result = reap(found.records, SYNC, env["root"])
    assert result.swept == []
    assert result.failed == []
    assert sorted(s.port for s in result.skipped) == sorted(procs)
    assert all(p.poll() is None for p in procs.values())
    assert signals(env["journal"]) == []

    forced = reap(found.records, SYNC, env["root"], allow_operator=True)
    assert sorted(s.port for s in forced.swept) == [9434, 9435, 9436, 9438]
    assert [(f.port, f.failure_reason) for f in forced.failed] == [(9439, "no_pid")]
    for port in (9434, 9435, 9436, 9438):
        assert procs[port].wait(5) is not None
    assert procs[9439].poll() is None


def test_never_touch_listeners_survive_every_entry_point(
    env: dict[str, Path], proc_registry: ProcessRegistry, tmp_path: Path
) -> None:
    """Third-party HTTP, raw TCP, a legacy dashboard and a lease-aware dashboard are never touched."""
    others = [
        spawn_other(proc_registry, "third_party_http", 9430),
        spawn_other(proc_registry, "raw_tcp", 9431),
        spawn_other(proc_registry, "legacy_dashboard", 9310),
    ]
    fleet = make_fleet(
        env["root"],
        proc_registry,
        TENURE_DASHBOARD_PORTS="9311-9319",
        TENURE_SYNC_PORTS="9430-9439",
        SPEC_KITTY_HOME=str(env["legacy"]),
    )
    dash = fleet.start("dashboard")
    sync_found = survey(SYNC, env["root"], legacy_root())
    assert by_port(sync_found.records) == {
        9430: (NEVER, SkipReason.THIRD_PARTY),
        9431: (NEVER, SkipReason.THIRD_PARTY),
    }
    dash_found = survey(DASHBOARD, env["root"], legacy_root())
    assert by_port(dash_found.records) == {
        9310: (NEVER, SkipReason.DASHBOARD_FAMILY),
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
    """A candidate whose start (ticks since boot) no longer matches fails as identity_changed,
    with no signal; so does one known only by a create_time that no longer matches."""
    proc, _ = spawn_legacy(proc_registry, 9432, env["legacy"], "3.2.2")
    found = survey(SYNC, env["root"], legacy_root())
    (record,) = found.records
    assert record.cleanup_class is SAFE
    stale_ctime = replace(record, create_time=(record.create_time or 0) - 3600, start_ticks=None)
    stale = [stale_ctime]
    if platform.PROC_FACTS:  # start ticks are Linux's (/proc); elsewhere create_time alone
        assert record.start_ticks is not None
        stale.insert(0, replace(record, start_ticks=record.start_ticks - 1))
    result = reap(stale, SYNC, env["root"])
    assert [(f.pid, f.failure_reason) for f in result.failed] == [
        (proc.pid, "identity_changed") for _ in stale
    ]
    assert result.swept == []
    assert proc.poll() is None
    assert signals(env["journal"]) == []


def test_term_ignoring_daemon_is_escalated_to_kill(
    env: dict[str, Path], proc_registry: ProcessRegistry
) -> None:
    """A stale daemon that ignores SIGTERM is killed and reported with cleanup_path kill."""
    proc, _ = spawn_legacy(proc_registry, 9433, env["legacy"], "3.2.2", mode="ignore_term")
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
        TENURE_SYNC_PORTS="9434-9439",
        SPEC_KITTY_HOME=str(env["legacy"]),
    )
    monkeypatch.setenv("TENURE_SYNC_PORTS", "9434-9439")
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
            f"from tenure.adapters.http import request; request({old['port']}, 'POST', '/api/work', token={token!r}, payload={{'seconds': 30}}, timeout=40)",
        ]
    )
    proc_registry.popens.append(work)
    proc_registry.track(work.pid)
    wait_for(
        lambda: (
            (h := __import__("tenure.adapters.http", fromlist=["health"]).health(old["port"]))
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
            (h := __import__("tenure.adapters.http", fromlist=["health"]).health(old["port"]))
            and h["role"] == "retiring"
        ),
        what="old daemon retiring",
    )
    monkeypatch.setenv("TENURE_RETIRE_GRACE", "3600")
    assert by_port(survey(SYNC, env["root"], legacy_root()).records) == {
        old["port"]: (NEVER, SkipReason.RETIRING)
    }
    # Grace 0: lingering is measured from the old daemon's start, so any time at all that
    # passes makes it stale. Wait for that event rather than assume the machine's speed.
    monkeypatch.setenv("TENURE_RETIRE_GRACE", "0")
    found = wait_for(
        lambda: (
            (f := survey(SYNC, env["root"], legacy_root()))
            and by_port(f.records) == {old["port"]: (SAFE, None)}
            and f
        ),
        what="the lingering non-holder to count as stale",
    )
    result = reap(found.records, SYNC, env["root"])
    assert [(s.pid, s.cleanup_path) for s in result.swept] == [(old["pid"], "http_shutdown")]
    assert pid_gone(old["pid"])


def test_startup_reaper_of_a_new_holder_sweeps_stale_legacy_daemons(
    env: dict[str, Path], proc_registry: ProcessRegistry
) -> None:
    """A new sync holder cleans safe_auto legacy holdouts of its own family and nothing else."""
    legacy = env["legacy"]
    singleton = spawn_singleton(proc_registry, 9435, legacy)
    stale, _ = spawn_legacy(proc_registry, 9436, legacy, "3.2.2")
    wedged, _ = spawn_legacy(proc_registry, 9437, legacy, "3.2.3", mode="wedged")
    fleet = make_fleet(
        env["root"],
        proc_registry,
        TENURE_SYNC_PORTS="9434-9439",
        SPEC_KITTY_HOME=str(legacy),
        TENURE_SIGNAL_JOURNAL=str(env["journal"]),
    )
    proc = fleet.cli("sync", "start")
    assert stale.wait(10) is not None
    assert singleton.poll() is None
    assert wedged.poll() is None
    assert [(s["pid"], s["action"]) for s in signals(env["journal"])] == [(stale.pid, "SIGTERM")]
    # start says what its startup reaper did (or that it still runs and where to look).
    reported = proc.stderr
    if "still running" not in reported:
        assert f"stopped stale 3.2.2 daemon pid {stale.pid} on port 9436" in reported
        assert "left 1 for an operator (port 9437)" in reported
    status = json.loads(fleet.cli("sync", "status", "--json").stdout)
    reaper = status["daemon"]["startup_reaper"]
    assert reaper["state"] == "done"
    assert [s["pid"] for s in reaper["swept"]] == [stale.pid]
    assert [k["port"] for k in reaper["skipped"]] == [9437]
    assert not pid_gone(status["pid"])


def test_signal_guard_spares_a_process_the_test_did_not_start(
    env: dict[str, Path], proc_registry: ProcessRegistry
) -> None:
    """Under the test kit's guard a forced reap never signals a process outside the registry."""
    outsider = ProcessRegistry()  # stands for a developer's own daemon: not this test's registry
    guard_file = Path(os.environ[GUARD_ENV])
    before = guard_file.read_text()
    with monkeypatch_env(GUARD_ENV, None):  # started the way anything outside the suite starts
        stranger, _ = spawn_legacy(outsider, 9430, env["legacy"], "3.2.2", marker=False)
    try:
        assert guard_file.read_text() == before  # never recorded as the test's own
        mine, _ = spawn_legacy(proc_registry, 9431, env["legacy"], "3.2.2", marker=False)
        found = survey(SYNC, env["root"], legacy_root())
        assert by_port(found.records) == {
            9430: (OPERATOR, SkipReason.PRE_MARKER),
            9431: (OPERATOR, SkipReason.PRE_MARKER),
        }
        result = reap(found.records, SYNC, env["root"], allow_operator=True)
        assert [(f.pid, f.failure_reason) for f in result.failed] == [(stranger.pid, "test_guard")]
        assert [s.pid for s in result.swept] == [mine.pid]
        assert stranger.poll() is None
        assert [e["pid"] for e in signals(env["journal"])] == [mine.pid]
    finally:
        with monkeypatch_env(GUARD_ENV, None):
            outsider.stop_all()
    assert stranger.poll() is not None


def test_every_test_runs_under_the_signal_guard() -> None:
    """The suite's autouse fixture turns the guard on, so no test can opt out by forgetting."""
    assert os.environ.get(GUARD_ENV)
    assert Path(os.environ[GUARD_ENV]).is_file()


@contextlib.contextmanager
def monkeypatch_env(name: str, value: str | None) -> Iterator[None]:
    """Set or unset one variable for a block, restoring it afterwards."""
    old = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is not None:
            os.environ[name] = old
