"""The README's library example runs and governs itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tenure.adapters.tombstones import read_tombstones
from tenure.testing import ProcessRegistry
from tests.conftest import HERE, wait_for

EXAMPLE = HERE.parent / "examples" / "indexer.py"


def test_readme_shows_the_example_verbatim() -> None:
    """The README's 'govern your own daemon' block is examples/indexer.py, line for line."""
    readme = (HERE.parent / "README.md").read_text()
    assert EXAMPLE.read_text().strip() in readme


def test_example_daemon_retires_when_its_root_is_removed(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """Run the example; a second copy is refused; removing the root makes the first retire."""
    root = tmp_path / "indexer"
    env = {**os.environ, "TENURE_LEASE_TTL": "1.5", "TENURE_HEARTBEAT": "0.3"}
    first = proc_registry.spawn(
        [sys.executable, str(EXAMPLE), str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for((root / "leases" / "indexer.json").exists, what="example holds its lease")
    second = subprocess.run(
        [sys.executable, str(EXAMPLE), str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert f"held by pid {first.pid}" in second.stderr
    shutil.rmtree(root)
    out, _ = first.communicate(timeout=10)
    assert first.returncode == 0
    assert b"retired: RetireReason.ROOT_GONE" in out or b"retired: root_gone" in out
    assert read_tombstones(root) == []  # the root is gone: nowhere to write one


def test_readme_shows_the_hold_example_verbatim() -> None:
    """The README's `tenure.hold` block is examples/held.py, line for line."""
    readme = (HERE.parent / "README.md").read_text()
    assert (HERE.parent / "examples" / "held.py").read_text().strip() in readme
