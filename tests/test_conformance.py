"""The conformance kit proves the protocol on three daemons, and fails one that ignores it.

Each run starts the daemon command several times in fresh private roots (real processes,
real signals, real files) and reads the root as any reader would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tenure.adapters.platform import PROC_FACTS
from tenure.conformance import CHECKS, Report
from tests.conftest import HERE, block

BLOCK = block(__name__)
EXTRA = BLOCK.extra
assert EXTRA is not None
PERL_DAEMON = HERE.parent / "examples" / "perl" / "lease-daemon.pl"
HELD = HERE.parent / "examples" / "held.py"
SERVER = [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
needs_perl = pytest.mark.skipif(
    shutil.which("perl") is None
    or subprocess.run(["perl", "-MJSON::PP", "-e1"], check=False).returncode != 0,
    reason="perl with JSON::PP is not installed",
)


def tenure(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tenure", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def assert_conforms(report: Report) -> None:
    assert [c.name for c in report.checks] == list(CHECKS)
    assert report.passed, report.explain()


def test_tenures_reference_daemon_conforms(tmp_path: Path) -> None:
    """`tenure conformance` on the sync reference daemon (HTTP control plane, token)."""
    done = tenure(
        "conformance",
        "--family", "sync",
        "--json",
        "--",
        sys.executable, "-m", "tenure.daemon.main", "--tenure-root={root}",
        "--tenure-family=sync",
        TENURE_SYNC_PORTS=BLOCK.sync_env,
        SPEC_KITTY_HOME=str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["passed"] is True
    token = next(c for c in doc["checks"] if c["name"] == "keeps_token_private")
    assert "0600 token" in token["detail"]  # this daemon has a token, and it was looked for


@needs_perl
def test_a_perl_daemon_written_from_the_spec_conforms(
    tenure_conformance: Callable[..., Report],
) -> None:
    """Another language, no tenure code: flock, JSON, atomic rename, as docs/protocol says."""
    assert_conforms(tenure_conformance(["perl", str(PERL_DAEMON)], family="perl", ports=EXTRA))


def test_an_unmodified_server_under_tenure_run_conforms(tmp_path: Path) -> None:
    """`pytest --tenure-conformance="tenure run -- python -m http.server {port}"` passes."""
    command = " ".join([sys.executable, "-m", "tenure", "run", "--", *SERVER])
    done = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
            f"--tenure-conformance={command}",
            "--tenure-conformance-family=web",
            f"--tenure-conformance-ports={EXTRA[0]}-{EXTRA[1]}",
            "-rA",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for name in CHECKS:
        assert f"PASSED ::tenure-conformance[{name}]" in done.stdout


def test_a_tenure_hold_daemon_conforms(tenure_conformance: Callable[..., Report]) -> None:
    """The 15-line example daemon on `tenure.hold`."""
    report = tenure_conformance(
        [sys.executable, str(HELD), "{root}", "{version}"], family="indexer"
    )
    assert_conforms(report)


@needs_perl
def test_a_daemon_that_ignores_supersession_fails_clearly(
    tenure_conformance: Callable[..., Report],
) -> None:
    """Only the broken promise fails, and the message says what was seen."""
    report = tenure_conformance(
        ["perl", str(PERL_DAEMON), "--ignore-superseded"], family="perl", leave_grace_s=2.0
    )
    assert not report.passed
    assert [c.name for c in report.checks if not c.passed] == ["leaves_on_supersession"]
    detail = report.check("leaves_on_supersession").detail
    assert "ignores supersession" in detail
    assert "still running" in detail
    assert "FAIL leaves_on_supersession" in report.explain().splitlines()[1]


def test_the_cli_refuses_no_command_and_bad_timing() -> None:
    assert tenure("conformance").returncode == 2
    bad = tenure("conformance", "--ttl", "1", "--heartbeat", "0.9", "--", "true")
    assert bad.returncode == 2
    assert "--heartbeat" in bad.stderr
    portless = tenure("conformance", "--", "mydaemon", "--port", "{port}")
    assert portless.returncode == 2
    assert "--ports LO-HI" in portless.stderr
    missing = tenure("conformance", "--", "/nonexistent/daemon")
    assert missing.returncode == 2
    assert "cannot run '/nonexistent/daemon'" in missing.stderr
    beta = tenure("conformance", "--version", "1.0 beta", "--", "true")
    assert beta.returncode == 2
    assert "is not a PEP 440 version" in beta.stderr


def test_a_command_that_never_holds_fails_every_check_in_words() -> None:
    done = tenure("conformance", "--json", "--", sys.executable, "-c", "raise SystemExit(3)")
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    first = doc["checks"][0]
    assert first["name"] == "takes_lease"
    assert "exited with code 3 before holding the lease" in first["detail"]
    assert not any(c["passed"] for c in doc["checks"])


LEAKY = """
import os, subprocess, sys
import tenure

