"""Measure tenure's speed and memory targets; prints a table and writes benchmarks/latest.json.

Not part of the test run. Uses real processes and loopback ports in the families' real ranges,
in a temporary root it removes; stops everything it started, by pid.
Usage: python benchmarks/run.py [--runs N] [--idle-seconds S] [--only NAME…]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

import tenure
from tenure.adapters.http import health
from tenure.adapters.ports import open_ports
from tenure.adapters.registry import ProcessRegistry
from tenure.adapters.root import ensure_root
from tenure.adapters.scopes import resolve_scope
from tenure.adapters.store import LeaseStore
from tenure.core.families import SYNC
from tenure.core.record import Holder, LeaseRecord, LeaseState
from tenure.holder.governor import Governor, RetireReason
from tenure.hygiene.survey import legacy_root, survey
from tenure.legacy.simulated import spawn_legacy, spawn_other
from tenure.requester.start import start

HERE = Path(__file__).parent
TARGETS = {
    "scan_empty_s": 0.1,
    "scan_18_legacy_s": 0.1,
    "scan_18_legacy_wedged_s": 0.6,
    "cold_start_s": 0.2,
    "supersession_s": 1.0,
    "sigkill_takeover_lease_s": 0.2,
    "sigkill_takeover_cli_s": 0.2,
    "concurrent_32_start_s": 1.5,
    "idle_rss_mb": 20.0,
    "cli_help_s": 0.3,
    "ensure_reuse_ms": 0.2,
    "import_tenure_s": 0.05,
    "supersession_http_s": 1.0,
    "supersession_no_http_heartbeats": 1.0,
    "supersession_no_http_heartbeats_max": 1.0,
    "upgrade_run_serving_s": 0.5,
    "upgrade_ensure_serving_s": 0.5,
    "upgrade_socket_serving_s": 0.5,
    "scopes_500_ls_s": 1.0,
    "scopes_500_doctor_s": 1.0,
}
# Counts that must stay at zero: what a client saw during a `--socket` upgrade (issue 34).
NONE_OF = ("upgrade_socket_refused", "upgrade_socket_failed")
# Measures where more is better: the doctor's speed against the fastest peer's (issue 23).
AT_LEAST = {"doctor_vs_fastest_peer_x": 5.0}
PEER_VERSIONS = ("3.2.4", "3.2.7")  # spec-kitty-cli's doctors, each in its own venv
ADOPT_PORTS = (9500, 9504)  # a custom family's range, outside both built-in ones


def median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def tenure_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENURE_")}
    env["TENURE_ROOT"] = str(root)
    env["SPEC_KITTY_HOME"] = str(root.parent / "legacy")
    return env


def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "tenure", *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.002)
    raise TimeoutError(f"pid {pid} still alive")


def spawn_fleet(reg: ProcessRegistry, legacy: Path) -> None:
    """18 legacy daemons 3.2.2 to 3.2.4 on 9401-9418 and a third-party HTTP server on 9419:
    the standard fleet before its wedged listener (9420) and raw TCP listener (9421)."""
    versions = ["3.2.2", "3.2.3", "3.2.4"]
    for i in range(18):
        spawn_legacy(reg, 9401 + i, legacy, versions[i % 3])
    spawn_other(reg, "third_party_http", 9419)


def bench_scans(reg: ProcessRegistry, work: Path, runs: int) -> dict[str, float]:
    root, legacy = work / "root", work / "legacy"
    root.mkdir(mode=0o700)
    legacy.mkdir()
    os.environ["SPEC_KITTY_HOME"] = str(legacy)
    ports = range(SYNC.lo, SYNC.hi + 1)

    def scan_once() -> float:
        return survey(SYNC, root, legacy_root()).elapsed_s

    out = {"scan_empty_s": median_of(runs, scan_once)}
    spawn_fleet(reg, legacy)
    out["scan_18_legacy_s"] = median_of(runs, scan_once)
    spawn_legacy(reg, 9420, legacy, "3.2.4", mode="wedged")
    out["scan_18_legacy_wedged_s"] = median_of(runs, scan_once)
    assert len(survey(SYNC, root, legacy_root()).records) == 20, ports
    reg.stop_all()
    return out


def daemon_ready_s(work: Path) -> float:
    """The daemon alone: spawned directly until it answers health as the holder (the part of
    `cold_start_s` that is not the CLI's own start nor the wait for the reaper's report)."""
    root = work / "ready"
    root.mkdir(mode=0o700, exist_ok=True)
    env = tenure_env(root) | {"TENURE_FAMILY": "sync"}
    argv = [
        sys.executable,
        "-m",
        "tenure.daemon.main",
        f"--tenure-root={root}",
        "--tenure-family=sync",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            rec = LeaseStore(root, "sync").read()
            if isinstance(rec, LeaseRecord) and rec.holder.pid == proc.pid and rec.holder.port:
                doc = health(rec.holder.port)
                if doc is not None and doc.get("pid") == proc.pid:
                    return time.perf_counter() - t0
            if proc.poll() is not None or time.perf_counter() - t0 > 30:
                raise RuntimeError("the daemon did not start")
            time.sleep(0.002)
    finally:
        proc.terminate()  # our own unreaped child
        proc.wait(10)


def bench_daemons(reg: ProcessRegistry, work: Path, runs: int) -> dict[str, float]:
    cold, supersede, takeover, lease_takeover = [], [], [], []
    ready = [daemon_ready_s(work) for _ in range(runs)]
    for i in range(runs):
        root = work / f"d{i}"
        root.mkdir(mode=0o700)
        env = tenure_env(root)
        t0 = time.perf_counter()
        first = cli(env, "sync", "start")
        cold.append(time.perf_counter() - t0)
        reg.track(first["pid"])
        env["TENURE_VERSION"] = "99.0"
        t0 = time.perf_counter()
        newer = cli(env, "sync", "start")
        wait_gone(first["pid"])
        supersede.append(time.perf_counter() - t0)
        reg.track(newer["pid"])
        t0 = time.perf_counter()
        os.kill(newer["pid"], signal.SIGKILL)
        wait_gone(newer["pid"])
        gov = Governor(root, "sync", "99.0")
        rec = gov.acquire()
        lease_takeover.append(time.perf_counter() - t0)
        assert rec.epoch == newer["epoch"] + 1
        gov.retire(RetireReason.SHUTDOWN, drain=False)
        gov.wait_retired(5)
        # The same takeover through the CLI: spawning a new daemon process is the bulk of it.
        reg.track(cli(env, "sync", "start")["pid"])
        os.kill(daemon_pids(root)[0], signal.SIGKILL)
        t0 = time.perf_counter()
        third = cli(env, "sync", "start")
        takeover.append(time.perf_counter() - t0)
        reg.track(third["pid"])
        reg.stop_all()
    return {
        "cold_start_daemon_ready_s": statistics.median(ready),
        "cold_start_s": statistics.median(cold),
        "supersession_s": statistics.median(supersede),
        "sigkill_takeover_lease_s": statistics.median(lease_takeover),
        "sigkill_takeover_cli_s": statistics.median(takeover),
    }


def daemon_pids(root: Path) -> list[int]:
    marker = f"--tenure-root={root.resolve()}"
    return [
        p.pid
        for p in psutil.process_iter(["cmdline", "status"])
        if marker in (p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE
    ]


def bench_concurrent(reg: ProcessRegistry, work: Path, runs: int) -> dict[str, float]:
    walls, left = [], []
    for i in range(runs):
        root = work / f"c{i}"
        root.mkdir(mode=0o700)
        env = tenure_env(root)
        argv = [sys.executable, "-m", "tenure", "sync", "start", "--json"]
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            for _ in range(32)
        ]
        for p in procs:
            p.communicate()
        walls.append(time.perf_counter() - t0)
        pids = daemon_pids(root)
        left.append(len(pids))
        for pid in pids:
            reg.track(pid)
        reg.stop_all()
    return {
        "concurrent_32_start_s": statistics.median(walls),
        "concurrent_32_daemons_left": max(left),
    }


def bench_idle(reg: ProcessRegistry, work: Path, seconds: float) -> dict[str, float]:
    root = work / "idle"
    root.mkdir(mode=0o700)
    info = cli(tenure_env(root), "sync", "start")
    reg.track(info["pid"])
    proc = psutil.Process(info["pid"])
    cpu0 = proc.cpu_times()
    time.sleep(seconds)
    cpu1 = proc.cpu_times()
    rss = proc.memory_info().rss / 1e6
    reg.stop_all()
    used = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {"idle_rss_mb": rss, "idle_cpu_percent": 100 * used / seconds, "idle_window_s": seconds}


def bench_cli(runs: int, work: Path) -> dict[str, float]:
    """`tenure --help`, a command with no daemon to find, and `import tenure` (the library)."""

    def timed(*argv: str) -> Callable[[], float]:
        def once() -> float:
            t0 = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=False, env=tenure_env(work / "none"))
            return time.perf_counter() - t0

        once()
        return once

    py = sys.executable
    rss = "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')))"

    def resident_mb(code: str) -> float:
        out = subprocess.run([py, "-c", code], capture_output=True, text=True, check=True)
        return int(out.stdout.strip()) / 1024

    breakdown: dict[str, float] = {}
    if sys.platform == "linux":
        # Where the cold start and the daemon's memory go: the interpreter alone, then with
        # everything the daemon imports before it serves.
        breakdown = {
            "python_start_s": median_of(runs, timed(py, "-c", "pass")),
            "daemon_import_s": median_of(runs, timed(py, "-c", "import tenure.daemon.main")),
            "start_import_s": median_of(
                runs, timed(py, "-c", "import tenure.cli.hot, tenure.requester.start")
            ),
            "python_rss_mb": resident_mb(rss),
            "daemon_import_rss_mb": resident_mb(f"import tenure.daemon.main\n{rss}"),
        }
    return breakdown | {
        "cli_help_s": median_of(runs, timed(py, "-m", "tenure", "--help")),
        # A full command: typer >= 0.29 builds its parameters with pydantic (~60 ms).
        "cli_status_s": median_of(runs, timed(py, "-m", "tenure", "sync", "status")),
        # What a host tool pays to import the library: no typer, no rich, no pydantic.
        "import_tenure_s": median_of(runs, timed(py, "-c", "import tenure; tenure.ensure")),
    }


def wait_holder(root: Path, family: str, not_pid: int | None = None) -> int:
    """The pid holding `family`'s lease once one (other than `not_pid`) does."""
    store = LeaseStore(root, family)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rec = store.read()
        held = isinstance(rec, LeaseRecord) and rec.state is LeaseState.HELD
        if held and isinstance(rec, LeaseRecord) and rec.holder.pid != not_pid:
            return rec.holder.pid
        time.sleep(0.005)
    raise TimeoutError(f"nobody holds {family}")


