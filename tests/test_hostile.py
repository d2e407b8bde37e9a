"""Hostile input, round three: names, ranges, trickles, rebinding, interrupts, messages.

"Another user" is uid 65534 through `setpriv` (as root; skipped with a reason elsewhere).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import tenure
from tenure.adapters.store import LeaseStore
from tenure.core.codec import encode, parse
from tenure.core.record import Holder, LeaseRecord, LeaseState, Unreadable
from tenure.errors import ConfigError
from tenure.legacy.simulated import spawn_legacy
from tenure.testing import Fleet, ProcessRegistry, pid_gone
from tests.conftest import PY, block, block_fleet, linux_only, wait_for

BLOCK = block(__name__)
NOBODY = 65534
AS_ROOT = os.geteuid() == 0
SYSTEM_PY = "/usr/bin/python3"
as_another_user = pytest.mark.skipif(
    not (AS_ROOT and shutil.which("setpriv") and os.path.exists(SYSTEM_PY)),
    reason="acting as another user needs root, setpriv and a system python3",
)


@pytest.fixture
def fleet(tmp_path: Path, proc_registry: ProcessRegistry) -> Fleet:
    return block_fleet(
        BLOCK, tmp_path, proc_registry, TENURE_SIGNAL_JOURNAL=str(tmp_path / "signals.jsonl")
    )


def tenure_cli(
    *args: str, root: Path | None = None, prefix: tuple[str, ...] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    """`tenure ARGS` (after `prefix`, e.g. prlimit), in `root`, with `env` added."""
    full = {**os.environ, **env}
    if root is not None:
        full["TENURE_ROOT"] = str(root)
    return subprocess.run(
        [*prefix, PY, "-m", "tenure", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.exists() else set()


# --- 1. one family-name grammar ------------------------------------------------------------

BAD_NAMES = ["../../outside", "a/b", "../inroot", "Web", "my.daemon", "ünï", "new\nline", ""]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_a_family_name_that_ls_could_not_list_is_refused_before_any_file_is_touched(
    tmp_path: Path, name: str
) -> None:
    """`tenure run --family NAME` and the library refuse the name in one line (exit 2,
    ConfigError) and create nothing, inside the root or above it."""
    base = tmp_path / "home"
    base.mkdir()
    root = base / "a" / "root"
    run = tenure_cli("run", "--family", name, "--version", "1.0", "--", PY, "-c", "pass", root=root)
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1
    assert "is not a family name" in run.stderr
    with (
        pytest.raises(ConfigError, match="is not a family name"),
        tenure.hold(name, version="1.0", root=root),
    ):
        pass
    with pytest.raises(ConfigError, match="is not a family name"):
        tenure.ensure(name, [PY, "-c", "pass"], version="1.0", root=root)
    assert files_under(base) == set()


def test_a_record_naming_an_unlistable_family_is_unreadable() -> None:
    """The record codec holds to the same grammar: what it reads, `ls` can list."""
    good = LeaseRecord("web", 1, Holder(1, 1.0, "n", "1", None, 1.0), 15.0, 1.0, 0, LeaseState.HELD)
    assert parse(encode(good)) == good
    forged = encode(good).replace(b'"family": "web"', b'"family": "../web"')
    assert isinstance(parse(forged), Unreadable)


def test_logs_of_a_name_outside_the_grammar_is_a_usage_error(tmp_path: Path) -> None:
    """`tenure logs ../x` says so in one line and reads nothing."""
    run = tenure_cli("logs", "../x", root=tmp_path / "root")
    assert (run.returncode, run.stderr.count("\n")) == (2, 1), run.stderr


# --- 2. bounded scans ------------------------------------------------------------------------


def wide_record(root: Path, family: str, ports: tuple[int, int]) -> None:
    """A live holder's record with a wide range (as an older tenure could write it)."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    (root / "leases").mkdir(mode=0o700, exist_ok=True)
    holder = Holder(os.getpid(), 1.0, "w1de", "1.0", None, time.time())
    rec = LeaseRecord(family, 1, holder, 3600.0, time.time(), 0, LeaseState.RELEASED, ports=ports)
    (root / "leases" / f"{family}.json").write_bytes(encode(rec))