marker = sys.argv[1]
helper = [sys.executable, "-c", "import time; time.sleep(600)", marker]
kids = [subprocess.Popen(helper) for _ in range(5)]
kids.append(subprocess.Popen(helper, start_new_session=True))  # a setsid child too
with tenure.hold(os.environ["TENURE_FAMILY"], version=os.environ["TENURE_VERSION"]) as held:
    while not held.retiring.wait(0.05):
        with held.work():
            pass
os._exit(0)  # leaves its helpers running
"""

LOCKLESS = """
import contextlib, os
import tenure.adapters.store as store

store.locked = lambda *_a, **_k: contextlib.nullcontext()  # every lock removed
import tenure

with tenure.hold(os.environ["TENURE_FAMILY"], version=os.environ["TENURE_VERSION"]) as held:
    while not held.retiring.wait(0.05):
        with held.work():
            pass
"""


def marked(marker: str) -> list[int]:
    """Live processes whose argv carries `marker`."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if marker.encode() in argv:
                found.append(int(name))
    return found


def test_a_daemon_that_leaves_processes_behind_fails_and_the_kit_ends_them() -> None:
    """Six helpers (one in its own session) outlive each leave: `leaves_nothing_behind` fails,
    naming them, and no helper is running once the kit is done."""
    marker = f"leaky-helper-{os.getpid()}"
    done = tenure("conformance", "--json", "--", sys.executable, "-c", LEAKY, marker)
    assert done.returncode == 1, done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["leaves_on_sigterm"]["passed"]
    behind = checks["leaves_nothing_behind"]
    assert not behind["passed"]
    assert marker in behind["detail"]
    assert marked(marker) == []


def test_a_daemon_that_writes_without_the_lock_fails_takes_the_lock() -> None:
    """A `tenure.hold` daemon with its locking removed renews while the kit holds the flock."""
    done = tenure("conformance", "--json", "--", sys.executable, "-c", LOCKLESS)
    assert done.returncode == 1, done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert not checks["takes_the_lock"]["passed"]
    assert "writes without the lock" in checks["takes_the_lock"]["detail"]
    assert [n for n, c in checks.items() if not c["passed"]] == ["takes_the_lock"]


HANDWRITTEN = """
import json, os, sys, time
from tenure.adapters.procinfo import own_identity

me = own_identity()
where = {"boot_id": me.where.boot_id, "pid_ns": me.where.pid_ns,
         "time_ns": me.where.time_ns, "host": "h"}
WRONG
holder = {"pid": os.getpid(), "create_time": me.create_time, "start_ticks": me.start_ticks,
          "nonce": "0" * 16, "version": "1.0", "port": None, "started_at": time.time(),
          "where": where}
family, root = os.environ["TENURE_FAMILY"], os.environ["TENURE_ROOT"]
doc = {"protocol": "tenure/1", "family": family, "epoch": 1, "holder": holder, "ttl_s": 2.0,
       "renewed_at": time.time(), "seq": 0, "state": "held", "superseded_by": None}
path = os.path.join(root, "leases", family + ".json")
with open(path + ".tmp", "w") as f:
    f.write(json.dumps(doc))
os.replace(path + ".tmp", path)
time.sleep(120)
"""


@pytest.mark.skipif(not PROC_FACTS, reason="holder.where is read from /proc (Linux, not portable)")
@pytest.mark.parametrize(
    ("wrong", "said"),
    [
        pytest.param(
            'where["pid_ns"] = str(where["pid_ns"])',
            "its record is unreadable: wrong shape: holder.where.pid_ns: expected an integer",
            id="pid_ns-as-a-string",
        ),
        pytest.param(
            'del where["time_ns"]',
            "holder judged foreign (lease.md#foreign): where.time_ns None",
            id="time_ns-omitted",
        ),
        pytest.param(
            'where["boot_id"] += "\\\\n"',
            "holder judged foreign (lease.md#foreign): where.boot_id",
            id="boot_id-with-its-newline",
        ),
    ],
)
def test_a_wrong_record_encoding_is_named_at_once_and_the_rest_not_run(
    wrong: str, said: str
) -> None:
    """A record the kit cannot read, or reads as a holder that lives elsewhere, fails
    `takes_lease` naming the field — not after a timeout, and not as a false cause in a later
    check: the remaining sessions are not run."""
    script = HANDWRITTEN.replace("WRONG", wrong)
    done = tenure("conformance", "--json", "--", sys.executable, "-c", script)
    assert done.returncode == 1, done.stderr
    checks = json.loads(done.stdout)["checks"]
    assert checks[0]["name"] == "takes_lease"
    assert said in checks[0]["detail"]
    later = [c["detail"] for c in checks[1:-1]]
    assert later
    assert all(d.startswith("not run:") for d in later)


def test_a_daemon_that_never_takes_the_lease_is_waited_for_once(tmp_path: Path) -> None:
    """It runs and never writes a record: the first session's start timeout says so, and the
    other sessions are not run (they would wait the same timeout again)."""
    from tenure.conformance import Options, run_conformance

    opts = Options(start_timeout_s=3.0, workdir=tmp_path)
    report = run_conformance([sys.executable, "-c", "import time; time.sleep(120)"], opts)
    assert not report.passed
    first, *rest = report.checks
    assert "never held the lease within 3s" in first.detail
    assert all("it never took the lease" in c.detail for c in rest[6:-1])


