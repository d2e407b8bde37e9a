"""Seamless upgrades, the socket: `tenure run --socket` binds the port itself, passes it to the
child by the socket-activation convention, and hands it to a newer wrapper, so an upgrade
refuses no connection and a failed one gives the same old child back. The handover proves
both peers by the kernel's word. spec: control.md#socket-handover
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tenure.adapters import handover
from tenure.adapters.tombstones import read_tombstones
from tenure.core.record import LeaseRecord, LeaseState
from tenure.testing import ProcessRegistry
from tests.conftest import PY, block, wait_for
from tests.test_identity import env_for, held_when
from tests.test_upgrades import reasons

BLOCK = block(__name__)
WEB = f"{BLOCK.extra[0]}-{BLOCK.extra[1]}" if BLOCK.extra else ""
RUN = [PY, "-m", "tenure", "run", "--family", "web", "--ports", WEB, "--socket"]
LINUX_ONLY = pytest.mark.skipif(not handover.supported(), reason="the handover is Linux's")

# examples/activated.py only runs socket-activated (fd 3, LISTEN_FDS=1, LISTEN_PID its own
# pid). It answers its version; on SIGTERM it stops accepting and finishes what it accepted.
SERVER = [PY, str(Path(__file__).parent.parent / "examples" / "activated.py")]


class Client:
    """A client making a connection every 5 ms and asking the version, until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers: list[str] = []
        self.refused = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("GET", "/")
                self.answers.append(conn.getresponse().read().decode())
                conn.close()
            except ConnectionRefusedError:
                self.refused += 1
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append(repr(exc))
            self._stop.wait(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def serving(
    root: Path, registry: ProcessRegistry, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], LeaseRecord]:
    """1.0 under `tenure run --socket`, serving (its record says so, a request answers)."""
    wrapper = registry.spawn([*RUN, "--version", "1.0", "--", *SERVER, "1.0"], env=env)
    rec = held_when(root, "web", lambda r: r.child is not None and r.state is LeaseState.HELD)
    assert rec.holder.port is not None
    wait_for(lambda: answer(rec.holder.port or 0) == "1.0", what="1.0 to answer")
    return wrapper, rec


def answer(port: int) -> str | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    except (OSError, http.client.HTTPException):
        return None


