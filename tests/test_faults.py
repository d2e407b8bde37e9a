"""Faults and hostile neighbours: tenure keeps governing, never hangs, never bricks itself.

Each test reproduces one way a clumsy user or another local user broke an earlier version
(issue 11) and checks the behaviour the protocol now promises. Real daemons, real files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tenure.adapters.store import LeaseStore, log_path
from tenure.adapters.tokens import token_path
from tenure.adapters.tombstones import read_tombstones, tombstone_path
from tenure.core.record import LeaseRecord, Unreadable
from tenure.core.timing import Timing
from tenure.errors import ConfigError
from tenure.legacy.simulated import spawn_other
from tenure.testing import Fleet, ProcessRegistry, make_fleet, pid_gone
from tests.conftest import block, block_fleet, remove_tree, wait_for

BLOCK = block(__name__)
NOBODY = 65534
AS_ROOT = os.geteuid() == 0
SYSTEM_PY = "/usr/bin/python3"


@pytest.fixture
def fleet(tmp_path: Path, proc_registry: ProcessRegistry) -> Fleet:
    return block_fleet(BLOCK, tmp_path, proc_registry)


def record_of(fleet: Fleet) -> LeaseRecord:
    rec = LeaseStore(fleet.root, "sync").read()
    assert isinstance(rec, LeaseRecord), rec
    return rec


def renewed_n_times(fleet: Fleet, since: LeaseRecord, n: int) -> bool:
    rec = LeaseStore(fleet.root, "sync").read()
    return isinstance(rec, LeaseRecord) and rec.epoch == since.epoch and rec.seq >= since.seq + n


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The CLI's error: one line, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


# --- 1. descriptor exhaustion by another user ----------------------------------------------

HOG = r"""
import socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(count):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    held.append(s)
print("ready", len(held), flush=True)
time.sleep(3600)
"""


@pytest.mark.skipif(
    shutil.which("prlimit") is None, reason="needs prlimit (util-linux) to set descriptor limits"
)
def test_idle_connections_of_another_user_cannot_starve_the_heartbeat(
    fleet: Fleet, proc_registry: ProcessRegistry
) -> None:
    """1000 idle connections at a 1024-descriptor limit: the holder stays and keeps renewing."""
    env = {**fleet.env}
    started = json.loads(
        subprocess.run(
            [
                "prlimit",
                "--nofile=1024:1024",
                sys.executable,
                "-m",
                "tenure",
                "sync",
                "start",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    fleet.registry.track_root(fleet.root)
    assert psutil.Process(started["pid"]).rlimit(psutil.RLIMIT_NOFILE) == (1024, 1024)
    hog_argv = ["prlimit", "--nofile=4096:4096"]
    if AS_ROOT and shutil.which("setpriv"):
        hog_argv += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    hog = proc_registry.spawn(
        [
            *hog_argv,
            SYSTEM_PY if AS_ROOT else sys.executable,
            "-c",
            HOG,
            str(started["port"]),
            "1000",
        ],
        stdout=subprocess.PIPE,
        cwd="/",
    )
    assert hog.stdout is not None
    assert hog.stdout.readline().startswith(b"ready 1000")
    before = record_of(fleet)
    wait_for(lambda: renewed_n_times(fleet, before, 4), what="renewals under 1000 idle connections")
    daemon = psutil.Process(started["pid"])
    assert daemon.num_fds() < 200  # connections are bounded, not one descriptor each
    assert record_of(fleet).holder.pid == started["pid"]
    hog.kill()
    hog.wait(30)
    # Once the neighbour is gone the control plane answers again.
    status = fleet.cli("sync", "status", "--json")
    assert json.loads(status.stdout)["state"] == "running"


# --- 2. a full disk -------------------------------------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, unmounted (lazily) at the end."""
    if not AS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=False
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> None:
    """Write until the filesystem says ENOSPC."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_full_disk_daemon_leaves_in_bounded_time_and_the_next_start_succeeds(
    tiny_fs: Path, proc_registry: ProcessRegistry
) -> None:
    """With the root's disk full the holder exits (no zombie); after space returns one daemon."""
    fleet = make_fleet(
        tiny_fs / "root",
        proc_registry,
        TENURE_SYNC_PORTS=BLOCK.sync_env,
        TENURE_DASHBOARD_PORTS=BLOCK.dashboard_env,
    )
    first = fleet.start()
    filler = tiny_fs / "filler"
    fill(filler)
    wait_for(lambda: pid_gone(first["pid"]), what="the holder to leave once it cannot renew")
    log = log_path(fleet.root, "sync").read_bytes()
    assert b"will retry" in log  # it retried the renewal before giving up
    filler.unlink()
    second = fleet.start()
    assert second["action"] == "started"
    assert fleet.daemon_pids() == [second["pid"]]
    assert not [p.name for p in (fleet.root / "leases").iterdir() if p.name.endswith(".tmp")]