def test_a_wide_range_is_refused_at_the_entry_point(tmp_path: Path) -> None:
    """`tenure run --ports 2000-9000` is a usage error naming the limit."""
    argv = ["run", "--family", "web", "--version", "1", "--ports", "2000-9000"]
    run = tenure_cli(*argv, "--", PY, "-c", "pass", root=tmp_path / "root")
    assert run.returncode == 2, run.stderr
    assert "at most 1024" in run.stderr


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_a_wide_range_in_a_record_is_scanned_with_a_bounded_number_of_sockets(
    fleet: Fleet,
) -> None:
    """A record with 1,101 ports under a 256-descriptor limit: the doctor and ls scan it
    whole, a batch of sockets at a time; at a limit too low for one batch they say
    'not scanned' in the report, never a traceback."""
    wide_record(fleet.root, "wide", (20000, 21100))

    def doctor(nofile: int) -> subprocess.CompletedProcess[str]:
        limit = ("prlimit", f"--nofile={nofile}:{nofile}")
        return tenure_cli("auth", "doctor", "--json", prefix=limit, **fleet.env)

    roomy = doctor(256)
    assert "Traceback" not in roomy.stderr
    doc = json.loads(roomy.stdout)
    assert not [f for f in doc["findings"] if f["id"].startswith("not_scanned")]
    tight = doctor(60)
    assert "Traceback" not in tight.stderr
    ids = [f["id"] for f in json.loads(tight.stdout)["findings"]]
    assert "not_scanned:wide" in ids
    listed = tenure_cli("ls", "--json", prefix=("prlimit", "--nofile=60:60"), **fleet.env)
    assert listed.returncode == 0, listed.stderr
    (wide,) = [f for f in json.loads(listed.stdout)["families"] if f["family"] == "wide"]
    assert wide["doctor_says"].startswith("not scanned")


# --- 3. trickles from another user ---------------------------------------------------------------

TRICKLE = r"""
import socket, sys, threading, time
port, count = int(sys.argv[1]), int(sys.argv[2])

def trickle():
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /api/health HTTP/1.1\r\n")
            while True:
                time.sleep(3)
                s.sendall(b"X-Slow: 1\r\n")
        except OSError:
            time.sleep(0.05)  # dropped: reconnect, as a trickler does

for _ in range(count):
    threading.Thread(target=trickle, daemon=True).start()
print("trickling", flush=True)
time.sleep(600)
"""


@as_another_user
@linux_only("the uid of a loopback peer (sock_diag)")
def test_another_users_trickle_cannot_starve_the_control_plane(fleet: Fleet) -> None:
    """40 connections from uid 65534 sending a header line every 3 s (and reconnecting when
    dropped): the owner's `sync status` still finds the daemon answering."""
    started = fleet.start()
    trickler = fleet.registry.spawn(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            SYSTEM_PY,
            "-c",
            TRICKLE,
            str(started["port"]),
            "40",
        ],
        stdout=subprocess.PIPE,
        cwd="/",
    )
    assert trickler.stdout is not None
    assert trickler.stdout.readline().startswith(b"trickling")
    daemon = started["pid"]
    wait_for(lambda: open_connections(daemon) >= 16, what="the trickle to fill other users' slots")
    for _ in range(3):
        status = fleet.cli("sync", "status", "--json", check=False)
        assert json.loads(status.stdout)["state"] == "running", status.stdout
    trickler.kill()
    trickler.wait(30)


def open_connections(pid: int) -> int:
    import psutil

    return sum(c.status == psutil.CONN_ESTABLISHED for c in psutil.Process(pid).net_connections())


# --- 4. Host and Origin -------------------------------------------------------------------------


def raw_get(port: int, headers: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET /api/health HTTP/1.1\r\n{headers}Connection: close\r\n\r\n".encode())
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def test_the_control_plane_answers_only_its_own_host_and_origin(fleet: Fleet) -> None:
    """DNS rebinding: `Host: evil.example` or a foreign `Origin` get 403; loopback names, with
    or without the port, are answered."""
    port = fleet.start()["port"]
    assert raw_get(port, "Host: evil.example\r\n") == 403
    assert raw_get(port, "") == 403
    assert raw_get(port, f"Host: 127.0.0.1:{port}\r\nOrigin: http://evil.example\r\n") == 403
    for host in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"localhost:{port}"):
        assert raw_get(port, f"Host: {host}\r\n") == 200, host
    assert raw_get(port, f"Host: localhost:{port}\r\nOrigin: http://localhost:{port}\r\n") == 200