def bench_adoption(reg: ProcessRegistry, work: Path, runs: int) -> dict[str, float]:
    """The public API: `tenure.ensure` reuse in-process (against the reference client's
    `start`), supersession with and without a control plane, and `tenure run`'s."""
    heartbeat = 0.5
    saved = dict(os.environ)
    os.environ.update({"TENURE_LEASE_TTL": "3", "TENURE_HEARTBEAT": str(heartbeat)})
    served = [sys.executable, str(HERE.parent / "examples" / "served.py")]
    calls = 200
    phase = random.Random(1)
    reuse, start_reuse, http, no_http, released, run_old = [], [], [], [], [], []
    try:
        for i in range(runs):
            root = ensure_root(work / f"a{i}")
            first = tenure.ensure(
                "indexer", [*served, "1.0"], version="1.0", ports=ADOPT_PORTS, root=root
            )
            reg.track(first.pid)
            t0 = time.perf_counter()
            for _ in range(calls):
                assert (
                    tenure.ensure(
                        "indexer", [*served, "1.0"], version="1.0", ports=ADOPT_PORTS, root=root
                    ).action
                    == "reused"
                )
            reuse.append((time.perf_counter() - t0) / calls * 1000)
            # A newer version, through the record only (this daemon serves no control plane):
            # from the request until the old holder released its lease (in heartbeats), and
            # until its process is gone (seconds).
            newer: list[tenure.Ensured] = []
            asker = threading.Thread(target=ensure_into, args=(newer, root, [*served, "2.0"]))
            time.sleep(phase.uniform(0, heartbeat))  # ask at any point of the heartbeat cycle
            t0 = time.perf_counter()
            asker.start()
            wait_released(root, "indexer", first.epoch)
            released.append((time.perf_counter() - t0) / heartbeat)
            wait_gone(first.pid)
            no_http.append(time.perf_counter() - t0)
            asker.join()
            reg.track(newer[0].pid)
            # The reference daemon: record mark plus its authenticated /api/retire. Its version
            # comes from TENURE_VERSION, as a real upgrade's would from the package.
            os.environ["TENURE_VERSION"] = "1.0"
            old = start(SYNC, root, "1.0")
            reg.track(old.pid)
            t0 = time.perf_counter()
            for _ in range(calls):
                assert start(SYNC, root, "1.0").action == "reused"
            start_reuse.append((time.perf_counter() - t0) / calls * 1000)
            os.environ["TENURE_VERSION"] = "2.0"
            t0 = time.perf_counter()
            reg.track(start(SYNC, root, "2.0").pid)
            wait_gone(old.pid)
            http.append(time.perf_counter() - t0)
            del os.environ["TENURE_VERSION"]
            # `tenure run` around an unmodified server: the old child gone after a newer run.
            argv = [
                sys.executable,
                "-m",
                "tenure",
                "run",
                "--family",
                "web",
                "--ports",
                "9500-9504",
            ]
            server = ["--", sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
            env = {**os.environ, "TENURE_ROOT": str(root)}
            quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            reg.spawn([*argv, "--version", "1.0", *server], **quiet)
            wrapper = wait_holder(root, "web")
            child = wait_child(root)
            reg.track(child)
            t0 = time.perf_counter()
            reg.spawn([*argv, "--version", "2.0", *server], **quiet)
            wait_gone(child)
            wait_gone(wrapper)
            run_old.append(time.perf_counter() - t0)
            reg.stop_all()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {
        "ensure_reuse_ms": statistics.median(reuse),
        "start_reuse_ms": statistics.median(start_reuse),
        "supersession_http_s": statistics.median(http),
        "supersession_no_http_heartbeats": statistics.median(released),
        "supersession_no_http_heartbeats_max": max(released),
        "supersession_no_http_gone_s": statistics.median(no_http),
        "run_supersession_s": statistics.median(run_old),
    }


class Client(threading.Thread):
    """A client connecting to `port` every 5 ms until stopped; counts the refusals, and with
    `http` asks each time and counts the exchanges that failed otherwise."""

    def __init__(self, port: int, *, http: bool = False) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.http = http
        self.refused = 0
        self.failed = 0
        self.last: str | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.005):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10.0) as s:
                    if self.http:
                        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                        answer = b"".join(iter(lambda: s.recv(4096), b""))
                        self.last = answer.rsplit(b"\r\n\r\n", 1)[-1].decode()
            except ConnectionRefusedError:
                self.refused += 1
            except OSError:
                self.failed += 1

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.refused