# --- 3. unreadable records and oversized values ---------------------------------------------


def test_start_takes_over_an_unreadable_record_after_one_ttl(fleet: Fleet) -> None:
    """Garbage in the record: start says why it waits, then takes it over (not 3 failed tries)."""
    leases = fleet.root / "leases"
    leases.mkdir(parents=True, mode=0o700)
    (leases / "sync.json").write_bytes(b"\x00garbage that is not a record")
    proc = fleet.cli("sync", "start", "--json")
    assert "unreadable" in proc.stderr
    started = json.loads(proc.stdout)
    assert started["action"] == "started"
    assert record_of(fleet).holder.pid == started["pid"]


def test_an_oversized_version_is_refused_before_anything_is_written(fleet: Fleet) -> None:
    """A 70,000-character TENURE_VERSION stops start with one line; later starts still work."""
    proc = fleet.cli("sync", "start", check=False, TENURE_VERSION="9" * 70_000)
    assert proc.returncode == 2
    assert "TENURE_VERSION" in one_line_error(proc)
    assert LeaseStore(fleet.root, "sync").read() is None
    assert fleet.start(version="1.0")["action"] == "started"


# --- 4. FIFOs in the root ---------------------------------------------------------------------


def test_fifos_in_the_root_never_hang_a_command(fleet: Fleet) -> None:
    """A FIFO as record, epoch file, token or tombstone log: every command answers."""
    first = fleet.start()
    leases = fleet.root / "leases"
    stone_fifo = tombstone_path(fleet.root)
    os.mkfifo(stone_fifo)
    token = token_path(fleet.root, "sync", first["pid"])
    token.unlink()
    os.mkfifo(token)
    (leases / "sync.epoch").unlink(missing_ok=True)
    os.mkfifo(leases / "sync.epoch")
    doctor = fleet.cli("auth", "doctor", "--json", check=False)  # a hang would time out
    assert doctor.returncode in (0, 1), doctor.stderr
    stop = fleet.cli("sync", "stop", "--json", check=False)
    assert "Traceback" not in stop.stderr
    fleet.registry.stop_all()
    (leases / "sync.json").unlink(missing_ok=True)
    os.mkfifo(leases / "sync.json")
    status = fleet.cli("sync", "status", "--json", check=False)
    assert status.returncode == 1
    assert json.loads(status.stdout)["state"] == "absent"
    doc = json.loads(fleet.cli("auth", "doctor", "--json", check=False).stdout)
    sync_lease = next(lease for lease in doc["leases"] if lease["family"] == "sync")
    assert sync_lease["state"] == "unreadable"
    assert "not a regular file" in sync_lease["unreadable_reason"]


# --- 5. root checks on every command --------------------------------------------------------


