"""Reference daemons as real detached processes on real loopback ports."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest

from tenure.adapters.http import health, request
from tenure.adapters.store import LeaseStore, log_path
from tenure.adapters.tokens import read_token
from tenure.adapters.tombstones import read_tombstones
from tenure.core.health import AFTER_REAPER_PATH
from tenure.core.record import LeaseRecord
from tenure.legacy.simulated import spawn_other
from tenure.testing import Fleet, pid_gone
from tests.conftest import (
    HERE,
    assert_published_shape,
    block,
    popen_interruptible,
    remove_tree,
    wait_for,
)

BLOCK = block(__name__)


@pytest.fixture
def fleet(tenure_fleet: Fleet) -> Fleet:
    """The plugin's fleet fixture (tenure.testing), as tool authors would use it, on our block."""
    tenure_fleet.env["TENURE_SYNC_PORTS"] = BLOCK.sync_env
    tenure_fleet.env["TENURE_DASHBOARD_PORTS"] = BLOCK.dashboard_env
    return tenure_fleet


@pytest.mark.parametrize(
    ("family", "lo", "hi"), [("sync", *BLOCK.sync), ("dashboard", *BLOCK.dashboard)]
)
def test_start_status_stop_round_trip(fleet: Fleet, family: str, lo: int, hi: int) -> None:
    """start → status → stop works for both families and stays inside the family's range."""
    started = fleet.start(family)
    assert started["action"] == "started"
    assert lo <= started["port"] <= hi
    assert started["url"] == f"http://127.0.0.1:{started['port']}"
    status = json.loads(fleet.cli(family, "status", "--json").stdout)
    assert status["running"] is True
    assert status["daemon"]["pid"] == started["pid"]
    stopped = json.loads(fleet.cli(family, "stop", "--json").stdout)
    assert stopped["stopped"] is True
    assert pid_gone(started["pid"])
    after = fleet.cli(family, "status", "--json", check=False)
    assert after.returncode == 1
    assert json.loads(after.stdout)["running"] is False


def test_status_is_read_only(fleet: Fleet) -> None:
    """status with no daemon spawns nothing and writes nothing."""
    before = sorted(p.name for p in fleet.root.rglob("*"))
    assert fleet.cli("sync", "status", check=False).returncode == 1
    assert fleet.daemon_pids() == []
    assert sorted(p.name for p in fleet.root.rglob("*")) == before


def test_health_payload_has_the_protocol_fields_and_no_token(fleet: Fleet) -> None:
    """Health carries identity fields; the token is nowhere in health, argv, environ or log."""
    started = fleet.start()
    doc = health(started["port"])
    assert doc is not None
    assert doc["protocol"] == "tenure/1"
    assert doc["daemon_family"] == "sync"
    assert doc["pid"] == started["pid"]
    assert doc["port"] == started["port"]
    assert doc["root"] == str(fleet.root)
    assert doc["epoch"] == 1
    assert doc["role"] == "holder"
    assert doc["in_flight"] == 0
    assert {"status", "package_version", "started_at"} <= doc.keys()
    token = read_token(fleet.root, "sync", started["pid"])
    assert token
    proc = psutil.Process(started["pid"])
    assert f"--tenure-root={fleet.root}" in proc.cmdline()
    assert "--tenure-family=sync" in proc.cmdline()
    assert token not in json.dumps(doc)
    assert token not in " ".join(proc.cmdline())
    assert token not in json.dumps(proc.environ())
    assert token not in (fleet.root / "logs" / "sync.log").read_text()
    token_file = fleet.root / "tokens" / f"sync.{started['pid']}.token"
    assert token_file.stat().st_mode & 0o777 == 0o600


