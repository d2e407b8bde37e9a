"""Measure tenure's speed and memory targets; prints a table and writes benchmarks/latest.json.

Not part of the test run. Uses real processes and loopback ports in the families' real ranges,
in a temporary root it removes; stops everything it started, by pid.
Usage: python benchmarks/run.py [--runs N] [--idle-seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tenure.core.families import SYNC
from tenure.legacy.simulated import spawn_legacy, spawn_other
from tenure.runtime.holder import Governor, RetireReason
from tenure.runtime.processes import ProcessRegistry
from tenure.runtime.survey import legacy_root, survey

HERE = Path(__file__).parent
TARGETS = {
    "scan_empty_s": 0.1,
    "scan_18_legacy_s": 0.1,
    "scan_18_legacy_wedged_s": 0.6,
    "cold_start_s": None,
    "supersession_s": 1.0,
    "sigkill_takeover_lease_s": 0.2,
    "sigkill_takeover_cli_s": 0.2,
    "concurrent_32_start_s": 2.0,
    "idle_rss_mb": 30.0,
    "cli_help_s": 0.3,
}


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


def bench_scans(reg: ProcessRegistry, work: Path, runs: int) -> dict[str, float]:
    root, legacy = work / "root", work / "legacy"
    root.mkdir(mode=0o700)
    legacy.mkdir()
    os.environ["SPEC_KITTY_HOME"] = str(legacy)
    ports = range(SYNC.lo, SYNC.hi)

    def scan_once() -> float:
        return survey(SYNC, root, legacy_root()).elapsed_s

    out = {"scan_empty_s": median_of(runs, scan_once)}
    versions = ["3.2.2", "3.2.3", "3.2.4"]
    for i in range(18):
        spawn_legacy(reg, 9401 + i, legacy, versions[i % 3])
    spawn_other(reg, "third_party_http", 9419)
    out["scan_18_legacy_s"] = median_of(runs, scan_once)
    spawn_legacy(reg, 9420, legacy, "3.2.4", mode="wedged")
    out["scan_18_legacy_wedged_s"] = median_of(runs, scan_once)
    assert len(survey(SYNC, root, legacy_root()).records) == 20, ports
    reg.stop_all()
    return out


def bench_daemons(reg: ProcessRegistry, work: Path, runs: int) -> dict[str, float]:
    cold, supersede, takeover, lease_takeover = [], [], [], []
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
    return {
        "cli_help_s": median_of(runs, timed(py, "-m", "tenure", "--help")),
        # A full command: typer >= 0.29 builds its parameters with pydantic (~60 ms).
        "cli_status_s": median_of(runs, timed(py, "-m", "tenure", "sync", "status")),
        # What a host tool pays to import the library: no typer, no rich, no pydantic.
        "import_tenure_s": median_of(runs, timed(py, "-c", "import tenure; tenure.Governor")),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    reg = ProcessRegistry()
    work = Path(tempfile.mkdtemp(prefix="tenure-bench-"))
    os.chmod(work, 0o700)
    results: dict[str, float] = {}
    try:
        results |= bench_scans(reg, work, args.runs)
        results |= bench_daemons(reg, work, args.runs)
        results |= bench_concurrent(reg, work, max(args.runs // 2, 1))
        results |= bench_idle(reg, work, args.idle_seconds)
        results |= bench_cli(args.runs, work)
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
    }
    (HERE / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"tenure benchmarks — {doc['date']} — {machine} — median of {args.runs} runs\n")
    print(f"| {'measure':<28} | {'value':>10} | {'target':>8} | {'met':<4} |")
    print(f"| {'-' * 28} | {'-' * 10} | {'-' * 8} | {'-' * 4} |")
    for key, value in results.items():
        target = TARGETS.get(key)
        met = "" if target is None else ("yes" if value < target else "NO")
        print(
            f"| {key:<28} | {value:>10.3f} | {'' if target is None else f'< {target}':>8} "
            f"| {met:<4} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