def test_a_world_writable_root_is_refused_by_status_and_stop_and_its_token_unused(
    fleet: Fleet,
) -> None:
    """chmod 0777 on a live root: status and stop refuse in one line; the daemon lives on."""
    started = fleet.start()
    os.chmod(fleet.root, 0o777)
    try:
        for cmd in ("status", "stop"):
            proc = fleet.cli("sync", cmd, check=False)
            assert proc.returncode == 1
            line = one_line_error(proc)
            assert str(fleet.root) in line
            assert "world-writable" in line
        assert not pid_gone(started["pid"])
    finally:
        os.chmod(fleet.root, 0o700)


@pytest.mark.parametrize("sub", ["leases", "tokens", "logs"])
def test_symlinked_subdirectories_are_refused(fleet: Fleet, tmp_path: Path, sub: str) -> None:
    """A root whose leases/, tokens/ or logs/ is a symlink is never written through."""
    elsewhere = tmp_path / f"elsewhere-{sub}"
    elsewhere.mkdir(mode=0o700)
    (fleet.root / sub).symlink_to(elsewhere)
    proc = fleet.cli("sync", "start", check=False)
    assert proc.returncode == 1
    assert "symlink" in one_line_error(proc)
    assert list(elsewhere.iterdir()) == []
    assert fleet.daemon_pids() == []


# --- 6. bad values in files -----------------------------------------------------------------


def test_a_negative_pid_in_the_record_reads_as_unreadable_everywhere(fleet: Fleet) -> None:
    """holder.pid = -1: status and doctor report it, neither crashes."""
    fleet.start()
    fleet.registry.stop_all()
    path = LeaseStore(fleet.root, "sync").record_path
    doc = json.loads(path.read_bytes())
    doc["holder"]["pid"] = -1
    path.write_text(json.dumps(doc))
    assert isinstance(LeaseStore(fleet.root, "sync").read(), Unreadable)
    status = fleet.cli("sync", "status", "--json", check=False)
    assert "Traceback" not in status.stderr
    assert json.loads(status.stdout)["state"] == "absent"
    doctor = fleet.cli("auth", "doctor", check=False)
    assert doctor.returncode in (0, 1), doctor.stderr
    assert "Traceback" not in doctor.stderr


@pytest.mark.parametrize("at", ["1e300", "NaN", "-Infinity", '"yesterday"'])
def test_hostile_tombstones_are_skipped_by_readers(fleet: Fleet, at: str) -> None:
    """A tombstone whose time is huge, NaN or a string is skipped; the doctor still renders."""
    fleet.root.mkdir(exist_ok=True)
    good = {"family": "sync", "pid": 42, "version": "1.0", "epoch": 1, "reason": "idle", "at": 1.0}
    tombstone_path(fleet.root).write_text(
        json.dumps(good) + "\n" + json.dumps(good)[:-1].replace('"at": 1.0', f'"at": {at}') + "}\n"
    )
    assert read_tombstones(fleet.root) == [good]
    for args in (("auth", "doctor"), ("auth", "doctor", "--json")):
        proc = fleet.cli(*args, check=False)
        assert proc.returncode in (0, 1), proc.stderr
        assert "Traceback" not in proc.stderr


# --- 7. timing configuration ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "name"),
    [
        pytest.param({"TENURE_LEASE_TTL": "abc"}, "TENURE_LEASE_TTL", id="ttl-not-a-number"),
        pytest.param({"TENURE_LEASE_TTL": "inf"}, "TENURE_LEASE_TTL", id="ttl-infinite"),
        pytest.param({"TENURE_LEASE_TTL": "1e308"}, "TENURE_LEASE_TTL", id="ttl-huge"),
        pytest.param({"TENURE_LEASE_TTL": "0.001"}, "TENURE_LEASE_TTL", id="ttl-tiny"),
        pytest.param({"TENURE_HEARTBEAT": "2"}, "TENURE_HEARTBEAT", id="heartbeat-over-half-ttl"),
        pytest.param({"TENURE_IDLE_SECONDS": "-1"}, "TENURE_IDLE_SECONDS", id="idle-negative"),
        pytest.param({"TENURE_SYNC_PORTS": "abc"}, "TENURE_SYNC_PORTS", id="ports-garbage"),
    ],
)
def test_bad_timing_values_stop_start_with_one_line(
    fleet: Fleet, env: dict[str, str], name: str
) -> None:
    """A bad value is refused by start (exit 2) naming the variable; no daemon is spawned."""
    proc = fleet.cli("sync", "start", check=False, **env)
    assert proc.returncode == 2, proc.stderr
    assert name in one_line_error(proc)
    assert fleet.daemon_pids() == []