@pytest.mark.process
@LINUX_ONLY
def test_a_socket_upgrade_refuses_no_connection_and_ends_on_the_new_version(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """A client connecting every 5 ms through the upgrade 1.0 → 2.0: nothing refused, nothing
    failed, every answer from one of the two, and it ends answering 2.0. The 1.0 wrapper
    exits 0 once 2.0 is ready, and the record keeps no tree of 1.0 listed."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    old, before = serving(root, proc_registry, env)
    port = before.holder.port or 0
    client = Client(port)
    try:
        wait_for(lambda: len(client.answers) >= 20, what="the client to be answered")
        proc_registry.spawn([*RUN, "--version", "2.0", "--", *SERVER, "2.0"], env=env)
        assert old.wait(timeout=60) == 0
        seen = len(client.answers)
        wait_for(lambda: len(client.answers) >= seen + 20, what="answers after the handover")
    finally:
        client.stop()
    assert (client.refused, client.errors) == (0, [])
    assert set(client.answers) == {"1.0", "2.0"}
    assert client.answers[-1] == "2.0"
    now = held_when(root, "web", lambda r: r.holder.version == "2.0" and not r.orphans)
    assert now.holder.port == port
    assert now.ready is not None
    assert now.ready.at is not None
    assert not (root / "handover" / f"web.{now.holder.pid}.sock").exists()


@pytest.mark.process
@LINUX_ONLY
def test_a_socket_successor_that_fails_gives_the_same_old_child_back(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """2.0 is handed the socket and exits before it is ready: 1.0 takes the lease back
    with the very child that kept serving (same pid), and the client saw no refusal."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    _old, before = serving(root, proc_registry, env)
    assert before.child is not None
    port = before.holder.port or 0
    client = Client(port)
    try:
        wait_for(lambda: len(client.answers) >= 20, what="the client to be answered")
        failed = subprocess.run(
            [*RUN, "--version", "2.0", "--", PY, "-c", "import sys; sys.exit(3)"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert failed.returncode == 3, failed.stderr
        again = held_when(
            root, "web", lambda r: r.holder.pid == before.holder.pid and r.epoch > before.epoch
        )
        seen = len(client.answers)
        wait_for(lambda: len(client.answers) >= seen + 20, what="answers after the rollback")
    finally:
        client.stop()
    assert "holds the lease again" in failed.stderr
    assert again.child is not None
    assert again.child.pid == before.child.pid  # taken back as it ran, never restarted
    assert not again.orphans
    assert (client.refused, client.errors) == (0, [])
    assert set(client.answers) == {"1.0"}
    assert ("2.0", "rolled_back") in reasons(root)


@pytest.mark.process
@pytest.mark.skipif(sys.platform == "win32", reason="no socket activation on Windows")
@pytest.mark.parametrize(
    ("options", "said"),
    [
        pytest.param(["--ports", WEB, "--ready", "port"], "by port proves nothing", id="port"),
        pytest.param([], "--socket needs the family's port range", id="no-ports"),
    ],
)
def test_a_socket_that_cannot_work_is_a_usage_error(
    tmp_path: Path, options: list[str], said: str
) -> None:
    """Refused before anything is touched: not even the root is made."""
    root = tmp_path / "root"
    argv = [PY, "-m", "tenure", "run", "--family", "web", "--version", "1.0", "--socket"]
    done = subprocess.run(
        [*argv, *options, "--", PY, "-c", "pass"],
        env=env_for(root),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert said in done.stderr
    assert not root.exists()


def sleeper(registry: ProcessRegistry) -> subprocess.Popen[bytes]:
    return registry.spawn([PY, "-c", "import time; time.sleep(120)"])


@LINUX_ONLY
def test_a_receiver_takes_nothing_from_a_process_it_does_not_expect(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """The successor waits for the holder it superseded: an offer from any other pid (here
    this test's) is read no further, and nothing is received."""
    other = sleeper(proc_registry)
    receiver = handover.Receiver(tmp_path, "web", other.pid)
    assert receiver.path is not None
    with handover.listen_on(0) as sock:
        assert not handover.offer(tmp_path, "web", os.getpid(), sock, 5.0)
    assert receiver.take() is None
    assert not receiver_path_left(tmp_path)


def receiver_path_left(root: Path) -> list[str]:
    return os.listdir(root / handover.HANDOVER_DIR)


@LINUX_ONLY
def test_a_socket_is_not_offered_to_a_stranger_at_the_successors_name(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """A process listening at the name of the successor `pid` but that is not it gets no
    descriptor: the offer proves the peer's pid before sending."""
    successor = sleeper(proc_registry)
    where = tmp_path / handover.HANDOVER_DIR
    where.mkdir(mode=0o700)
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    squatter.bind(str(where / f"web.{successor.pid}.sock"))
    squatter.listen(1)
    got: list[bytes] = []

    def accept() -> None:
        conn, _ = squatter.accept()
        with conn:
            conn.settimeout(10)
            msg, fds, _flags, _addr = socket.recv_fds(conn, 64, 4)
            got.append(msg)
            assert fds == []

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    with handover.listen_on(0) as sock:
        assert not handover.offer(tmp_path, "web", successor.pid, sock, 5.0)
    t.join(10)
    squatter.close()
    assert got == [b""]  # the connection closed without a byte or a descriptor


@LINUX_ONLY
def test_a_handover_directory_others_may_enter_is_not_used(tmp_path: Path) -> None:
    """A `handover/` directory with a loose mode (or not a directory) is never listened in
    nor offered through: the upgrade is break before make, as without a socket."""
    where = tmp_path / handover.HANDOVER_DIR
    where.mkdir(mode=0o755)
    where.chmod(0o755)
    receiver = handover.Receiver(tmp_path, "web", os.getppid())
    assert receiver.path is None
    assert receiver.take() is None
    with handover.listen_on(0) as sock:
        assert not handover.offer(tmp_path, "web", os.getppid(), sock, 1.0)
    where.rmdir()
    (tmp_path / handover.HANDOVER_DIR).write_text("not a directory")
    assert handover.Receiver(tmp_path, "web", os.getppid()).path is None


@LINUX_ONLY
def test_a_deep_root_still_gets_a_handover_address(tmp_path: Path) -> None:
    """sun_path holds 108 bytes; a root deeper than that is reached through its directory's
    descriptor, and a socket is handed all the same."""
    deep = tmp_path.joinpath(*(["d" * 40] * 4))
    deep.mkdir(parents=True)
    receiver = handover.Receiver(deep, "web", os.getpid())
    assert receiver.path is not None
    assert len(os.fsencode(receiver.path)) > 108
    with handover.listen_on(0) as sock:
        assert handover.offer(deep, "web", os.getpid(), sock, 5.0)
        got = receiver.take()
        assert got is not None
        with got:
            assert handover.port_of(got) == handover.port_of(sock)


HELD = """
import http.server, sys, threading
import tenure

version, port = sys.argv[1], int(sys.argv[2])


class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = version.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


with tenure.hold("api", version=version, port=port, listen=True) as held:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer, bind_and_activate=False)
    server.socket.close()
    server.socket = held.socket
    threading.Thread(target=server.serve_forever, daemon=True).start()
    held.wait()
    server.shutdown()
    server.server_close()
"""


@pytest.mark.process
@LINUX_ONLY
def test_a_hold_daemon_hands_its_socket_to_the_version_that_supersedes_it(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`hold(listen=True)`: 2.0, started by hand, supersedes 1.0 and is handed its listening
    socket; a client connecting every 5 ms meanwhile is refused nothing and ends on 2.0."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    port = BLOCK.extra[1] if BLOCK.extra else 0
    old = proc_registry.spawn([PY, "-c", HELD, "1.0", str(port)], env=env)
    wait_for(lambda: answer(port) == "1.0", what="1.0 to answer")
    client = Client(port)
    try:
        wait_for(lambda: len(client.answers) >= 20, what="the client to be answered")
        proc_registry.spawn([PY, "-c", HELD, "2.0", str(port)], env=env)
        assert old.wait(timeout=60) == 0
        wait_for(lambda: client.answers[-1:] == ["2.0"], what="2.0 to answer")
    finally:
        client.stop()
    assert (client.refused, client.errors) == (0, [])
    assert set(client.answers) == {"1.0", "2.0"}
    assert ("1.0", "superseded") in [
        (t["version"], t["reason"]) for t in read_tombstones(root) if t["family"] == "api"
    ]


def install(path: Path, said: str) -> None:
    """Install a socket-activated server that answers `said`, as a package manager does: a
    new file renamed over the old one."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(
        f"#!{PY}\nimport runpy, sys\nsys.argv = ['activated.py', {said!r}]\n"
        f"runpy.run_path({SERVER[1]!r}, run_name='__main__')\n"
    )
    fresh.chmod(0o755)
    os.replace(fresh, path)


@pytest.mark.process
@pytest.mark.skipif(sys.platform == "win32", reason="no socket activation on Windows")
def test_a_new_install_restarts_the_child_on_the_kept_socket_refusing_nothing(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """With `--socket`, the restart from a new install happens on the socket the wrapper kept:
    the client connecting every 5 ms meanwhile is refused nothing, under the same lease."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    server = tmp_path / "server"
    install(server, "one")
    proc_registry.spawn([*RUN, "--version", "1.0", "--", str(server)], env=env)
    rec = held_when(root, "web", lambda r: r.child is not None and r.holder.port is not None)
    port = rec.holder.port or 0
    wait_for(lambda: answer(port) == "one", what="the first install to answer")
    client = Client(port)
    try:
        wait_for(lambda: len(client.answers) >= 20, what="the client to be answered")
        install(server, "two")
        wait_for(lambda: client.answers[-1:] == ["two"], what="the new install to answer")
    finally:
        client.stop()
    assert (client.refused, client.errors) == (0, [])
    now = held_when(root, "web", lambda r: r.child is not None and r.child != rec.child)
    assert (now.epoch, now.holder.port) == (rec.epoch, port)


def test_hold_async_listen_gives_a_listening_socket_on_its_port(tmp_path: Path) -> None:
    """`hold_async(listen=True)`: `held.socket` listens on the holder's port (bound here, no
    older version to hand it over), a connection to the port reaches it, and it is closed
    when the hold ends."""
    import asyncio

    import tenure
    from tenure.core.timing import Timing

    port = BLOCK.extra[1] if BLOCK.extra else 0

    async def main() -> int:
        async with tenure.hold_async(
            "api", version="1.0", root=tmp_path, port=port, listen=True,
            timing=Timing(ttl_s=3.0, heartbeat_s=0.5), handle_signals=False,
        ) as held:  # fmt: skip
            assert held.socket is not None
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                conn, _ = held.socket.accept()
                conn.close()
            return handover.port_of(held.socket)

    assert asyncio.run(main()) == port
    from tenure.adapters.ports import open_ports

    assert open_ports([port]) == []  # the hold closed the socket it gave when it ended
    with pytest.raises(tenure.ConfigError, match="listen=True needs a port"):
        asyncio.run(_no_port(tmp_path))


async def _no_port(root: Path) -> None:
    import tenure

    async with tenure.hold_async("api", version="1.0", root=root, listen=True):
        pass
