"""Helpers for tests that drive `tenure <family> start|status|stop` as real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from tenure.testing import ProcessRegistry

SYNC_PORTS = "9430-9439"
DASHBOARD_PORTS = "9320-9329"


@dataclass
class Fleet:
    """A private root plus the env that points tenure at it and at test sub-ranges."""

    root: Path
    registry: ProcessRegistry
    env: dict[str, str] = field(default_factory=dict)

    def cli(
        self, *args: str, version: str | None = None, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**self.env, **env}
        if version is not None:
            full_env["TENURE_VERSION"] = version
        proc = subprocess.run(
            [sys.executable, "-m", "tenure", *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        self.registry.track_root(self.root)
        if check:
            assert proc.returncode == 0, (
                f"tenure {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def start(self, family: str = "sync", version: str | None = None, **env: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(
            self.cli(family, "start", "--json", version=version, **env).stdout
        )
        return doc

    def daemon_pids(self, family: str = "sync") -> list[int]:
        """Live processes carrying this root's and family's argv markers."""
        markers = {f"--tenure-root={self.root}", f"--tenure-family={family}"}
        pids = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if markers <= set(proc.info.get("cmdline") or []):
                pids.append(proc.pid)
        return pids


def make_fleet(root: Path, registry: ProcessRegistry, **env: str) -> Fleet:
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    base = {
        **os.environ,
        "TENURE_ROOT": str(root),
        "TENURE_SYNC_PORTS": SYNC_PORTS,
        "TENURE_DASHBOARD_PORTS": DASHBOARD_PORTS,
        "TENURE_LEASE_TTL": "3",
        "TENURE_HEARTBEAT": "0.5",
        **env,
    }
    base.pop("TENURE_VERSION", None)
    return Fleet(root.resolve(), registry, base)


def pid_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
