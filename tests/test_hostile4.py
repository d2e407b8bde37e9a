"""Hostile input, round four: a holder nobody can see, an interrupted takeover, a member that
changed its uid, a newer writer's record, built-in families held by `run`, a crowd of the
owner's own connections, a tiny descriptor limit, directories where files belong, and a dead
holder's port held by a stranger.

Staged for real: private pid namespaces (as root), uid 65534 through `setpriv`, `prlimit`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest

from tenure.adapters.ports import open_ports
from tenure.adapters.probe import listening_pids
from tenure.adapters.store import LeaseStore
from tenure.adapters.tombstones import read_tombstones
from tenure.core.record import LeaseState
from tenure.testing import ProcessRegistry
from tests.conftest import PY, block, linux_only, stop_outside_lock, wait_for
from tests.test_hostile import NOBODY, SYSTEM_PY, as_another_user
from tests.test_identity import NS_INIT, env_for, held_when, in_pid_ns, needs_pid_ns, record

BLOCK = block(__name__)
WEB = f"{BLOCK.extra[0]}-{BLOCK.extra[1]}" if BLOCK.extra else ""


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "tenure", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def doctor_rows(doc: dict[str, Any], port: int) -> list[dict[str, Any]]:
    return [c for c in doc["candidates"] if c["port"] == port]


# --- 1. a foreign holder that does not answer ------------------------------------------------


@needs_pid_ns
@linux_only("pid namespaces and /proc/<pid>/ns/pid")
@pytest.mark.parametrize("silenced", ["sigstop", "busy-slots"])
def test_a_silent_holder_in_another_pid_namespace_is_never_reset(
    tmp_path: Path, proc_registry: ProcessRegistry, silenced: str
) -> None:
    """A sync holder in a child pid namespace (shared root and network) that stops answering —
    SIGSTOPped, or its slots kept busy by 40 silent connections — is never `safe_auto`, however
    long past the retirement grace, and `--reset --force` leaves it alive (lease.md#foreign)."""
    root = (tmp_path / "root").resolve()
    env = env_for(root, TENURE_RETIRE_GRACE="0")
    env.pop("TENURE_TEST_SIGNAL_GUARD", None)  # the rule, not the test kit, must protect it
    daemon = [PY, "-m", "tenure.daemon.main", f"--tenure-root={root}", "--tenure-family=sync"]
    namespace = proc_registry.spawn(in_pid_ns([PY, "-c", NS_INIT, *daemon]), env=env)
    held = held_when(root, "sync", lambda r: r.holder.port is not None and r.holder.control)
    assert held.holder.pid < 10  # its own namespace's numbering
    port = held.holder.port
    assert port is not None
    pid = wait_for(lambda: listening_pids().get(port), what="the holder's listener")
    assert isinstance(pid, int)
    assert pid != held.holder.pid
    crowd: list[socket.socket] = []
    try:
        if silenced == "sigstop":
            stop_outside_lock(pid, LeaseStore(root, "sync").lock_path)
        else:
            crowd = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        doctor = cli(env, "auth", "doctor", "--reset", "--force", "--json")
        doc = json.loads(doctor.stdout)
        (row,) = doctor_rows(doc, port)
        assert row["cleanup_class"] == "never_touch", row
        assert row["skip_reason"] == "lease_holder"
        assert doc["reset_result"]["swept"] == []
        assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    finally:
        for conn in crowd:
            conn.close()
        if silenced == "sigstop":
            os.kill(pid, signal.SIGCONT)
    assert record(root, "sync").holder.nonce == held.holder.nonce
    namespace.kill()  # unshare ignores SIGTERM; its child's parent-death signal ends the rest
    namespace.wait(30)
    wait_for(lambda: not open_ports([port]), what="the namespace's listener to close")


# --- 5. a built-in family held by `tenure run` ------------------------------------------------

SERVE = "import http.server, sys; http.server.test(port=int(sys.argv[1]), bind='127.0.0.1')"


def test_a_built_in_family_held_by_run_is_read_reused_and_stopped_by_its_record(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`tenure run --family sync`: `sync status` says running (no HTTP to the governed
    server), `sync start` reuses it at once (no reference daemon spawned), and `tenure stop
    sync` ends it by the record's identity (the wrapper carries no `--tenure-root=`)."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    argv = [PY, "-m", "tenure", "run", "--family", "sync", "--version", "1.0"]
    argv += ["--ports", BLOCK.sync_env, "--", PY, "-c", SERVE, "{port}"]
    wrapper = proc_registry.spawn(argv, env=env)
    held = held_when(root, "sync", lambda r: r.child is not None)
    assert held.holder.pid == wrapper.pid
    status = cli(env, "sync", "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["state"] == "running"
    started = cli(env, "sync", "start", "--json")
    assert started.returncode == 0, started.stderr
    doc = json.loads(started.stdout)
    assert (doc["action"], doc["pid"]) == ("reused", wrapper.pid)
    assert (
        not (root / "logs" / "sync.log").exists()
        or "tenure.daemon" not in (root / "logs" / "sync.log").read_text()
    )
    stopped = cli(env, "stop", "sync", "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["stopped"] is True
    assert wrapper.wait(30) == 0
    assert record(root, "sync").state is LeaseState.RELEASED


# --- 7. a Content-Length only str.isdigit believes ----------------------------------------------


def test_a_superscript_content_length_is_a_bad_request(tmp_path: Path) -> None:
    """`Content-Length: ²` is answered 400, with no error in the daemon's log."""
    from tenure.adapters.server import content_length

    assert content_length("\u00b2") is None
    assert content_length(" 12 ") == 12
    assert content_length("1" * 12) is None


def test_the_daemon_answers_a_superscript_content_length_with_400(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    started = json.loads(cli(env, "sync", "start", "--json").stdout)
    proc_registry.track(started["pid"])
    with socket.create_connection(("127.0.0.1", started["port"]), timeout=5) as s:
        s.sendall(
            "POST /api/retire HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \u00b2\r\n\r\n".encode(
                "latin-1"
            )
        )
        reply = s.recv(4096)
    assert reply.split(b"\r\n", 1)[0].split()[1] == b"400"
    assert "ValueError" not in (root / "logs" / "sync.log").read_text()
    assert cli(env, "sync", "stop").returncode == 0


# --- 10. a directory where a lease file belongs --------------------------------------------------


@pytest.mark.parametrize("where", ["record", "floor"])
def test_a_directory_in_a_lease_files_place_fails_at_once_with_a_fix(
    tmp_path: Path, where: str
) -> None:
    """No TTL waited out, no epoch floor moved, a one-line error with the command that fixes
    it; following that command, start works."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    leases = root / "leases"
    leases.mkdir(parents=True)
    os.chmod(root, 0o700)
    store = LeaseStore(root, "sync")
    target = store.record_path if where == "record" else store.floor_path
    target.mkdir()
    failed = cli(env, "sync", "start", timeout=30)
    assert failed.returncode == 1
    assert "Errno" not in failed.stderr
    assert "a directory stands where a lease file belongs" in failed.stderr
    fix = failed.stderr.split("fix: ", 1)[1].split("  (")[0]
    assert fix == f"mv {target} {target}.bak"
    if where == "record":
        assert not store.floor_path.exists()
    subprocess.run(fix, shell=True, check=True)
    started = cli(env, "sync", "start", "--json")
    assert started.returncode == 0, started.stderr
    assert cli(env, "sync", "stop").returncode == 0


# --- 11. a dead holder's port held by a stranger -------------------------------------------------


def test_a_dead_run_holders_port_held_by_an_unknown_listener_is_a_finding(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """The documented escape — a child that scrubbed its environment and daemonized before its
    wrapper was SIGKILLed — keeps the port: the doctor says so, naming the pid."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    escape = f'env -i setsid {PY} -c "{SERVE}" {{port}} >/dev/null 2>&1 & exec sleep 600'
    argv = [PY, "-m", "tenure", "run", "--family", "web", "--version", "1.0", "--ports", WEB]
    wrapper = proc_registry.spawn([*argv, "--", "sh", "-c", escape], env=env)
    held = held_when(root, "web", lambda r: r.child is not None and r.holder.port is not None)
    port = held.holder.port
    assert port is not None
    server = wait_for(lambda: listening_pids().get(port), what="the escaped server to listen")
    assert isinstance(server, int)
    try:
        wrapper.kill()
        wrapper.wait(30)
        doctor = cli(env, "auth", "doctor", "--json")
        findings = {f["id"]: f for f in json.loads(doctor.stdout)["findings"]}
        found = findings.get("holder_port_held:web")
        assert found is not None, findings
        assert f"port {port} is still held by pid {server}" in found["summary"]
        assert found["severity"] == "warning"
    finally:
        escaped = psutil.Process(server)
        assert SERVE in escaped.cmdline()  # the process this test caused, by pid
        escaped.kill()
        escaped.wait(30)


# --- 6. a crowd of the owner's own silent connections ---------------------------------------------

SILENT = textwrap.dedent(
    """
    import selectors, socket, sys, time
    port, n = int(sys.argv[1]), int(sys.argv[2])
    sel = selectors.DefaultSelector()
    def dial():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            return
        sel.register(s, selectors.EVENT_READ)
    for _ in range(n):
        dial()
    print("silent", flush=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for key, _ in sel.select(1.0):
            sel.unregister(key.fileobj)
            key.fileobj.close()
            dial()  # dropped: come back at once, as a leaking client pool would
        while len(sel.get_map()) < n:
            dial()
    """
)


def test_the_owners_silent_connections_cannot_keep_its_cli_out(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """40 silent connections of the daemon's own user, reconnecting whenever dropped: `sync
    status` still finds the daemon running, and `sync start` reuses it without spawning."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    started = json.loads(cli(env, "sync", "start", "--json").stdout)
    proc_registry.track(started["pid"])
    crowd = proc_registry.spawn(
        [PY, "-c", SILENT, str(started["port"]), "40"], stdout=subprocess.PIPE
    )
    assert crowd.stdout is not None
    assert crowd.stdout.readline().startswith(b"silent")
    daemon = psutil.Process(started["pid"])
    wait_for(
        # The crowd is at it (it displaces itself as it redials, so the count moves).
        lambda: sum(c.status == psutil.CONN_ESTABLISHED for c in daemon.net_connections()) >= 8,
        what="the crowd to hold slots",
    )
    try:
        for _ in range(3):
            status = cli(env, "sync", "status", "--json")
            assert json.loads(status.stdout)["state"] == "running", status.stdout
        again = cli(env, "sync", "start", "--json")
        assert json.loads(again.stdout)["action"] == "reused", again.stderr
        assert json.loads(again.stdout)["pid"] == started["pid"]
    finally:
        crowd.kill()
        crowd.wait(30)
    assert cli(env, "sync", "stop").returncode == 0


# --- 9. a tiny descriptor limit under another user's connections -------------------------------


@as_another_user
@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
@pytest.mark.parametrize("nofile", [12, 20])
def test_a_daemon_with_few_descriptors_keeps_renewing_under_another_users_crowd(
    tmp_path: Path, proc_registry: ProcessRegistry, nofile: int
) -> None:
    """RLIMIT_NOFILE 12 or 20 and 16 connections from uid 65534: the connection limit is sized
    from the real limit, so renewals never hit EMFILE and the daemon keeps its lease."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    limit = ["prlimit", f"--nofile={nofile}:{nofile}"]
    try:
        limited = subprocess.run(
            [*limit, PY, "-m", "tenure", "sync", "start", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        proc_registry.track_root(root)  # stopped by the registry, whatever start said
    assert limited.returncode == 0, limited.stderr
    started = json.loads(limited.stdout)
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    crowd = proc_registry.spawn(
        [*as_nobody, SYSTEM_PY, "-c", SILENT, str(started["port"]), "16"],
        stdout=subprocess.PIPE,
        cwd="/",
    )
    assert crowd.stdout is not None
    assert crowd.stdout.readline().startswith(b"silent")
    try:
        first = record(root, "sync")
        # Six heartbeats (TTL 3 s, heartbeat 0.5 s) renewed under the crowd.
        wait_for(lambda: record(root, "sync").seq >= first.seq + 6, what="six renewals")
        now = record(root, "sync")
        assert (now.state, now.holder.pid, now.epoch) == (
            LeaseState.HELD,
            started["pid"],
            first.epoch,
        )
    finally:
        crowd.kill()
        crowd.wait(30)
    log = (root / "logs" / "sync.log").read_text()
    assert "Too many open files" not in log
    assert cli(env, "sync", "stop").returncode == 0


# --- 2. an interrupted takeover -----------------------------------------------------------------

STUBBORN = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
)


def process_with_argv(argv: list[str]) -> int | None:
    """The pid of the one process whose argv is exactly `argv` (a unique marker in it)."""
    found = [p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == argv]
    return found[0] if len(found) == 1 else None


@linux_only("the wrapper's subreaper and parent-death signal")
@pytest.mark.parametrize("interrupt", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_an_interrupted_takeover_never_loses_the_old_tree(
    tmp_path: Path, proc_registry: ProcessRegistry, interrupt: str
) -> None:
    """Wrapper A's daemonized grandchild ignores SIGTERM; A is SIGKILLed; B takes the lease and
    is interrupted while it ends A's tree. The tree stays in the record's `orphans` until a
    holder saw it gone, so it ends — by B itself when B can still act, else by C."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    survivor = [PY, "-c", STUBBORN, f"survivor-{tmp_path.name}"]
    spawn_survivor = f"setsid {' '.join(repr(a) for a in survivor)} & exec sleep 600"
    run = [PY, "-m", "tenure", "run", "--family", "web", "--version", "1.0", "--ports", WEB, "--"]
    a = proc_registry.spawn([*run, "sh", "-c", spawn_survivor], env=env)
    held_when(root, "web", lambda r: r.child is not None)
    pid = wait_for(lambda: process_with_argv(survivor), what="A's grandchild")
    assert isinstance(pid, int)
    try:
        a.kill()
        a.wait(30)
        assert psutil.pid_exists(pid)  # the documented survivor, until the next holder
        b = proc_registry.spawn([*run, PY, "-c", "import time; time.sleep(600)"], env=env)
        taken = held_when(root, "web", lambda r: r.holder.pid == b.pid)
        assert [c.tree for c in taken.orphans] != []  # written by the write that took the lease
        b.send_signal(getattr(signal, interrupt))
        b.wait(60)
        if interrupt != "SIGKILL":
            # B handled it: finished the old tree's stop, then released with a tombstone.
            assert b.returncode == 0
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
            assert record(root, "web").orphans == ()
            assert record(root, "web").state is LeaseState.RELEASED
            left = [t["reason"] for t in read_tombstones(root) if t.get("pid") == b.pid]
            assert left == ["signal"]
        else:
            assert psutil.pid_exists(pid)
            assert record(root, "web").orphans == taken.orphans
            doctor = json.loads(cli(env, "auth", "doctor", "--json").stdout)
            assert doctor["leases"]  # the survivor listens nowhere: the record alone keeps it
        c = proc_registry.spawn([*run, PY, "-c", "import time; time.sleep(600)"], env=env)
        held_when(root, "web", lambda r: r.holder.pid == c.pid and r.orphans == ())
        wait_for(lambda: not psutil.pid_exists(pid), what="A's grandchild to be ended")
        c.send_signal(signal.SIGTERM)
        assert c.wait(60) == 0
    finally:
        if psutil.pid_exists(pid) and psutil.Process(pid).cmdline() == survivor:
            psutil.Process(pid).kill()


# --- 3. a member that changed its uid -----------------------------------------------------------


@pytest.mark.process
@as_another_user
@linux_only("the wrapper's subreaper")
def test_a_member_that_dropped_its_privileges_is_ended_with_its_tree(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """A root wrapper whose child drops to uid 65534 and daemonizes a server: superseded, the
    wrapper ends that server too (it is the tree's by descent and cookie) and its port closes."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    daemonize = f'setsid {SYSTEM_PY} -c "{SERVE}" {{port}} >/dev/null 2>&1 & exec sleep 1000'
    run = [PY, "-m", "tenure", "run", "--family", "web", "--ports", WEB]
    old = proc_registry.spawn(
        [*run, "--version", "1.0", "--", *as_nobody, "sh", "-c", daemonize], env=env, cwd="/"
    )
    held = held_when(root, "web", lambda r: r.child is not None and r.holder.port is not None)
    port = held.holder.port
    assert port is not None
    server = wait_for(lambda: listening_pids().get(port), what="the dropped server to listen")
    assert isinstance(server, int)
    assert psutil.Process(server).uids().real == NOBODY
    try:
        new = proc_registry.spawn(
            [
                *run,
                "--version",
                "2.0",
                "--ready",
                "started",
                "--",
                PY,
                "-c",
                "import time; time.sleep(600)",
            ],
            env=env,
        )
        held_when(root, "web", lambda r: r.holder.pid == new.pid and r.state is LeaseState.HELD)
        assert old.wait(60) == 0
        wait_for(lambda: not psutil.pid_exists(server), what="the dropped server to be ended")
        assert port not in listening_pids()
        new.send_signal(signal.SIGTERM)
        assert new.wait(60) == 0
    finally:
        if psutil.pid_exists(server) and psutil.Process(server).uids().real == NOBODY:
            psutil.Process(server).kill()


# --- 4. a newer protocol's holder ---------------------------------------------------------------

NEWER_HOLDER = textwrap.dedent(
    """
    import fcntl, json, os, sys, time
    record, lock = sys.argv[1], sys.argv[2]
    doc = {"protocol": "tenure/2", "family": "web", "epoch": 5, "ttl_s": 12.0, "seq": 0,
           "state": "held", "renewed_at": time.time(), "holder": {"pid": os.getpid()}}
    while True:
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            doc["seq"] += 1
            doc["renewed_at"] = time.time()
            with open(record + ".tmp", "w") as out:
                json.dump(doc, out)
            os.replace(record + ".tmp", record)
        print("renewed", flush=True)
        time.sleep(4.0)  # past the observer's 3 s TTL, well within its own 12 s
    """
)


def test_a_renewing_holder_of_a_newer_protocol_is_never_evicted(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """A `tenure/2` holder renewing every 4 s with a 12 s TTL: a `hold` whose own TTL is 3 s
    waits 6 s and is refused (never taking it, never granting epoch 1)."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    store = LeaseStore(root, "web")
    (root / "leases").mkdir(parents=True)
    os.chmod(root, 0o700)
    os.chmod(root / "leases", 0o700)
    newer = proc_registry.spawn(
        [PY, "-c", NEWER_HOLDER, str(store.record_path), str(store.lock_path)],
        stdout=subprocess.PIPE,
    )
    assert newer.stdout is not None
    assert newer.stdout.readline().startswith(b"renewed")
    contender = subprocess.run(
        [PY, "-c", "import tenure; tenure.hold('web', version='1.0', wait_s=6.0).__enter__()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert contender.returncode == 1
    assert "LeaseUnreadable" in contender.stderr
    assert "tenure/2" in contender.stderr
    doc = json.loads(store.record_path.read_text())
    assert (doc["protocol"], doc["epoch"]) == ("tenure/2", 5)
    newer.kill()
    newer.wait(30)


# --- and: `tenure ls` on a root that has no `leases/` yet ----------------------------------------


def test_ls_on_an_empty_root_lists_the_families_and_writes_nothing(tmp_path: Path) -> None:
    """An empty root directory (nothing started yet) is listed, not an error, and stays empty:
    pruning looks for a record before it takes any lock."""
    root = (tmp_path / "root").resolve()
    root.mkdir(mode=0o700)
    listed = cli(env_for(root), "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    states = {f["family"]: f["state"] for f in json.loads(listed.stdout)["families"]}
    assert states == {"sync": "absent", "dashboard": "absent"}
    assert list(root.iterdir()) == []


def test_a_handle_made_after_retirement_began_says_it_is_retiring(tmp_path: Path) -> None:
    """A stop signal right as the lease is taken begins retirement before `tenure run` has its
    `Held`: the handle must still say so, or the wrapper would start its child and govern it
    for ever (found by the stress run of the interrupted-takeover test)."""
    from tenure.holder.governor import Governor, RetireReason
    from tenure.holder.hold import Held

    gov = Governor(tmp_path / "root", "web", "1.0")
    (tmp_path / "root").mkdir(mode=0o700)
    gov.acquire()
    gov.start()
    gov.abandon(RetireReason.SIGNAL)  # holding by now: retires with the signal's reason
    held = Held(gov)
    assert held.retiring.is_set()
    assert held.reason is RetireReason.SIGNAL
    assert record(tmp_path / "root", "web").state is LeaseState.RELEASED
