"""`tenure run` governs a process tree, not a pid (control.md#run): grandchildren, `setsid … &`
children and double forks come back to the wrapper (child subreaper), carry the tree's cookie,
and go with it on supersession, stop, a SIGKILLed wrapper's takeover, and root removal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

import tenure
from tenure.adapters.ports import open_ports
from tenure.adapters.store import LeaseStore
from tenure.adapters.tree import COOKIE_ENV
from tenure.core.record import LeaseRecord, LeaseState
from tenure.testing import ProcessRegistry
from tests.conftest import PY, block, linux_only, remove_tree, stop_outside_lock, wait_for
from tests.test_doctor import SCHEMA

BLOCK = block(__name__)
assert BLOCK.extra is not None
PORTS = f"{BLOCK.extra[0]}-{BLOCK.extra[1]}"
FAST = {"TENURE_LEASE_TTL": "3", "TENURE_HEARTBEAT": "0.5"}
SERVE = f"{PY} -m http.server {{port}} --bind 127.0.0.1"
DOUBLE_FORK = (
    "import os, sys\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        os.execv(sys.executable, [sys.executable, '-m', 'http.server', sys.argv[1],"
    " '--bind', '127.0.0.1'])\n"
    "    os._exit(0)\n"
    "os.wait()\n"
)
SHAPES = {
    "grandchild": ["sh", "-c", f"{SERVE}; echo done"],
    "setsid-background": ["sh", "-c", f"setsid {SERVE} > /dev/null 2>&1 &"],
    "double-fork": [PY, "-c", DOUBLE_FORK, "{port}"],
}
DAEMONIZING = {"setsid-background", "double-fork"}


def start(
    root: Path, registry: ProcessRegistry, version: str, shape: str, **env: str
) -> subprocess.Popen[bytes]:
    argv = [PY, "-m", "tenure", "run", "--family", "web", "--version", version, "--ports", PORTS]
    wrapper = registry.spawn(
        [*argv, "--", *SHAPES[shape]],
        env={**os.environ, **FAST, "TENURE_ROOT": str(root), **env},
    )
    wait_for(
        lambda: serving(root, wrapper.pid), what=f"{shape} under tenure run {version} to serve"
    )
    return wrapper


def record(root: Path) -> LeaseRecord:
    rec = LeaseStore(root, "web").read()
    assert isinstance(rec, LeaseRecord)
    return rec


def serving(root: Path, holder: int) -> bool:
    rec = LeaseStore(root, "web").read()
    if not (isinstance(rec, LeaseRecord) and rec.holder.pid == holder and rec.child):
        return False
    return rec.holder.port is not None and open_ports([rec.holder.port]) == [rec.holder.port]


def members(cookie: str) -> list[int]:
    """Live processes carrying the tree's cookie (zombies count as gone)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            env = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if f"{COOKIE_ENV}={cookie}".encode() in env and state != "Z":
            found.append(int(name))
    return found


def tree_of(root: Path) -> tuple[str, int]:
    rec = record(root)
    assert rec.child is not None
    assert rec.child.tree is not None
    assert rec.holder.port is not None
    return rec.child.tree, rec.holder.port


def assert_tree_gone(cookie: str, port: int) -> None:
    wait_for(lambda: members(cookie) == [], what=f"every process of tree {cookie} to end")
    wait_for(lambda: open_ports([port]) == [], what=f"port {port} to close")


@pytest.mark.parametrize("shape", SHAPES)
def test_supersession_ends_the_whole_old_tree_and_keeps_the_port(
    tmp_path: Path, proc_registry: ProcessRegistry, shape: str
) -> None:
    """A newer `tenure run` starts only after every process of the old tree is gone, and its
    server takes the old port."""
    root = tmp_path / "root"
    old = start(root, proc_registry, "1.0", shape)
    cookie, port = tree_of(root)
    if shape in DAEMONIZING:
        # The direct child has exited: the daemonized server keeps the lease held.
        wait_for(lambda: len(members(cookie)) == 1, what="the launcher part of the tree to exit")
        seq = record(root).seq
        wait_for(lambda: record(root).seq >= seq + 2, what="two more renewals")
        assert old.poll() is None
        assert len(members(cookie)) == 1
    new = start(root, proc_registry, "2.0", shape)
    assert members(cookie) == []
    new_cookie, new_port = tree_of(root)
    assert (new_port, record(root).holder.pid) == (port, new.pid)
    assert new_cookie != cookie


