"""pytest plugin for tool authors: a private daemon root and a process-cleanup registry.

Registered through the `pytest11` entry point; fixtures: `tenure_root`, `proc_registry`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tenure.procreg import ProcessRegistry

__all__ = ["ProcessRegistry", "proc_registry", "tenure_root"]


@pytest.fixture
def proc_registry() -> Iterator[ProcessRegistry]:
    """A registry whose processes are stopped, by pid, when the test ends."""
    registry = ProcessRegistry()
    try:
        yield registry
    finally:
        registry.stop_all()


@pytest.fixture
def tenure_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private 0700 daemon root, exported as `TENURE_ROOT` for code under test."""
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    os.chmod(root, 0o700)
    monkeypatch.setenv("TENURE_ROOT", str(root))
    return root