def test_timing_ranges_and_idle_zero_meaning_never() -> None:
    """TTL 1 s..1 day, heartbeat <= TTL/2, idle 0 turns idle retirement off."""
    assert Timing.from_env(env={"TENURE_IDLE_SECONDS": "0"}).idle_enabled is False
    assert Timing.from_env(env={"TENURE_LEASE_TTL": "9"}).heartbeat_s == 3.0
    for bad in (
        {"TENURE_LEASE_TTL": "86401"},
        {"TENURE_LEASE_TTL": "3", "TENURE_HEARTBEAT": "1.6"},
    ):
        with pytest.raises(ConfigError):
            Timing.from_env(env=bad)


# --- 8. a recreated root ----------------------------------------------------------------------


def test_a_holder_of_a_removed_root_writes_nothing_into_its_successor(fleet: Fleet) -> None:
    """rm -rf the root and start at once: the old holder fences itself and leaves no trace."""
    old = fleet.start()
    remove_tree(fleet.root)
    new = fleet.start()
    assert new["pid"] != old["pid"]
    wait_for(lambda: pid_gone(old["pid"]), what="the old holder to notice its root was replaced")
    assert [s for s in read_tombstones(fleet.root) if s["pid"] == old["pid"]] == []
    rec = record_of(fleet)
    assert rec.holder.pid == new["pid"]
    assert rec.root_id is not None
    assert rec.root_id == (fleet.root / "root.id").read_text().strip()


# --- 9. logs --------------------------------------------------------------------------------


def test_aborted_client_connections_log_one_line_each_and_no_traceback(fleet: Fleet) -> None:
    """Partial requests from clients cost a line each, never a traceback."""
    import socket

    started = fleet.start()
    log = log_path(fleet.root, "sync")
    size_before = log.stat().st_size
    for _ in range(50):
        with socket.create_connection(("127.0.0.1", started["port"]), timeout=5) as s:
            s.sendall(b"POST /api/work HTTP/1.1\r\nContent-Length: 10")
    big = json.dumps({"x": "y" * 10_000}).encode()
    with socket.create_connection(("127.0.0.1", started["port"]), timeout=5) as s:
        s.sendall(
            b"POST /api/retire HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(big)
        )
        reply = s.recv(4096)
    assert b" 413 " in reply.split(b"\r\n", 1)[0]
    wait_for(lambda: health_ok(started["port"]), what="the daemon still answering")
    grown = log.read_bytes()[size_before:]
    assert b"Traceback" not in grown
    assert grown.count(b"\n") <= 51


def health_ok(port: int) -> bool:
    from tenure.adapters.http import health

    doc = health(port)
    return doc is not None and doc.get("role") == "holder"


def test_the_daemon_log_rotates_at_its_size_cap(tmp_path: Path) -> None:
    """Past the cap the log moves to .1 and a fresh file takes over fd 1 and 2."""
    log = tmp_path / "logs" / "sync.log"
    log.parent.mkdir()
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from tenure.adapters.daemonlog import DaemonLog\n"
        f"path = Path({str(log)!r})\n"
        "fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)\n"
        "os.dup2(fd, 2); os.dup2(fd, 1)\n"
        "sink = DaemonLog(path, max_bytes=2000)\n"
        "for i in range(200):\n"
        "    sink.write(f'line {i} ' + 'x' * 40)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    rotated = log.with_name("sync.log.1")
    assert rotated.exists()
    assert log.stat().st_size <= 2000 + 200
    assert rotated.stat().st_size <= 2000 + 200
    assert b"line 199" in log.read_bytes()