@pytest.mark.parametrize("shape", SHAPES)
def test_stop_ends_the_whole_tree(
    tmp_path: Path, proc_registry: ProcessRegistry, shape: str
) -> None:
    """`tenure.stop` retires the wrapper, which ends every member before it releases."""
    root = tmp_path / "root"
    start(root, proc_registry, "1.0", shape)
    cookie, port = tree_of(root)
    tenure.stop("web", root=root)
    assert_tree_gone(cookie, port)
    assert record(root).state is LeaseState.RELEASED


@pytest.mark.parametrize("shape", SHAPES)
def test_after_the_wrapper_is_killed_the_next_start_ends_the_old_tree(
    tmp_path: Path, proc_registry: ProcessRegistry, shape: str
) -> None:
    """SIGKILL of the wrapper (no parent-death signal reaches a grandchild): the next holder
    finds the survivors by cookie, user and start time and ends them before its own child."""
    root = tmp_path / "root"
    old = start(root, proc_registry, "1.0", shape)
    cookie, port = tree_of(root)
    old.kill()
    old.wait(30)
    new = start(root, proc_registry, "1.0", shape)
    assert members(cookie) == []
    assert record(root).holder.pid == new.pid
    assert tree_of(root)[1] == port


@pytest.mark.parametrize("shape", SHAPES)
def test_without_a_parent_death_signal_the_watchdog_ends_a_killed_wrappers_tree(
    tmp_path: Path, proc_registry: ProcessRegistry, shape: str
) -> None:
    """Portable mode (as on macOS: no prctl, no subreaper): SIGKILL of the wrapper, and its
    watchdog ends the whole tree, daemonized members too, with no next start needed."""
    root = tmp_path / "root"
    wrapper = start(root, proc_registry, "1.0", shape, TENURE_TEST_PORTABLE="1")
    cookie, port = tree_of(root)
    try:  # the members are no Popen of ours: ended in `finally`, however the test goes
        if shape in DAEMONIZING:  # held by the daemonized member alone, found by its cookie
            wait_for(lambda: len(members(cookie)) == 1, what="the launcher part to exit")
            seq = record(root).seq
            wait_for(lambda: record(root).seq >= seq + 2, what="two more renewals")
        wrapper.kill()
        wrapper.wait(30)
        assert_tree_gone(cookie, port)
    finally:
        for pid in members(cookie):  # by pid, each proven ours by the cookie
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("shape", SHAPES)
def test_removing_the_root_ends_the_whole_tree(
    tmp_path: Path, proc_registry: ProcessRegistry, shape: str
) -> None:
    """No root, no lease, no tree."""
    root = tmp_path / "root"
    wrapper = start(root, proc_registry, "1.0", shape)
    cookie, port = tree_of(root)
    remove_tree(root)
    assert wrapper.wait(60) == 0
    assert_tree_gone(cookie, port)


