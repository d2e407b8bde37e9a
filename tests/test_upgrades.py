"""Upgrades that never go dark, first part: everything is checked before an older holder is
touched (a typo'd executable or option, a command `ensure` cannot start), and one version
grammar (PEP 440) at every door. spec: control.md#run, control.md#ensure, versioning.md
"""

from __future__ import annotations

import json
import os
import socket
import string
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import InvalidVersion, Version

import tenure
from tenure.adapters.ports import open_ports
from tenure.adapters.procinfo import read_process
from tenure.adapters.store import LeaseStore
from tenure.adapters.tombstones import read_tombstones
from tenure.core.inputs import is_pep440
from tenure.core.installs import Install, Watched, look
from tenure.core.lease import Liveness
from tenure.core.record import Child, Holder, LeaseRecord, LeaseState, Readiness, StopSpec
from tenure.core.standby import Standby, StandbyFacts, decide_standby
from tenure.core.timing import TREE_STOP
from tenure.core.values import replace
from tenure.errors import ConfigError, TenureError
from tenure.holder.takeover import Takeover
from tenure.testing import ProcessRegistry
from tests.conftest import PY, block, wait_for
from tests.test_identity import env_for, held_when

BLOCK = block(__name__)
WEB = f"{BLOCK.extra[0]}-{BLOCK.extra[1]}" if BLOCK.extra else ""
SERVE = "import http.server, sys; http.server.test(port=int(sys.argv[1]), bind='127.0.0.1')"
RUN = [PY, "-m", "tenure", "run", "--family", "web", "--ports", WEB]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [PY, "-m", "tenure", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def serving_1_0(root: Path, registry: ProcessRegistry, env: dict[str, str]) -> LeaseRecord:
    registry.spawn([*RUN, "--version", "1.0", "--", PY, "-c", SERVE, "{port}"], env=env)
    return held_when(root, "web", lambda r: r.child is not None and r.state is LeaseState.HELD)


def unchanged(root: Path, before: LeaseRecord) -> None:
    now = LeaseStore(root, "web").read()
    assert isinstance(now, LeaseRecord)
    assert (now.state, now.epoch, now.holder.nonce, now.superseded_by) == (
        LeaseState.HELD,
        before.epoch,
        before.holder.nonce,
        None,
    )


@pytest.mark.process
@pytest.mark.parametrize(
    ("upgrade", "said"),
    [
        pytest.param(
            ["--version", "2.0", "--", "pyhton3", "-m", "http.server", "{port}"],
            "'pyhton3' not found on PATH",
            id="typo-in-the-executable",
        ),
        pytest.param(
            ["--version", "2.0", "--idle", "60", "--", PY, "-m", "http.server", "{port}"],
            "'--idle' is not an option of tenure run",
            id="typo-in-an-option",
        ),
        pytest.param(
            ["--version", "2.0 beta", "--", PY, "-m", "http.server", "{port}"],
            "is not a PEP 440 version",
            id="a-version-that-cannot-be-compared",
        ),
    ],
)
def test_a_mistyped_upgrade_leaves_the_running_version_serving(
    tmp_path: Path, proc_registry: ProcessRegistry, upgrade: list[str], said: str
) -> None:
    """A usage error (exit 2) before any file is touched: 1.0 keeps its lease and epoch, and
    nobody asked it to leave."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    before = serving_1_0(root, proc_registry, env)
    failed = subprocess.run(
        [*RUN, *upgrade], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert failed.returncode == 2, failed.stderr
    assert said in failed.stderr
    assert "Errno" not in failed.stderr
    unchanged(root, before)


@pytest.mark.process
def test_a_version_outside_the_grammar_writes_no_record(tmp_path: Path) -> None:
    """`--version "1.0 beta"` on an empty root: exit 2, naming the grammar, no record."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    failed = cli(env, "run", "--family", "web", "--version", "1.0 beta", "--", PY, "-c", "pass")
    assert failed.returncode == 2
    assert "PEP 440" in failed.stderr
    assert not LeaseStore(root, "web").record_path.exists()


@pytest.mark.process
@pytest.mark.parametrize(
    ("env_extra", "argv"),
    [
        ({"TENURE_LEASE_TTL": "abc"}, [PY, "-c", "pass"]),
        ({}, ["nosuchcommand-tenure"]),
        ({}, ["--ready", "port", "--", PY, "-c", "pass"]),
    ],
    ids=["bad-timing", "missing-command", "readiness-by-port-without-a-port"],
)
def test_a_refused_run_does_not_even_make_the_root(
    tmp_path: Path, env_extra: dict[str, str], argv: list[str]
) -> None:
    """Every check comes before the root is made: a refused `tenure run` leaves no trace."""
    root = (tmp_path / "root").resolve()
    head = ["run", "--family", "web", "--version", "1.0"]
    if argv[0] != "--ready":
        head.append("--")
    failed = cli(env_for(root, **env_extra), *head, *argv)
    assert failed.returncode == 2, failed.stderr
    assert not root.exists()


HOLD_DAEMON = (
    "import sys, tenure\n"
    "with tenure.hold('indexer', version=sys.argv[1]) as held:\n"
    "    held.wait()\n"
)


@pytest.mark.process
def test_ensure_with_a_command_that_cannot_start_leaves_the_old_holder(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`ensure` cannot bring old code back, so a missing executable is a `TenureError` raised
    before the 1.1 holder is asked to leave."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    found = tenure.ensure("indexer", [PY, "-c", HOLD_DAEMON, "1.1"], version="1.1", root=root)
    proc_registry.track(found.pid)
    before = LeaseStore(root, "indexer").read()
    assert isinstance(before, LeaseRecord)
    with pytest.raises(TenureError, match="/nonexistent/served"):
        tenure.ensure("indexer", ["/nonexistent/served", "1.2"], version="1.2", root=root)
    now = LeaseStore(root, "indexer").read()
    assert isinstance(now, LeaseRecord)
    assert (now.epoch, now.holder.pid, now.superseded_by) == (before.epoch, found.pid, None)
    tenure.stop("indexer", root=root)
    assert json.loads(cli(env, "ls", "--json").stdout)["families"]


@pytest.mark.parametrize(
    "version", ["1.0 beta", "dev", "2024-06-01", "", " 1.0", "1.0-local", "x1"]
)
def test_every_door_refuses_a_version_outside_pep_440(tmp_path: Path, version: str) -> None:
    with (
        pytest.raises(ConfigError, match="PEP 440"),
        tenure.hold("w", version=version, root=tmp_path),
    ):
        pass
    with pytest.raises(ConfigError, match="PEP 440"):
        tenure.ensure("w", [sys.executable, "-c", "pass"], version=version, root=tmp_path)


VERSIONISH = st.text(alphabet=string.digits + ".-_+!abcdeoprstvlv", max_size=14)


@given(VERSIONISH)
def test_the_version_grammar_is_pep_440s(text: str) -> None:
    """Differential against packaging: the same strings are versions (no surrounding blanks)."""
    try:
        Version(text)
        accepted = text == text.strip() and bool(text)
    except InvalidVersion:
        accepted = False
    assert is_pep440(text) is accepted


# --- a stop policy per holder (control.md#stop-policy) ---------------------------------------

TELLS = (
    "import pathlib, signal, sys, time\n"
    "out = pathlib.Path(sys.argv[1])\n"
    "def told(signum, _frame):\n"
    "    out.write_text(signal.Signals(signum).name)\n"
    "    sys.exit(0)\n"
    "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):\n"
    "    signal.signal(s, told)\n"
    "out.with_suffix('.ready').write_text('ready')\n"
    "while True:\n"
    "    time.sleep(0.05)\n"
)


def told(path: Path) -> str:
    """The signal name a `TELLS` process wrote when it was stopped."""
    wait_for(lambda: (path.exists() and path.read_text()) or None, what=f"{path.name} written")
    return path.read_text()


@pytest.mark.process
def test_tenure_stop_ends_a_run_child_with_the_signal_it_asked_for(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`--stop-signal INT --stop-grace 20`: recorded on the child and the wrapper (whose own
    grace covers the child's), and `tenure stop` makes the child get SIGINT."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    out = tmp_path / "child.txt"
    argv = [PY, "-m", "tenure", "run", "--family", "web", "--version", "1.0"]
    proc_registry.spawn(
        [*argv, "--stop-signal", "INT", "--stop-grace", "20", "--", PY, "-c", TELLS, str(out)],
        env=env,
    )
    rec = held_when(root, "web", lambda r: r.child is not None)
    wait_for(lambda: out.with_suffix(".ready").exists(), what="the child to be ready")
    assert rec.child is not None
    assert rec.child.stop == StopSpec("SIGINT", 20.0, tree=True)
    assert rec.holder.stop is not None
    assert rec.holder.stop.grace_s >= 20.0 + TREE_STOP.kill_wait_s
    stopped = cli(env, "stop", "web")
    assert stopped.returncode == 0, stopped.stderr
    assert told(out) == "SIGINT"
    gone = LeaseStore(root, "web").read()
    assert isinstance(gone, LeaseRecord)
    assert gone.state is LeaseState.RELEASED


@pytest.mark.process
@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["--stop-signal", "KILL"], "is not one of TERM, INT, HUP, QUIT, USR1, USR2"),
        (["--stop-grace", "7200"], "out of range: 0 to 3600 seconds"),
    ],
)
def test_a_stop_policy_outside_its_bounds_is_a_usage_error(
    tmp_path: Path, given: list[str], said: str
) -> None:
    root = (tmp_path / "root").resolve()
    argv = ["run", "--family", "web", "--version", "1.0", *given, "--", PY, "-c", "pass"]
    failed = cli(env_for(root), *argv)
    assert failed.returncode == 2
    assert said in failed.stderr
    assert not LeaseStore(root, "web").record_path.exists()


HOLD_TELLS = (
    "import pathlib, signal, sys, threading, tenure\n"
    "out = pathlib.Path(sys.argv[1])\n"
    "asked = threading.Event()\n"
    "def told(signum, _frame):\n"
    "    out.write_text(signal.Signals(signum).name)\n"
    "    asked.set()\n"
    "signal.signal(signal.SIGUSR1, told)\n"
    "with tenure.hold('indexer', version='1.0', handle_signals=False,\n"
    "                 stop_signal='USR1', stop_grace_s=30) as held:\n"
    "    while not asked.wait(0.05) and not held.retiring.is_set():\n"
    "        pass\n"
)


@pytest.mark.process
def test_tenure_stop_sends_a_hold_daemon_the_signal_it_recorded(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`hold(stop_signal='USR1', stop_grace_s=30)` is in the record, and `tenure.stop` sends
    SIGUSR1, not SIGTERM; the daemon leaves on it with a clean release."""
    root = (tmp_path / "root").resolve()
    out = tmp_path / "holder.txt"
    proc_registry.spawn([PY, "-c", HOLD_TELLS, str(out)], env=env_for(root))
    rec = held_when(root, "indexer", lambda r: r.state is LeaseState.HELD)
    assert rec.holder.stop == StopSpec("SIGUSR1", 30.0)
    assert tenure.stop("indexer", root=root) == rec.holder.pid
    assert told(out) == "SIGUSR1"
    with (
        pytest.raises(ConfigError, match="not one of TERM, INT, HUP"),
        tenure.hold("indexer", version="2.0", root=root, stop_signal="USR1"),
    ):
        pass


@pytest.mark.process
def test_a_replaced_holders_tree_is_ended_by_its_own_policy(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """The takeover of a dead wrapper's tree honours the stop recorded for it: the lone child
    (no cookie) gets SIGHUP, not SIGTERM."""
    out = tmp_path / "orphan.txt"
    proc = proc_registry.spawn([PY, "-c", TELLS, str(out)])
    wait_for(lambda: out.with_suffix(".ready").exists(), what="the orphan to be ready")
    ident = read_process(proc.pid)
    assert ident is not None
    orphan = Child(proc.pid, ident.create_time, ident.start_ticks, None, StopSpec("SIGHUP", 10.0))
    seen: list[tuple[Child, ...]] = []
    takeover = Takeover("web")
    takeover.stop((orphan,), seen.append)
    assert takeover.settle(60)
    assert told(out) == "SIGHUP"
    assert seen == [(orphan,)]


# --- give a failed successor's place back (control.md#readiness) -----------------------------


def upgrade(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """`tenure run` for `web` at another version, to its end."""
    return subprocess.run(
        [*RUN, *argv], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def back_to(root: Path, before: LeaseRecord, after_epoch: int) -> LeaseRecord:
    """The record once the 1.0 wrapper holds again, at a new epoch, with its child serving."""
    return held_when(
        root,
        "web",
        lambda r: (
            r.holder.pid == before.holder.pid
            and r.epoch > after_epoch
            and r.child is not None
            and r.state is LeaseState.HELD
        ),
    )


def reasons(root: Path) -> list[tuple[str, str]]:
    return [(t["version"], t["reason"]) for t in read_tombstones(root) if t["family"] == "web"]


@pytest.mark.process
@pytest.mark.parametrize(
    ("command", "extra", "code", "said"),
    [
        pytest.param(
            ["-c", "import sys, time; time.sleep(0.2); sys.exit(3)"],
            [],
            3,
            "it exited with code 3 before it was ready",
            id="exits-before-it-serves",
        ),
        pytest.param(
            ["-c", "import time; time.sleep(120)"],
            ["--ready-timeout", "1"],
            1,
            "it was not ready within 1s",
            id="never-serves-in-time",
        ),
    ],
)
def test_a_successor_that_fails_before_it_is_ready_gives_the_old_version_back(
    tmp_path: Path,
    proc_registry: ProcessRegistry,
    command: list[str],
    extra: list[str],
    code: int,
    said: str,
) -> None:
    """3.0 fails before it is ready: the 1.0 wrapper, standing by, takes the lease back
    (a new epoch, through a normal acquire), serves its command again on its port, and writes
    the tombstone `rolled_back` naming 3.0; 3.0 exits non-zero saying so."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    before = serving_1_0(root, proc_registry, env)
    failed = upgrade(env, "--version", "3.0", *extra, "--", PY, *command)
    assert failed.returncode == code, failed.stderr
    assert f"web 3.0 rolled back: {said}; 1.0 (pid {before.holder.pid}) holds" in failed.stderr
    again = back_to(root, before, before.epoch + 1)
    assert again.holder.port == before.holder.port
    assert again.holder.port is not None
    wait_for(lambda: open_ports([again.holder.port or 0]), what="1.0 serving again")
    assert ("3.0", "rolled_back") in reasons(root)
    assert ("3.0", "not_ready") in reasons(root)


@pytest.mark.process
def test_a_ready_successor_is_handed_over_and_the_old_wrapper_exits(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """2.0 serves: its record says ready, and the standing-by 1.0 wrapper exits 0 without
    taking anything back."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    old = proc_registry.spawn([*RUN, "--version", "1.0", "--", PY, "-c", SERVE, "{port}"], env=env)
    before = held_when(root, "web", lambda r: r.child is not None)
    proc_registry.spawn([*RUN, "--version", "2.0", "--", PY, "-c", SERVE, "{port}"], env=env)
    assert old.wait(timeout=60) == 0
    now = held_when(root, "web", lambda r: r.holder.version == "2.0" and r.ready is not None)
    assert now.ready is not None
    assert now.ready.at is not None  # it said it was ready, which let 1.0 go
    assert now.holder.port == before.holder.port
    assert ("2.0", "rolled_back") not in reasons(root)


NOTIFIES = (
    "import os, pathlib, socket, sys, time\n"
    "go = pathlib.Path(sys.argv[1])\n"
    "while not go.exists():\n"
    "    time.sleep(0.02)\n"
    "address = os.environ['NOTIFY_SOCKET']\n"
    "address = '\\0' + address[1:] if address.startswith('@') else address\n"
    "with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:\n"
    "    s.sendto(b'STATUS=up\\nREADY=1\\n', address)\n"
    "time.sleep(120)\n"
)


@pytest.mark.process
@pytest.mark.skipif(sys.platform != "linux", reason="reads NOTIFY_SOCKET from /proc/PID/environ")
def test_readiness_by_notify_socket_comes_from_the_tree_alone(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`--ready notify`: a READY=1 from a process outside the tree (this test) is ignored;
    the child's own READY=1 makes the record say ready, and 1.0 lets go."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    old = proc_registry.spawn([*RUN, "--version", "1.0", "--", PY, "-c", SERVE, "{port}"], env=env)
    held_when(root, "web", lambda r: r.child is not None)
    go = tmp_path / "go"
    argv = ["--version", "2.0", "--ready", "notify", "--", PY, "-c", NOTIFIES, str(go)]
    proc_registry.spawn([*RUN, *argv], env=env)
    starting = held_when(root, "web", lambda r: r.holder.version == "2.0" and r.child is not None)
    assert starting.starting
    assert starting.child is not None
    environ = Path(f"/proc/{starting.child.pid}/environ").read_bytes().split(b"\0")
    address = next(v for v in environ if v.startswith(b"NOTIFY_SOCKET=")).split(b"=", 1)[1]
    target = b"\0" + address[1:] if address.startswith(b"@") else address
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stranger:
        stranger.sendto(b"READY=1\n", target)
    # The stranger's datagram is read within the wrapper's next look (50 ms); a later look
    # still finds the record starting, and the old wrapper still standing by.
    seq = starting.seq
    held_when(root, "web", lambda r: r.seq >= seq + 2)
    still = LeaseStore(root, "web").read()
    assert isinstance(still, LeaseRecord)
    assert still.starting
    assert old.poll() is None
    go.write_text("go")
    assert old.wait(timeout=60) == 0
    ready = held_when(root, "web", lambda r: not r.starting)
    assert ready.holder.version == "2.0"


@pytest.mark.parametrize(
    ("record", "alive", "waited", "verdict"),
    [
        ("none-yet", None, 1.0, Standby.WAIT),
        ("none-yet", None, 99.0, Standby.GIVE_UP),
        ("starting", Liveness.ALIVE, 1.0, Standby.WAIT),
        ("starting", Liveness.ALIVE, 99.0, Standby.GIVE_UP),
        ("starting", Liveness.DEAD, 1.0, Standby.ROLL_BACK),
        ("starting-released", None, 1.0, Standby.ROLL_BACK),
        ("ready", Liveness.ALIVE, 1.0, Standby.HANDED_OVER),
        ("no-readiness", Liveness.ALIVE, 1.0, Standby.HANDED_OVER),
        ("a-later-holder", Liveness.ALIVE, 1.0, Standby.HANDED_OVER),
        ("gone", None, 1.0, Standby.GIVE_UP),
    ],
)
def test_the_standby_rules(
    record: str, alive: Liveness | None, waited: float, verdict: Standby
) -> None:
    """core/standby.py, row by row: the successor is judged by its own readiness and its
    stated bound (`within_s` 10 s, plus one heartbeat of 1 s; arrival within 5 s)."""
    holder = Holder(7, 1.0, "n", "3.0", 9500, 0.0)
    base = LeaseRecord("web", 5, holder, 3.0, 0.0, 0, LeaseState.HELD, ready=Readiness(10.0))
    current: LeaseRecord | None = {
        "none-yet": replace(base, epoch=4, ready=None),
        "starting": base,
        "starting-released": replace(base, state=LeaseState.RELEASED),
        "ready": replace(base, ready=Readiness(10.0, 12.0)),
        "no-readiness": replace(base, ready=None),
        "a-later-holder": replace(base, epoch=6),
        "gone": None,
    }[record]
    facts = StandbyFacts(
        current=current,
        liveness=alive,
        my_epoch=4,
        waited_s=waited,
        successor_for_s=None if record == "none-yet" else waited,
        successor_epoch=None if record == "none-yet" else 5,
        heartbeat_s=1.0,
        arrival_s=5.0,
    )
    assert decide_standby(facts) is verdict


@pytest.mark.process
def test_a_successor_killed_while_starting_gives_the_old_version_back(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """3.0's wrapper is SIGKILLed while its child is starting: the record names a dead holder
    that never said it was ready, so 1.0 takes over its lease (epoch + 1) and serves again."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    before = serving_1_0(root, proc_registry, env)
    argv = ["--version", "3.0", "--", PY, "-c", "import time; time.sleep(120)"]
    new = proc_registry.spawn([*RUN, *argv], env=env)
    starting = held_when(root, "web", lambda r: r.holder.pid == new.pid and r.child is not None)
    assert starting.starting
    new.kill()
    new.wait(30)
    again = back_to(root, before, starting.epoch)
    assert again.holder.port == before.holder.port
    wait_for(lambda: open_ports([again.holder.port or 0]), what="1.0 serving again")
    assert ("3.0", "rolled_back") in reasons(root)


# --- never keep old code running (control.md#installs) ---------------------------------------

SAYS = (
    "#!{py}\n"
    "import http.server, sys\n"
    "class Says(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200)\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b'{said}')\n"
    "    def log_message(self, *args):\n"
    "        pass\n"
    "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), Says).serve_forever()\n"
)


def install(path: Path, said: str) -> None:
    """Install the server that answers `said`, as a package manager does: a new file renamed
    over the old one."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(SAYS.format(py=PY, said=said))
    fresh.chmod(0o755)
    os.replace(fresh, path)


def answer(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
            return str(reply.read().decode())
    except OSError:
        return None


@pytest.mark.process
def test_a_new_install_of_the_executable_restarts_the_child_on_its_port(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """The wrapper watches the executable it runs: replaced by a new install, the child is
    restarted from the new file on the same port, under the same lease (same epoch)."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    server = tmp_path / "server"
    install(server, "one")
    wrapper = proc_registry.spawn([*RUN, "--version", "1.0", "--", str(server), "{port}"], env=env)
    rec = held_when(root, "web", lambda r: r.child is not None and r.holder.port is not None)
    port = rec.holder.port
    assert port is not None
    assert wait_for(lambda: answer(port), what="the first install to answer") == "one"
    install(server, "two")
    wait_for(lambda: answer(port) == "two" or None, what="the new install to answer")
    now = LeaseStore(root, "web").read()
    assert isinstance(now, LeaseRecord)
    assert (now.epoch, now.holder.pid, now.holder.port) == (rec.epoch, wrapper.pid, port)
    assert now.child is not None
    assert rec.child is not None
    assert now.child.pid != rec.child.pid


HOLD_WATCHING = (
    "import sys, tenure\n"
    "with tenure.hold('indexer', version='1.0', watch=[sys.argv[1]]) as held:\n"
    "    held.wait()\n"
)


@pytest.mark.process
def test_a_hold_daemon_retires_as_upgraded_when_its_install_changes(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`hold(watch=[...])`: a new install of a watched file retires the daemon with reason
    `upgraded` (released, so the next start runs the new code); a missing file is refused."""
    root = (tmp_path / "root").resolve()
    marker = tmp_path / "VERSION"
    marker.write_text("1.0\n")
    daemon = proc_registry.spawn([PY, "-c", HOLD_WATCHING, str(marker)], env=env_for(root))
    held_when(root, "indexer", lambda r: r.holder.pid == daemon.pid)
    fresh = tmp_path / "VERSION.new"
    fresh.write_text("1.1\n")
    os.replace(fresh, marker)
    assert daemon.wait(timeout=60) == 0
    assert [t["reason"] for t in read_tombstones(root)] == ["upgraded"]
    with (
        pytest.raises(ConfigError, match="no such file to watch"),
        tenure.hold("indexer", version="1.1", root=root, watch=[tmp_path / "missing"]),
    ):
        pass


def test_the_install_rules_settle_before_they_act() -> None:
    """core/installs.py: a change acts once two looks agree on it; a missing file or a file
    still changing waits; the new identity becomes the baseline."""
    a, b, c = (1, 1, 10, 100), (1, 2, 12, 200), (1, 2, 14, 300)
    w = Watched((a,))
    verdict, w = look(w, (a,))
    assert verdict is Install.SAME
    verdict, w = look(w, (None,))
    assert verdict is Install.SETTLING
    verdict, w = look(w, (None,))
    assert verdict is Install.SETTLING  # missing twice is still no install
    verdict, w = look(w, (b,))
    assert verdict is Install.SETTLING
    verdict, w = look(w, (c,))
    assert verdict is Install.SETTLING  # still being written
    verdict, w = look(w, (c,))
    assert verdict is Install.UPGRADED
    assert w == Watched((c,))
    assert look(w, (c,))[0] is Install.SAME