# --- 10. a wedged holder --------------------------------------------------------------------


def test_a_stopped_holder_is_reported_honestly_and_stop_escalates(fleet: Fleet) -> None:
    """SIGSTOP the holder: status says not_answering with its expiry; stop ends it by identity."""
    started = fleet.start()
    proc = psutil.Process(started["pid"])
    proc.send_signal(signal.SIGSTOP)
    try:
        status = fleet.cli("sync", "status", "--json", check=False)
        assert status.returncode == 1
        doc: dict[str, Any] = json.loads(status.stdout)
        assert (doc["state"], doc["pid"], doc["port"]) == (
            "not_answering",
            started["pid"],
            started["port"],
        )
        assert doc["expires_in_s"] is not None
        human = fleet.cli("sync", "status", check=False)
        assert "does not answer" in human.stdout
        stop = fleet.cli("sync", "stop", "--json", check=False)
        assert stop.returncode == 0, stop.stderr
        assert "escalating" in stop.stderr
        assert json.loads(stop.stdout)["stopped"] is True
        assert pid_gone(started["pid"])
    finally:
        if not pid_gone(started["pid"]):
            proc.send_signal(signal.SIGCONT)


# --- one-line errors for unusable roots (issue 12, item 9) ----------------------------------


def _ro_mount(tmp_path: Path) -> Path:
    if not AS_ROOT:
        pytest.skip("mounting a read-only tmpfs needs root")
    mnt = tmp_path / "ro"
    mnt.mkdir(mode=0o700)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=700,ro", "tmpfs", str(mnt)], check=False
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    return mnt


@pytest.mark.parametrize(
    "case", ["under-proc", "read-only", "too-long", "start-lock-symlink", "log-symlink"]
)
def test_unusable_roots_fail_in_one_line_with_the_path_and_the_fix(
    fleet: Fleet, tmp_path: Path, case: str
) -> None:
    """No traceback: one `error:` line naming the path and how to fix it; nothing written."""
    victim = tmp_path / "victim"
    root = fleet.root
    mounted: Path | None = None
    if case == "under-proc":
        root = Path("/proc/nope/root")
    elif case == "read-only":
        root = mounted = _ro_mount(tmp_path)
    elif case == "too-long":
        root = tmp_path / ("x" * 300) / "root"
    elif case == "start-lock-symlink":
        (fleet.root / "leases").mkdir(mode=0o700)
        (fleet.root / "leases" / "sync.start.lock").symlink_to(victim)
    else:
        (fleet.root / "logs").mkdir(mode=0o700)
        (fleet.root / "logs" / "sync.log").symlink_to(victim)
    try:
        proc = fleet.cli("sync", "start", "--root", str(root), check=False)
    finally:
        if mounted is not None:
            subprocess.run(["umount", "-l", str(mounted)], check=False)
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "fix:" in line
    assert str(root)[:60] in line
    assert not victim.exists()
    assert fleet.daemon_pids() == []


def test_a_failed_start_quotes_only_this_attempts_log_lines(fleet: Fleet) -> None:
    """Older runs' lines in the log are not presented as this failure's cause."""
    logs = fleet.root / "logs"
    logs.mkdir(mode=0o700)
    (logs / "sync.log").write_text("Traceback (most recent call last):\nOldError: from last week\n")
    port = BLOCK.sync[0]
    spawn_other(fleet.registry, "raw_tcp", port)
    proc = fleet.cli("sync", "start", check=False, TENURE_SYNC_PORTS=f"{port}-{port}")
    assert proc.returncode == 1
    assert "no free port" in proc.stderr  # this attempt's own words
    assert "OldError" not in proc.stderr