RENEWER = """
import fcntl, json, os, sys, time
from tenure.adapters.procinfo import own_identity

every, ttl = float(sys.argv[1]), float(sys.argv[2])
off = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0  # create_time off by this much
me = own_identity()
where = None if me.where is None else {"boot_id": me.where.boot_id, "pid_ns": me.where.pid_ns,
                                        "time_ns": me.where.time_ns, "host": "h"}
family, root = os.environ["TENURE_FAMILY"], os.environ["TENURE_ROOT"]
leases = os.path.join(root, "leases")
doc = {"protocol": "tenure/1", "family": family, "epoch": 1, "ttl_s": ttl, "seq": 0,
       "state": "held", "superseded_by": None, "renewed_at": time.time(),
       "holder": {"pid": os.getpid(), "create_time": me.create_time + off,
                  "start_ticks": me.start_ticks, "nonce": "0" * 16, "version": "1.0",
                  "port": None, "started_at": time.time(), "where": where}}


def put(name, data):
    fd = os.open(os.path.join(leases, name + ".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data.encode())
    os.close(fd)
    os.replace(os.path.join(leases, name + ".tmp"), os.path.join(leases, name))


lock = os.open(os.path.join(leases, family + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
put(family + ".epoch", "1\\n")
while True:  # renews from memory: whatever else the record held is dropped
    fcntl.flock(lock, fcntl.LOCK_EX)
    doc["seq"] += 1
    doc["renewed_at"] = time.time()
    put(family + ".json", json.dumps(doc))
    fcntl.flock(lock, fcntl.LOCK_UN)
    time.sleep(every)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the renewer uses fcntl and /proc")
@pytest.mark.parametrize(
    ("every", "ttl", "check", "said", "off"),
    [
        pytest.param("0.25", "2", "renews", "dropped the key", "0", id="renews-from-memory"),
        pytest.param("0.67", "2", "renews", "renews every 0.6", "0", id="heartbeat-of-ttl-over-3"),
        pytest.param("0.25", "3", "takes_lease", "ttl_s 3, not the 2", "0", id="its-own-ttl"),
        pytest.param(
            "0.25",
            "2",
            "takes_lease",
            "is not the process's",
            "-3600",
            id="create-time-an-hour-off",
        ),
    ],
)
def test_the_kit_names_a_daemon_that_ignores_its_timing_or_drops_keys(
    tmp_path: Path, every: str, ttl: str, check: str, said: str, off: str
) -> None:
    """The guesses that used to pass: a renewal written from memory (unknown keys dropped), a
    heartbeat other than TENURE_HEARTBEAT, a TTL other than TENURE_LEASE_TTL, a create_time an
    hour off beside the right start_ticks."""
    from tenure.conformance import Options
    from tenure.conformance.holding import renews, takes_lease
    from tenure.conformance.session import Session

    s = Session([sys.executable, "-c", RENEWER, every, ttl, off], Options(), tmp_path, "t")
    try:
        d = s.spawn()
        rec = s.holding(d)
        found = takes_lease(s, d, rec, 0.0) if check == "takes_lease" else renews(s, rec)
    finally:
        s.close()
    assert not found.passed
    assert said in found.detail


LEAVER = """
import os, signal, sys
import tenure
from tenure.holder.governor import RetireReason

mode = sys.argv[1]
with tenure.hold(os.environ["TENURE_FAMILY"], version="1.0", handle_signals=mode != "shutdown") as held:
    if mode == "shutdown":  # SIGTERM recorded as `shutdown`, not `signal`
        signal.signal(signal.SIGTERM, lambda *_: held.governor.retire(RetireReason.SHUTDOWN))
    held.retiring.wait()
sys.exit(1 if mode == "exit-1" else 0)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is graceful on POSIX only")
@pytest.mark.parametrize(
    ("mode", "said"),
    [
        pytest.param("exit-1", "it exited 1 after leaving", id="exit-1-after-retiring"),
        pytest.param("shutdown", "tombstone reason 'shutdown', expected 'signal'", id="shutdown"),
    ],
)
def test_the_kit_names_a_wrong_exit_code_or_tombstone_reason_on_sigterm(
    tmp_path: Path, mode: str, said: str
) -> None:
    """After SIGTERM a holder MUST exit 0 and record reason `signal` (root.md#tombstones);
    both guesses used to pass `leaves_on_sigterm`."""
    from tenure.conformance import Options
    from tenure.conformance.leaving import sigterm
    from tenure.conformance.session import Session

    s = Session([sys.executable, "-c", LEAVER, mode], Options(), tmp_path, "t")
    try:
        d = s.spawn()
        rec = s.holding(d)
        found = sigterm(s, d, rec)
    finally:
        s.close()
    assert not found.passed
    assert said in found.detail