def test_the_health_answer_and_token_file_match_the_published_formats(fleet: Fleet) -> None:
    """A real health answer validates against health.schema.json and parses; the token file is
    16 to 128 URL-safe characters, no newline (control.md#endpoints). A token left by a holder
    that is gone (SIGKILLed: it could not remove its own) is removed by the next holder; one
    whose pid still runs is kept."""
    import jsonschema

    from tenure.core.health import parse_health

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    tokens = fleet.root / "tokens"
    tokens.mkdir(mode=0o700, exist_ok=True)
    (tokens / f"sync.{gone}.token").write_text("x" * 43)
    (tokens / f"sync.{os.getpid()}.token").write_text("y" * 43)
    started = fleet.start()
    doc = health(started["port"])
    schema = json.loads((HERE.parent / "docs/protocol/health.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert parse_health(doc) is not None
    assert_published_shape(fleet.root / "leases" / "sync.json")
    data = (tokens / f"sync.{started['pid']}.token").read_bytes()
    assert re.fullmatch(rb"[A-Za-z0-9_-]{16,128}", data), data
    assert not (tokens / f"sync.{gone}.token").exists()
    assert (tokens / f"sync.{os.getpid()}.token").exists()


def test_startup_reaper_hook_runs_without_delaying_health(fleet: Fleet) -> None:
    """Right after becoming holder the daemon runs its family's reaper in the background."""
    started = fleet.start()
    doc = wait_for(
        lambda: (h := health(started["port"])) and h["startup_reaper"] == "done" and h,
        what="reaper done",
    )
    assert doc


def test_control_endpoints_need_the_token(fleet: Fleet) -> None:
    """401 without a token, 403 with a wrong one, for every control endpoint."""
    started = fleet.start()
    for path in ("/api/retire", "/api/shutdown", "/api/work"):
        missing = request(started["port"], "POST", path)
        wrong = request(started["port"], "POST", path, token="not-the-token")
        assert missing is not None
        assert missing.status == 401
        assert wrong is not None
        assert wrong.status == 403
    assert not pid_gone(started["pid"])


def test_daemon_binds_loopback_only(fleet: Fleet) -> None:
    """The control plane listens on 127.0.0.1 and nothing else."""
    started = fleet.start()
    listens = [
        c
        for c in psutil.Process(started["pid"]).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    ]
    assert [(c.laddr.ip, c.laddr.port) for c in listens] == [("127.0.0.1", started["port"])]


def test_32_concurrent_starts_leave_exactly_one_daemon(fleet: Fleet) -> None:
    """32 simultaneous starts: one daemon process, and all 32 report the same url and pid."""
    env = {**fleet.env, "TENURE_LEASE_TTL": "15", "TENURE_HEARTBEAT": "5"}
    argv = [sys.executable, "-m", "tenure", "sync", "start", "--json"]
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(32)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    fleet.registry.track_root(fleet.root)
    assert [p.returncode for p in procs] == [0] * 32, [o[1][-300:] for o in outs if o[1]]
    docs = [json.loads(o[0]) for o in outs]
    assert len({(d["url"], d["pid"]) for d in docs}) == 1
    assert sorted(d["action"] for d in docs).count("started") == 1
    assert fleet.daemon_pids() == [docs[0]["pid"]]
    # Processes the race spawned: every daemon logs under its pid, even one that stands down
    # because the lease is taken; the losers spawned none (they reuse, or wait on the lock).
    logged = set(re.findall(r" tenure\[(\d+)\] ", log_path(fleet.root, "sync").read_text()))
    assert logged == {str(docs[0]["pid"])}


def test_a_start_asks_health_twice_and_a_reuse_once(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold start's round trips to the daemon: one health request once the record names it,
    one answered when its startup reaper finished (no polling); a reuse asks once."""
    from tenure.core.families import SYNC
    from tenure.requester import start as starting
    from tenure.version import current_version

    for key, value in fleet.env.items():
        monkeypatch.setenv(key, value)
    asked: list[str] = []
    real = starting.health

    def counted(port: int, timeout: float = 0.5, path: str = "/api/health") -> Any:
        asked.append(path)
        return real(port, timeout, path)  # the real request, only counted

    monkeypatch.setattr(starting, "health", counted)
    try:
        version = current_version()  # what the spawned daemon reports
        first = starting.start(SYNC, fleet.root, version)
        assert first.action == "started"
        assert first.startup_reaper is not None
        assert first.startup_reaper["state"] == "done"
        assert asked == ["/api/health", AFTER_REAPER_PATH]
        asked.clear()
        again = starting.start(SYNC, fleet.root, version)
        assert (again.action, again.pid) == ("reused", first.pid)
        assert asked == ["/api/health"]
    finally:
        fleet.registry.track_root(fleet.root)  # whatever it started, stopped by pid


def test_newer_version_supersedes_and_older_or_equal_reuses(fleet: Fleet) -> None:
    """1.1 replaces 1.0 (epoch + 1, tombstone `superseded`); 1.0, 1.1 and 1.1rc1 then reuse
    1.1; a version outside PEP 440 is refused at the door (exit 2) and changes nothing."""
    old = fleet.start(version="1.0")
    new = fleet.start(version="1.1")
    assert new["action"] == "superseded"
    assert new["epoch"] == old["epoch"] + 1
    assert new["pid"] != old["pid"]
    assert wait_for(lambda: pid_gone(old["pid"]), what="old pid gone")
    stones = read_tombstones(fleet.root)
    assert [(s["pid"], s["reason"], s["version"]) for s in stones] == [
        (old["pid"], "superseded", "1.0")
    ]
    for version in ("1.0", "1.1", "1.1rc1"):
        again = fleet.start(version=version)
        assert (again["action"], again["pid"], again["version"]) == ("reused", new["pid"], "1.1")
    refused = fleet.cli("sync", "start", "--json", version="not-a-version", check=False)
    assert refused.returncode == 2
    assert "PEP 440" in json.loads(refused.stdout)["message"]
    assert fleet.daemon_pids() == [new["pid"]]


def test_idle_retirement_waits_for_in_flight_work(fleet: Fleet) -> None:
    """With a small idle constant the daemon retires, but only after its in-flight work ended."""
    started = fleet.start(TENURE_IDLE_SECONDS="1")
    token = read_token(fleet.root, "sync", started["pid"])
    result: list[object] = []
    worker = threading.Thread(
        target=lambda: result.append(
            request(
                started["port"],
                "POST",
                "/api/work",
                token=token,
                payload={"seconds": 3},
                timeout=10,
            )
        )
    )
    worker.start()
    wait_for(lambda: (h := health(started["port"])) and h["in_flight"] == 1, what="work in flight")
    store = LeaseStore(fleet.root, "sync")
    first = store.read()
    assert isinstance(first, LeaseRecord)

    def renewed_past_idle() -> bool:
        # Each heartbeat (0.5 s here) checks idleness; 3 renewals after the work began span
        # more than the 1 s idle constant, so an idle check has run with the work in flight.
        rec = store.read()
        return isinstance(rec, LeaseRecord) and rec.seq >= first.seq + 3

    wait_for(renewed_past_idle, what="heartbeats past the idle constant")
    doc = health(started["port"])
    assert doc is not None
    assert (doc["role"], doc["in_flight"]) == ("holder", 1)  # busy, so not retiring
    worker.join(30)
    reply = result[0]
    assert reply is not None
    assert reply.status == 200
    wait_for(lambda: pid_gone(started["pid"]), what="idle retirement")
    assert read_tombstones(fleet.root)[-1]["reason"] == "idle"


def test_removing_the_root_retires_the_daemon(fleet: Fleet) -> None:
    """Deleting the root makes the daemon leave on its own."""
    started = fleet.start()
    remove_tree(fleet.root)
    wait_for(lambda: pid_gone(started["pid"]), timeout=10, what="daemon retires after root removal")


def test_sigkilled_holder_is_taken_over_at_once(fleet: Fleet) -> None:
    """SIGKILL the holder: the next start takes over immediately with epoch + 1."""
    first = fleet.start()
    psutil.Process(first["pid"]).kill()
    wait_for(lambda: pid_gone(first["pid"]), what="killed")
    proc = fleet.cli("sync", "start", "--json")
    second = json.loads(proc.stdout)
    assert second["action"] == "started"
    assert second["epoch"] == first["epoch"] + 1
    # A dead holder is taken at once: the start never waits for the lease to expire.
    assert "waiting" not in proc.stderr
    # How fast that is lives in benchmarks/run.py (sigkill takeover), not here.


def test_wedged_holder_is_replaced_and_retires_on_resume(fleet: Fleet) -> None:
    """SIGSTOP the holder: start waits for expiry, takes over; after SIGCONT the old one leaves."""
    first = fleet.start()
    proc = psutil.Process(first["pid"])
    proc.send_signal(signal.SIGSTOP)
    try:
        result = fleet.cli("sync", "start", "--json")
        second = json.loads(result.stdout)
        assert "not answering" in result.stderr
        assert second["epoch"] == first["epoch"] + 1
        assert second["pid"] != first["pid"]
        record = LeaseStore(fleet.root, "sync").read()
        assert isinstance(record, LeaseRecord)
        assert record.holder.pid == second["pid"]
    finally:
        proc.send_signal(signal.SIGCONT)
    wait_for(lambda: pid_gone(first["pid"]), timeout=10, what="resumed holder retires")
    stone = [s for s in read_tombstones(fleet.root) if s["pid"] == first["pid"]]
    assert [s["reason"] for s in stone] in (["lease_expired"], ["lease_lost"])
    record = LeaseStore(fleet.root, "sync").read()
    assert isinstance(record, LeaseRecord)
    assert record.holder.pid == second["pid"]
    assert health(second["port"])["role"] == "holder"  # type: ignore[index]


def test_families_never_affect_each_other(fleet: Fleet) -> None:
    """Starting, superseding and stopping sync leaves the dashboard daemon untouched."""
    dash = fleet.start("dashboard", version="1.0")
    fleet.start("sync", version="1.0")
    fleet.start("sync", version="2.0")
    fleet.cli("sync", "stop")
    assert fleet.daemon_pids("dashboard") == [dash["pid"]]
    again = fleet.start("dashboard", version="1.0")
    assert (again["action"], again["pid"]) == ("reused", dash["pid"])


def test_start_failure_reports_the_log_tail(fleet: Fleet) -> None:
    """When no port of the range is free the start fails with exit 1 and the daemon's own words."""
    blocker = spawn_other(fleet.registry, "raw_tcp", BLOCK.sync[0] + 1)
    proc = fleet.cli(
        "sync", "start", check=False, TENURE_SYNC_PORTS=f"{BLOCK.sync[0] + 1}-{BLOCK.sync[0] + 1}"
    )
    assert proc.returncode == 1
    assert "exited with code 4" in proc.stderr
    assert "no free port" in proc.stderr  # the log tail, quoted from the daemon
    assert blocker.poll() is None
    assert fleet.daemon_pids() == []


# --- everyday commands (issue 13) -----------------------------------------------------------


def test_ls_lists_every_family_with_its_lease_and_other_listeners(fleet: Fleet) -> None:
    """Built-in families and any other family with a record; listeners counted by class."""
    started = fleet.start()
    blocker = spawn_other(fleet.registry, "raw_tcp", BLOCK.sync[0] + 3)
    custom = fleet.root / "leases" / "indexer.json"
    custom.write_bytes(
        (fleet.root / "leases" / "sync.json").read_bytes().replace(b'"sync"', b'"indexer"')
    )
    doc = json.loads(fleet.cli("ls", "--json").stdout)
    families = {f["family"]: f for f in doc["families"]}
    assert list(families) == ["sync", "dashboard", "indexer"]
    sync = families["sync"]
    assert (sync["state"], sync["holder_pid"], sync["port"]) == (
        "held",
        started["pid"],
        started["port"],
    )
    assert sync["other_listeners"] == {"never_touch": 1}
    assert sync["doctor_says"] == "ok"
    assert families["dashboard"]["state"] == "absent"
    assert families["indexer"]["other_listeners"] is None  # no port range known
    human = fleet.cli("ls").stdout.splitlines()
    assert human[1].split()[:4] == ["sync", "held", "pid", str(started["pid"])]
    assert blocker.poll() is None


def test_restart_is_graceful_and_raises_the_epoch(fleet: Fleet) -> None:
    """restart = stop (released, tombstone) then start: a new pid at epoch + 1."""
    first = fleet.start()
    again = json.loads(fleet.cli("sync", "restart", "--json").stdout)
    assert again["action"] == "restarted"
    assert again["epoch"] == first["epoch"] + 1
    assert again["pid"] != first["pid"]
    assert pid_gone(first["pid"])
    assert [s["reason"] for s in read_tombstones(fleet.root) if s["pid"] == first["pid"]] == [
        "shutdown"
    ]


def test_logs_shows_the_last_lines_across_rotation_and_follows(fleet: Fleet) -> None:
    """`tenure logs sync -n N` reads the rotated file too; -f prints lines as they come."""
    logs = fleet.root / "logs"
    logs.mkdir(mode=0o700)
    (logs / "sync.log.1").write_text("old 1\nold 2\n")
    (logs / "sync.log").write_text("new 1\n")
    assert fleet.cli("logs", "sync", "-n", "2").stdout.splitlines() == ["old 2", "new 1"]
    follower = popen_interruptible(
        [sys.executable, "-m", "tenure", "logs", "sync", "-n", "0", "-f"],
        env=fleet.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    fleet.registry.popens.append(follower)  # type: ignore[arg-type]
    fleet.registry.track(follower.pid)
    assert follower.stdout is not None
    assert follower.stderr is not None
    assert follower.stderr.readline().startswith("following ")  # it has taken its position
    with open(logs / "sync.log", "a") as fh:
        fh.write("appended\n")
    assert follower.stdout.readline() == "appended\n"
    follower.send_signal(signal.SIGINT)
    assert follower.wait(30) == 130


def test_watch_frames_show_renewals_supersession_and_retirement(fleet: Fleet) -> None:
    """Frames of `doctor --watch`, rendered to a recorded console, report what happened:
    renewals counted on one line, a new holder and a retirement as events."""
    from rich.console import Console

    from tenure.cli.watch import Watch
    from tenure.hygiene.doctor import gather

    legacy = Path(fleet.env["SPEC_KITTY_HOME"])
    old = fleet.start(version="1.0")
    console = Console(record=True, width=100, file=open(os.devnull, "w"))  # noqa: SIM115
    watch = Watch(console)
    with_env = {"TENURE_SYNC_PORTS": BLOCK.sync_env, "TENURE_DASHBOARD_PORTS": BLOCK.dashboard_env}
    os.environ.update(with_env)
    try:
        console.print(watch.frame(gather(fleet.root, legacy)))
        first = LeaseStore(fleet.root, "sync").read()
        assert isinstance(first, LeaseRecord)
        wait_for(
            lambda: (
                (r := LeaseStore(fleet.root, "sync").read()) is not None
                and isinstance(r, LeaseRecord)
                and r.seq > first.seq
            ),
            what="a renewal",
        )
        console.print(watch.frame(gather(fleet.root, legacy)))
        new = fleet.start(version="2.0")
        console.print(watch.frame(gather(fleet.root, legacy)))
    finally:
        for key in with_env:
            os.environ.pop(key, None)
    text = console.export_text()
    assert "renewals since the watch began: sync x" in text
    assert "renewed by" not in text
    assert f"sync: new holder pid {new['pid']} (epoch {new['epoch']}, version 2.0)" in text
    assert f"sync: pid {old['pid']} (1.0) retired: superseded" in text


def test_cli_conventions(fleet: Fleet) -> None:
    """-h, -V, bare `tenure` prints help with exit 0, examples in help, doctor alias, --quiet."""
    bare = fleet.cli()
    assert "Usage" in bare.stdout
    assert fleet.cli("-V").stdout.strip() == f"tenure {fleet.cli('--version').stdout.split()[1]}"
    assert fleet.cli("-V").stdout.startswith("tenure ")
    assert "Examples" in fleet.cli("sync", "start", "-h").stdout
    help_lines = bare.stdout.splitlines()
    start = next(i for i, line in enumerate(help_lines) if line == "Commands:")
    end = next(i for i in range(start, len(help_lines)) if not help_lines[i].strip())
    commands = [
        line.split()[0]
        for line in help_lines[start + 1 : end]
        if line.startswith("  ") and line[2:3] != " "
    ]
    assert commands[:9] == [
        "sync",
        "dashboard",
        "ls",
        "status",
        "logs",
        "start",
        "stop",
        "restart",
        "doctor",
    ]
    assert "tenure auth doctor" in fleet.cli("doctor", "-h").stdout
    assert "--install-completion" in bare.stdout
    loud = fleet.cli("sync", "start")
    assert "log:" in loud.stderr
    quiet = fleet.cli("sync", "restart", "-q")
    assert quiet.stderr == ""
    status = json.loads(fleet.cli("sync", "status", "--json").stdout)
    assert status["state"] == "running"
    assert "action" not in status
