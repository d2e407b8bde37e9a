"""pytest plugin for tool authors: private roots, a process-cleanup registry, a fleet kit.

Registered through the `pytest11` entry point. Fixtures: `proc_registry` (stops what a test
started, by pid), `tenure_signal_guard` (tenure's cleanup code may end only processes the test
started or tracked; anything else fails as `test_guard`), `tenure_root` (a private 0700 root
in `TENURE_ROOT`), `tenure_fleet` (a root plus env pointing tenure at test sub-ranges; starts
lease-aware daemons through the CLI and legacy spec-kitty stand-ins), `tenure_conformance`
(the conformance kit; also `pytest --tenure-conformance="CMD"`, see `tenure.testing.conformance`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenure.core.hints import TYPE_CHECKING
from tenure.core.values import field, mutable
from tenure.testing.conformance import (
    ConformanceItem,
    pytest_addoption,
    pytest_collection_modifyitems,
    tenure_conformance,
)

if TYPE_CHECKING:
    from typing import Any

    from tenure.adapters.config import GUARD_ENV
    from tenure.adapters.registry import ProcessRegistry

# Loaded on first use: pytest loads this plugin in every project that has tenure installed,
# and a run that uses no tenure fixture should not pay for psutil and the runtime.
_LAZY = {"GUARD_ENV": "tenure.adapters.config", "ProcessRegistry": "tenure.adapters.registry"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module  # noqa: PLC0415

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tenure.testing' has no attribute {name!r}")


__all__ = [
    "GUARD_ENV",
    "ConformanceItem",
    "Fleet",
    "ProcessRegistry",
    "make_fleet",
    "pid_gone",
    "proc_registry",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "tenure_conformance",
    "tenure_fleet",
    "tenure_root",
    "tenure_signal_guard",
]


@pytest.fixture
def proc_registry() -> Iterator[ProcessRegistry]:
    """A registry whose processes are stopped, by pid, when the test ends."""
    from tenure.adapters.registry import ProcessRegistry  # noqa: PLC0415

    registry = ProcessRegistry()
    try:
        yield registry
    finally:
        registry.stop_all()


@pytest.fixture
def tenure_signal_guard(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Turn the signal guard on for this test; returns the file of allowed `pid create_time`."""
    path = tmp_path_factory.mktemp("guard") / "allowed-pids"
    path.touch(mode=0o600)
    from tenure.adapters.config import GUARD_ENV  # noqa: PLC0415

    monkeypatch.setenv(GUARD_ENV, str(path))
    return path


@pytest.fixture
def tenure_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private 0700 daemon root, exported as `TENURE_ROOT` for code under test."""
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    os.chmod(root, 0o700)
    monkeypatch.setenv("TENURE_ROOT", str(root))
    return root


SYNC_PORTS = "9430-9439"
DASHBOARD_PORTS = "9320-9329"


@mutable
class Fleet:
    """A private root plus the env that points tenure at it and at test sub-ranges."""

    root: Path
    registry: ProcessRegistry
    env: dict[str, str] = field(default_factory=dict)

    def cli(
        self, *args: str, version: str | None = None, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run `tenure ARGS` with this fleet's env (plus `env`); assert success if `check`."""
        return self._run(list(args), version, check, env)

    def _run(
        self, args: list[str], version: str | None, check: bool, env: dict[str, str]
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
        """`tenure FAMILY start --json`; returns the parsed document."""
        doc: dict[str, Any] = json.loads(
            self._run([family, "start", "--json"], version, True, env).stdout
        )
        return doc

    def legacy(self, port: int, version: str = "3.2.4", **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a legacy spec-kitty stand-in in this fleet's legacy root."""
        root = Path(self.env.get("SPEC_KITTY_HOME") or self.root.parent / "legacy")
        root.mkdir(parents=True, exist_ok=True)
        from tenure.legacy.simulated import spawn_legacy  # noqa: PLC0415

        return spawn_legacy(self.registry, port, root, version, **kwargs)[0]

    def daemon_pids(self, family: str = "sync") -> list[int]:
        """Live processes carrying this root's and family's argv markers."""
        import psutil  # noqa: PLC0415

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
    """Whether `pid` is gone (a zombie counts as gone)."""
    import psutil  # noqa: PLC0415

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def tenure_fleet(tmp_path: Path, proc_registry: ProcessRegistry) -> Fleet:
    """A fleet in a private root, with its own legacy root, on the test sub-ranges."""
    legacy = tmp_path / "home" / ".spec-kitty"
    legacy.mkdir(parents=True)
    return make_fleet(tmp_path / "root", proc_registry, SPEC_KITTY_HOME=str(legacy.resolve()))
