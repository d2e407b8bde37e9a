"""A registry of processes someone started, stopped by pid (terminate → wait → kill)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Sequence
from pathlib import Path

import psutil

from tenure.adapters import guard, platform
from tenure.adapters.procinfo import read_process

STOP_GRACE_S = 3.0


class ProcessRegistry:
    """Processes a test started; `stop_all` ends each by its pid (terminate → wait → kill)."""

    def __init__(self) -> None:
        self._procs: list[psutil.Process] = []
        self.popens: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a process and register it for cleanup."""
        proc: subprocess.Popen[bytes] = subprocess.Popen(list(argv), **kwargs)  # type: ignore[call-overload]
        self.popens.append(proc)
        self.track(proc.pid)
        return proc

    def track(self, pid: int) -> None:
        """Register a pid this test caused to exist (e.g. a detached daemon)."""
        facts = read_process(pid)
        with contextlib.suppress(psutil.NoSuchProcess):
            self._procs.append(psutil.Process(pid))
            if facts is not None:
                guard.allow(facts.ident)

    def track_root(self, root: Path) -> list[int]:
        """Register every process whose argv carries `--tenure-root=<root>`; returns their pids."""
        marker = f"--tenure-root={root}"
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            if marker in (proc.info.get("cmdline") or []):
                self.track(proc.pid)
                found.append(proc.pid)
        return found

    def stop_all(self) -> None:
        """Stop every registered process that is still the same process (pid + create_time)."""
        alive = []
        for proc in self._procs:
            try:
                if proc.is_running():
                    # A SIGSTOPped process would not act on SIGTERM until continued.
                    if platform.CONT is not None:
                        proc.send_signal(platform.CONT)
                    proc.terminate()
                    alive.append(proc)
            except psutil.NoSuchProcess:
                continue
        _gone, still = psutil.wait_procs(alive, timeout=STOP_GRACE_S)
        for proc in still:
            try:
                if proc.is_running():
                    proc.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(still, timeout=STOP_GRACE_S)
        for popen in self.popens:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=STOP_GRACE_S)
        self._procs.clear()