def wait_serving(root: Path, family: str, version: str) -> int:
    """The port of `family`'s holder once it is `version` and its port accepts connections."""
    store = LeaseStore(root, family)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rec = store.read()
        if (
            isinstance(rec, LeaseRecord)
            and rec.state is LeaseState.HELD
            and rec.holder.version == version
            and rec.holder.port is not None
            and open_ports([rec.holder.port])
        ):
            return rec.holder.port
        time.sleep(0.002)
    raise TimeoutError(f"{family} {version} not serving")


def bench_upgrades(reg: ProcessRegistry, work: Path, runs: int) -> dict[str, float]:
    """At the default timing (TTL 15 s, heartbeat 5 s): from the start of a newer version until
    it serves, for `tenure run` around an unmodified server and for `tenure.ensure` of a
    `tenure.hold` daemon; and how many connections a client making one every 5 ms saw refused
    meanwhile (break before make: the old server stops before the new one binds)."""
    saved = dict(os.environ)
    for name in ("TENURE_LEASE_TTL", "TENURE_HEARTBEAT", "TENURE_VERSION"):
        os.environ.pop(name, None)
    served = [sys.executable, str(HERE.parent / "examples" / "served.py")]
    run_s, run_refused, ensure_s, ensure_refused = [], [], [], []
    sockets: list[tuple[float, int, int]] = []
    argv = [sys.executable, "-m", "tenure", "run", "--family", "web", "--ports", "9500-9504"]
    server = ["--", sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
    try:
        for i in range(runs):
            root = ensure_root(work / f"u{i}")
            quiet = {
                "env": {**os.environ, "TENURE_ROOT": str(root)},
                "stdout": subprocess.DEVNULL,
                "stderr": subprocess.DEVNULL,
            }
            reg.spawn([*argv, "--version", "1.0", *server], **quiet)
            client = Client(wait_serving(root, "web", "1.0"))
            client.start()
            t0 = time.perf_counter()
            reg.spawn([*argv, "--version", "2.0", *server], **quiet)
            wait_serving(root, "web", "2.0")
            run_s.append(time.perf_counter() - t0)
            run_refused.append(client.stop())
            reg.stop_all()
            first = tenure.ensure(
                "indexer", [*served, "1.0"], version="1.0", ports=ADOPT_PORTS, root=root
            )
            reg.track(first.pid)
            client = Client(wait_serving(root, "indexer", "1.0"))
            client.start()
            t0 = time.perf_counter()
            new = tenure.ensure(
                "indexer", [*served, "2.0"], version="2.0", ports=ADOPT_PORTS, root=root
            )
            reg.track(new.pid)
            wait_serving(root, "indexer", "2.0")
            ensure_s.append(time.perf_counter() - t0)
            ensure_refused.append(client.stop())
            reg.stop_all()
            sockets.append(_socket_upgrade(reg, root, quiet))
            reg.stop_all()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {
        "upgrade_run_serving_s": statistics.median(run_s),
        "upgrade_run_refused": statistics.median(run_refused),
        "upgrade_ensure_serving_s": statistics.median(ensure_s),
        "upgrade_ensure_refused": statistics.median(ensure_refused),
        "upgrade_socket_serving_s": statistics.median(s[0] for s in sockets),
        "upgrade_socket_refused": max(s[1] for s in sockets),
        "upgrade_socket_failed": max(s[2] for s in sockets),
    }


def _socket_upgrade(
    reg: ProcessRegistry, root: Path, quiet: dict[str, Any]
) -> tuple[float, int, int]:
    """`tenure run --socket` 1.0 → 2.0 under an HTTP client every 5 ms: from the start of
    2.0 until the client is answered by 2.0, and what it saw refused or failed."""
    argv = [sys.executable, "-m", "tenure", "run", "--family", "api", "--socket"]
    argv += ["--ports", "9505-9509"]
    server = ["--", sys.executable, str(HERE.parent / "examples" / "activated.py")]
    old = reg.spawn([*argv, "--version", "1.0", *server, "1.0"], **quiet)
    client = Client(wait_serving(root, "api", "1.0"), http=True)
    client.start()
    while client.last != "1.0":
        time.sleep(0.002)
    t0 = time.perf_counter()
    reg.spawn([*argv, "--version", "2.0", *server, "2.0"], **quiet)
    deadline = time.monotonic() + 60
    while client.last != "2.0" and time.monotonic() < deadline:
        time.sleep(0.002)
    took = time.perf_counter() - t0
    # The old child's drain is part of an upgrade too: count until the old wrapper is gone.
    old.wait(timeout=60)
    refused = client.stop()
    return took, refused, client.failed


def ensure_into(out: list[tenure.Ensured], root: Path, command: list[str]) -> None:
    out.append(tenure.ensure("indexer", command, version="2.0", ports=ADOPT_PORTS, root=root))


def wait_released(root: Path, family: str, epoch: int) -> None:
    """Until the holder at `epoch` released its lease (or someone else holds it)."""
    store = LeaseStore(root, family)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rec = store.read()
        if not isinstance(rec, LeaseRecord):
            return
        if rec.epoch != epoch or rec.state is LeaseState.RELEASED:
            return
        time.sleep(0.002)
    raise TimeoutError(f"{family} epoch {epoch} still held")


def wait_child(root: Path) -> int:
    """The child a `tenure run` holder named in its record."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rec = LeaseStore(root, "web").read()
        if isinstance(rec, LeaseRecord) and rec.child is not None:
            return rec.child.pid
        time.sleep(0.005)
    raise TimeoutError("no child recorded")


def peer_doctor(peers: Path, version: str) -> Path | None:
    """spec-kitty-cli `version`'s command in a venv under `peers`, installed on first use from
    the package index (with typer 0.24.1, which its CLI needs); None when it cannot be had."""
    venv = peers / f"spec-kitty-{version}"
    exe = venv / ("Scripts" if sys.platform == "win32" else "bin") / "spec-kitty"
    if not exe.exists():
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([*pip, f"spec-kitty-cli=={version}", "typer==0.24.1"], check=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"spec-kitty-cli {version} not measured: {exc}", file=sys.stderr)
            return None
    return exe


def bench_doctor(reg: ProcessRegistry, work: Path, runs: int, peers: Path) -> dict[str, float]:
    """`tenure auth doctor --json` against spec-kitty's own `auth doctor --json`, interleaved,
    on the standard fleet: 18 legacy daemons 3.2.2 to 3.2.4, a third-party HTTP server, a wedged
    legacy listener and a raw TCP listener, all in the sync range."""
    legacy, root, home = work / "fleet-legacy", work / "fleet-root", work / "fleet-home"
    legacy.mkdir()
    root.mkdir(mode=0o700)
    home.mkdir()
    commands = {"doctor_fleet_s": [sys.executable, "-m", "tenure", "auth", "doctor", "--json"]}
    for version in PEER_VERSIONS:
        exe = peer_doctor(peers, version)
        if exe is not None:
            commands[f"doctor_peer_{version}_s"] = [str(exe), "auth", "doctor", "--json"]
    saved = os.environ.get("SPEC_KITTY_HOME")
    os.environ["SPEC_KITTY_HOME"] = str(legacy)
    spawn_fleet(reg, legacy)
    spawn_legacy(reg, 9420, legacy, "3.2.4", mode="wedged")
    spawn_other(reg, "raw_tcp", 9421)
    env = tenure_env(root) | {"SPEC_KITTY_HOME": str(legacy), "HOME": str(home)}
    times: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for _ in range(runs):
            for name, argv in commands.items():
                t0 = time.perf_counter()
                done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
                times[name].append(time.perf_counter() - t0)
                if name == "doctor_fleet_s":  # it saw every listener of the fleet
                    ports = sorted(c["port"] for c in json.loads(done.stdout)["candidates"])
                    assert ports == list(range(9401, 9422)), ports
    finally:
        reg.stop_all()
        if saved is None:
            os.environ.pop("SPEC_KITTY_HOME", None)
        else:
            os.environ["SPEC_KITTY_HOME"] = saved
    out = {name: statistics.median(runs_s) for name, runs_s in times.items()}
    peer_s = [v for k, v in out.items() if k.startswith("doctor_peer_")]
    if peer_s:
        out["doctor_vs_fastest_peer_x"] = min(peer_s) / out["doctor_fleet_s"]
    return out


WORSE = 1.2  # --compare flags a measure that grew by more than this factor


def bench_scopes(work: Path, runs: int) -> dict[str, float]:
    """100 projects, 5 families each: 500 scoped records, 495 released and 5 held by live
    governors of this process; `tenure ls --json` and the read-only `tenure auth doctor
    --json` over that root (each family's 5-port range scanned)."""
    root = ensure_root(work / "scopes-root")
    families = [f"tool{i}" for i in range(5)]
    held: list[Governor] = []
    for p in range(100):
        project = work / "projects" / f"p{p:03d}"
        project.mkdir(parents=True)
        scope = resolve_scope(project)
        for i, family in enumerate(families):
            ports = (9460 + i * 5, 9464 + i * 5)
            if p == 0:
                gov = Governor(root, family, "1.0", ports=ports, scope=scope)
                gov.acquire()
                gov.start()
                held.append(gov)
                continue
            store = LeaseStore(root, family, scope)
            rec = LeaseRecord(
                family=family,
                epoch=1,
                holder=Holder(
                    pid=1,
                    create_time=0.0,
                    nonce="0" * 16,
                    version="1.0",
                    port=None,
                    started_at=time.time(),
                ),
                ttl_s=15.0,
                renewed_at=time.time(),
                seq=1,
                state=LeaseState.RELEASED,
                ports=ports,
                scope=scope,
            )
            store.transact(lambda _cur, r=rec: (None, r))
    env = tenure_env(root)
    try:
        ls_s = median_of(runs, lambda: timed(lambda: cli(env, "ls")))
        doctor_s = median_of(runs, lambda: timed(lambda: cli(env, "auth", "doctor")))
        rows = len(cli(env, "ls")["families"])
    finally:
        for gov in held:
            gov.retire(RetireReason.SHUTDOWN, drain=False)
            gov.wait_retired(5)
    return {"scopes_500_ls_s": ls_s, "scopes_500_doctor_s": doctor_s, "scopes_500_rows": rows}


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


GROUPS: dict[str, Callable[[ProcessRegistry, Path, argparse.Namespace], dict[str, float]]] = {
    "scans": lambda reg, work, a: bench_scans(reg, work, a.runs),
    "daemons": lambda reg, work, a: bench_daemons(reg, work, a.runs),
    "concurrent": lambda reg, work, a: bench_concurrent(reg, work, max(a.runs // 2, 1)),
    "idle": lambda reg, work, a: bench_idle(reg, work, a.idle_seconds),
    "cli": lambda _reg, work, a: bench_cli(a.runs, work),
    "adoption": lambda reg, work, a: bench_adoption(reg, work, a.runs),
    "upgrades": lambda reg, work, a: bench_upgrades(reg, work, a.runs),
    "doctor": lambda reg, work, a: bench_doctor(reg, work, a.runs, a.peers),
    "scopes": lambda _reg, work, a: bench_scopes(work, a.runs),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument(
        "--only", nargs="+", choices=GROUPS, help="run these groups; keep the rest from latest.json"
    )
    parser.add_argument(
        "--peers",
        type=Path,
        default=HERE / ".peers",
        help="where spec-kitty-cli 3.2.4 and 3.2.7 live (installed there on first use)",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="FILE",
        help="a previous latest.json: print the change, flag measures more than 20%% worse",
    )
    args = parser.parse_args()
    before: dict[str, float] = {}
    if args.compare is not None:
        before = json.loads(args.compare.read_text())["results"]
    # Measure what an installed tenure costs: pip compiles a wheel's modules to bytecode when it
    # installs it; an editable checkout compiles them on first import — unless
    # PYTHONDONTWRITEBYTECODE is set (as on the CI machines), when every start would compile
    # every module again.
    compileall.compile_dir(Path(tenure.__file__).parent, quiet=1)
    reg = ProcessRegistry()
    work = Path(tempfile.mkdtemp(prefix="tenure-bench-"))
    os.chmod(work, 0o700)
    results: dict[str, float] = {}
    if args.only:
        results = json.loads((HERE / "latest.json").read_text())["results"]
    try:
        for name, group in GROUPS.items():
            if not args.only or name in args.only:
                results |= group(reg, work, args)
    finally:
        reg.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    doc = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine,
        "runs": args.runs,
        "results": results,
        "targets": TARGETS,
        "at_least": AT_LEAST,
        "none_of": NONE_OF,
    }
    (HERE / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"tenure benchmarks — {doc['date']} — {machine} — median of {args.runs} runs\n")
    compare = f" {'before':>10} | {'change':>8} |" if before else ""
    print(f"| {'measure':<36} | {'value':>10} | {'target':>8} | {'met':<4} |{compare}")
    rule = f" {'-' * 10} | {'-' * 8} |" if before else ""
    print(f"| {'-' * 36} | {'-' * 10} | {'-' * 8} | {'-' * 4} |{rule}")
    worse = []
    for key, value in results.items():
        target, floor = TARGETS.get(key), AT_LEAST.get(key)
        met = "" if target is None else ("yes" if value < target else "NO")
        goal = "" if target is None else f"< {target}"
        if floor is not None:
            met, goal = ("yes" if value >= floor else "NO"), f">= {floor}"
        if key in NONE_OF:
            met, goal = ("yes" if value == 0 else "NO"), "0"
        line = f"| {key:<36} | {value:>10.3f} | {goal:>8} | {met:<4} |"
        if before:
            old = before.get(key)
            change = "" if not old else f"{(value - old) / old:+.0%}"
            if old and (value < old / WORSE if floor is not None else value > WORSE * old):
                change += " !"
                worse.append(key)
            line += f" {'' if old is None else f'{old:.3f}':>10} | {change:>8} |"
        print(line)
    if worse:
        print(f"\nmore than {WORSE - 1:.0%} worse than {args.compare}: {', '.join(worse)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