# --- 5. interrupted resets ----------------------------------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_reset_reports_exactly_what_it_swept(
    fleet: Fleet, sig: signal.Signals, code: int
) -> None:
    """SIGINT or SIGTERM in the middle of `--reset --force`: the JSON report lists every
    daemon it ended before the interrupt, and exits 130 / 143."""
    legacy = Path(fleet.env["SPEC_KITTY_HOME"])
    stale = [
        spawn_legacy(fleet.registry, port, legacy, "3.2.2", mode="ignore_term")[0]
        for port in range(BLOCK.sync[0] + 1, BLOCK.sync[0] + 6)
    ]
    doctor = subprocess.Popen(
        [PY, "-m", "tenure", "auth", "doctor", "--reset", "--force", "--json"],
        env=fleet.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    fleet.registry.popens.append(doctor)  # type: ignore[arg-type]
    journal = Path(fleet.env["TENURE_SIGNAL_JOURNAL"])

    def first_killed() -> bool:
        lines = journal.read_text().splitlines() if journal.exists() else []
        return any(json.loads(x)["action"] == "SIGKILL" for x in lines)

    wait_for(first_killed, what="the reset to kill its first daemon")
    doctor.send_signal(sig)
    out, err = doctor.communicate(timeout=60)
    assert doctor.returncode == code, err
    doc: dict[str, Any] = json.loads(out)
    assert doc["interrupted"] is True
    swept = {s["pid"] for s in doc["reset_result"]["swept"]}
    gone = {p.pid for p in stale if pid_gone(p.pid)}
    assert swept
    assert swept == gone
    assert len(gone) < len(stale)  # it did stop part-way


# --- 6. tracebacks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version",
    ["1" * 5000, "1." * 150, "1.0\x07", "1.0\n"],
    ids=["5000-digits", "300-chars", "bel", "newline"],
)
def test_a_version_a_record_cannot_carry_is_a_usage_error(tmp_path: Path, version: str) -> None:
    """`tenure run --version V` refuses it in one line (exit 2); `tenure.ensure` raises
    ConfigError; neither touches a file."""
    root = tmp_path / "root"
    run = tenure_cli("run", "--family", "web", "--version", version, "--", PY, "-c", "1", root=root)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    with pytest.raises(ConfigError):
        tenure.ensure("web", [PY, "-c", "1"], version=version, root=root)
    assert not root.exists()


def test_bad_timing_in_the_environment_is_a_usage_error_for_the_doctor(tmp_path: Path) -> None:
    """`TENURE_RETIRE_GRACE=abc tenure auth doctor` exits 2 in one line."""
    run = tenure_cli("auth", "doctor", root=tmp_path / "root", TENURE_RETIRE_GRACE="abc")
    assert (run.returncode, run.stderr.count("\n")) == (2, 1), run.stderr
    assert "TENURE_RETIRE_GRACE" in run.stderr


def test_hold_takes_a_root_given_as_a_string(tmp_path: Path) -> None:
    """`hold(root="...")` holds in that root, like a Path."""
    with tenure.hold("strroot", version="1.0", root=str(tmp_path / "root")) as held:
        assert held.epoch == 1
    rec = LeaseStore(tmp_path / "root", "strroot").read()
    assert isinstance(rec, LeaseRecord)
    assert rec.state is LeaseState.RELEASED


# --- 7. honest messages and pruning -------------------------------------------------------------


def test_an_error_of_several_lines_keeps_its_line_breaks_and_escapes_the_rest() -> None:
    """A start error's log tail arrives as lines, never as a literal `\\x0a`."""
    code = "from tenure.cli.out import error; error('start failed; its log says:\\nboom\\x1b[2J')"
    run = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=True)
    assert run.stderr == "error: start failed; its log says:\nboom\\x1b[2J\n"


def test_the_kit_tells_its_own_failure_from_a_command_it_cannot_run(tmp_path: Path) -> None:
    """A command that does not exist is a usage error (exit 2); the kit failing on its own
    work (here: no room for its temporary roots) exits 1 and says it judged nothing."""
    missing = subprocess.run(
        [PY, "-m", "tenure", "conformance", "--", str(tmp_path / "no-such-daemon")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2, missing.stderr
    assert "cannot run" in missing.stderr
    if not AS_ROOT:
        pytest.skip("a full disk is staged with a tmpfs, which needs root")
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,nr_inodes=8", "tmpfs", str(full)], check=True
    )
    try:
        for i in range(64):  # every inode taken: nothing more can be created there
            try:
                (full / f"filler{i}").touch()
            except OSError:
                break
        kit = tenure_cli("conformance", "--workdir", str(full), "--", PY, "-c", "pass")
    finally:
        subprocess.run(["umount", "-l", str(full)], check=False)
    assert kit.returncode == 1, kit.stderr
    assert "says nothing about the daemon" in kit.stderr


def test_ls_prunes_records_of_families_released_long_ago(tmp_path: Path) -> None:
    """A family released over 30 days ago loses its record (and `ls` says so); its lock and
    epoch floor stay, so its next holder continues the epochs; a recent one is kept."""
    root = tmp_path / "root"
    with tenure.hold("old", version="1.0", root=root):
        pass
    with tenure.hold("recent", version="1.0", root=root):
        pass
    store = LeaseStore(root, "old")
    rec = store.read()
    assert isinstance(rec, LeaseRecord)
    aged = LeaseRecord(
        **{**{f: getattr(rec, f) for f in rec.__slots__}, "renewed_at": time.time() - 31 * 86400}
    )  # type: ignore[arg-type]
    store.record_path.write_bytes(encode(aged))
    run = subprocess.run(
        [PY, "-m", "tenure", "ls", "--json"],
        env={**os.environ, "TENURE_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(run.stdout)["pruned"] == ["old"]
    assert "pruned the records of old" in run.stderr
    assert not store.record_path.exists()
    assert store.lock_path.exists()
    assert store.floor_path.exists()
    assert LeaseStore(root, "recent").record_path.exists()
    with tenure.hold("old", version="1.0", root=root) as held:
        assert held.epoch == 2