def test_a_stopped_wrappers_tree_is_ended_once_its_lease_expired(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """SIGSTOP the 1.0 wrapper, start 1.1: once the old lease expired the old tree is gone and
    exactly one server listens, on the old port."""
    root = tmp_path / "root"
    old = start(root, proc_registry, "1.0", "grandchild")
    cookie, port = tree_of(root)
    stop_outside_lock(old.pid, LeaseStore(root, "web").lock_path)
    try:
        new = start(root, proc_registry, "1.1", "grandchild")
        assert members(cookie) == []
        assert record(root).holder.pid == new.pid
        assert open_ports(range(BLOCK.extra[0], BLOCK.extra[1] + 1)) == [port]  # type: ignore[index]
    finally:
        os.kill(old.pid, signal.SIGCONT)
    assert old.wait(60) == 0


IDLE_CLIENT = (
    "import sys, time, urllib.request\n"
    "while True:\n"
    "    urllib.request.urlopen(f'http://127.0.0.1:{sys.argv[1]}/', timeout=5).read()\n"
    "    time.sleep(1)\n"
)


def test_run_does_not_retire_a_busy_server_as_idle(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """Idle is opt-in for `tenure run`: with TENURE_IDLE_SECONDS=2 in its environment and a
    request every second, the server is still governed after more than three idle periods."""
    root = tmp_path / "root"
    argv = [PY, "-m", "tenure", "run", "--family", "web", "--version", "1", "--ports", PORTS]
    env = {**os.environ, **FAST, "TENURE_ROOT": str(root), "TENURE_IDLE_SECONDS": "2"}
    wrapper = proc_registry.spawn([*argv, "--", *SHAPES["grandchild"]], env=env)
    wait_for(lambda: serving(root, wrapper.pid), what="the server to serve")
    _cookie, port = tree_of(root)
    proc_registry.spawn([sys.executable, "-c", IDLE_CLIENT, str(port)])
    first = record(root)
    wait_for(lambda: record(root).seq >= first.seq + 14, what="7 s of renewals")  # 3.5 idle periods
    assert wrapper.poll() is None
    assert record(root).holder.pid == wrapper.pid


def test_run_with_idle_seconds_retires_a_server_nobody_talks_to(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`--idle-seconds 1`: with no connection on its port, the tree retires (tombstone idle)."""
    root = tmp_path / "root"
    argv = [PY, "-m", "tenure", "run", "--family", "web", "--version", "1", "--ports", PORTS]
    argv += ["--idle-seconds", "1", "--", *SHAPES["grandchild"]]
    wrapper = proc_registry.spawn(argv, env={**os.environ, **FAST, "TENURE_ROOT": str(root)})
    wait_for(lambda: serving(root, wrapper.pid), what="the server to serve")
    cookie, port = tree_of(root)
    assert wrapper.wait(60) == 0
    assert_tree_gone(cookie, port)
    from tenure.adapters.tombstones import read_tombstones

    assert [t["reason"] for t in read_tombstones(root)] == ["idle"]


def test_an_upgrade_keeps_the_port_even_when_a_lower_one_is_free(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """The old server took the second port (the first was busy); when the first frees up, the
    upgrade still lands on the port clients know."""
    import socket

    root = tmp_path / "root"
    assert BLOCK.extra is not None
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past earlier TIME_WAITs
    squatter.bind(("127.0.0.1", BLOCK.extra[0]))
    squatter.listen()
    try:
        start(root, proc_registry, "1.0", "grandchild")
    finally:
        squatter.close()
    _cookie, port = tree_of(root)
    assert port == BLOCK.extra[0] + 1
    start(root, proc_registry, "2.0", "grandchild")
    assert tree_of(root)[1] == port


SLOW = (
    "import http.server, signal, sys, threading, time\n"
    "port, log = int(sys.argv[1]), sys.argv[2]\n"
    "def note(what):\n"
    "    with open(log, 'a') as fh:\n"
    "        fh.write(f'{what} {time.monotonic()!r}\\n')\n"
    "def leave(*_):\n"
    "    time.sleep(2)  # a server that takes 2 s to shut down\n"
    "    note('exited')\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, leave)\n"
    "server = http.server.HTTPServer(('127.0.0.1', port), http.server.SimpleHTTPRequestHandler)\n"
    "note('started')\n"
    "threading.Thread(target=server.serve_forever, daemon=True).start()\n"
    "while True:\n"
    "    time.sleep(1)\n"
)


def test_an_upgrade_breaks_before_it_makes(tmp_path: Path, proc_registry: ProcessRegistry) -> None:
    """The old server takes 2 s to exit on SIGTERM: the new one starts only after it has
    exited (CLOCK_MONOTONIC, shared by both), on the same port."""
    root = tmp_path / "root"
    log = tmp_path / "events"
    SHAPES["slow"] = [PY, "-c", SLOW, "{port}", str(log)]
    try:
        start(root, proc_registry, "1.0", "slow")
        _cookie, port = tree_of(root)
        start(root, proc_registry, "2.0", "slow")
    finally:
        del SHAPES["slow"]
    events = [line.split() for line in log.read_text().splitlines()]
    assert [e[0] for e in events] == ["started", "exited", "started"]
    assert float(events[2][1]) > float(events[1][1])
    assert tree_of(root)[1] == port


@linux_only("the parent-death signal (prctl), which leaves only the grandchild")
def test_doctor_names_a_gone_holders_survivor_and_reset_ends_it(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """SIGKILL of the wrapper and nobody starts the family again: the grandchild still listens.
    The doctor shows it as the gone holder's (safe_auto, proven by the cookie), not a third
    party's, and `--reset` ends it (classification.md row member-of-a-gone-holders-tree)."""
    root = tmp_path / "root"
    wrapper = start(root, proc_registry, "1.0", "grandchild")
    cookie, port = tree_of(root)
    env = {**os.environ, "TENURE_ROOT": str(root), "SPEC_KITTY_HOME": str(tmp_path / "legacy")}

    def doctor(*args: str) -> dict[str, object]:
        proc = subprocess.run(
            [PY, "-m", "tenure", "auth", "doctor", "--json", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode in (0, 1), proc.stderr
        doc = json.loads(proc.stdout)
        jsonschema.validate(doc, SCHEMA)  # the new identity source is part of the schema
        assert isinstance(doc, dict)
        return doc

    try:  # the survivors are no Popen of ours: ended in `finally`, however the test goes
        wrapper.kill()
        wrapper.wait(30)
        wait_for(lambda: len(members(cookie)) == 1, what="only the listening grandchild to remain")
        found = [d for d in doctor()["candidates"] if d["port"] == port]  # type: ignore[union-attr]
        assert [(d["cleanup_class"], d["identity_source"]) for d in found] == [
            ("safe_auto", "tree_cookie")
        ]
        assert members(cookie) != []  # the doctor alone touches nothing
        swept = doctor("--reset")["reset_result"]["swept"]  # type: ignore[index]
        assert [s["port"] for s in swept] == [port]
        assert_tree_gone(cookie, port)
    finally:
        for pid in members(cookie):  # by pid, each proven ours by the cookie
            os.kill(pid, signal.SIGKILL)


def test_doctor_and_ls_know_a_governed_tree_as_the_holders_live_or_stopped(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`tenure run -- sh -c 'server; echo done'`: the server is the wrapper's grandchild. The
    doctor lists it as the web lease's holder with the lease's version, and `ls` counts no
    stranger; once the wrapper is SIGSTOPped past its TTL the server is still that holder's
    (operator_required, by its cookie), never a third party's (classification.md rows 13-14)."""
    root = tmp_path / "root"
    wrapper = start(root, proc_registry, "1.0", "grandchild")
    cookie, port = tree_of(root)
    env = {**os.environ, "TENURE_ROOT": str(root), "SPEC_KITTY_HOME": str(tmp_path / "legacy")}

    def tenure(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [PY, "-m", "tenure", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode in (0, 1), done.stderr
        return done

    def row() -> dict[str, object]:
        doc = json.loads(tenure("auth", "doctor", "--json").stdout)
        jsonschema.validate(doc, SCHEMA)
        found = [d for d in doc["candidates"] if d["port"] == port]
        assert len(found) == 1, found
        return found[0]  # type: ignore[no-any-return]

    live = row()
    assert (live["cleanup_class"], live["skip_reason"]) == ("never_touch", "lease_holder")
    assert (live["daemon_family"], live["package_version"]) == ("web", "1.0")
    web = next(line for line in tenure("ls").stdout.splitlines() if line.startswith("web "))
    assert web.endswith("others: none"), web
    stop_outside_lock(wrapper.pid, LeaseStore(root, "web").lock_path)
    try:
        wait_for(lambda: time.time() - record(root).renewed_at > 3.5, what="the lease to expire")
        stopped = row()
        assert (stopped["cleanup_class"], stopped["skip_reason"]) == (
            "operator_required",
            "unresponsive",
        )
        assert (stopped["identity_source"], stopped["package_version"]) == ("tree_cookie", "1.0")
        assert members(cookie) != []  # the doctor alone touches nothing
    finally:
        os.kill(wrapper.pid, signal.SIGCONT)
