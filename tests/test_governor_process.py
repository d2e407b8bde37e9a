"""The governor in real processes: SIGKILL, SIGSTOP/SIGCONT, root removal, garbage records."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tenure.adapters.root import ensure_root
from tenure.adapters.store import LeaseStore
from tenure.adapters.tombstones import read_tombstones
from tenure.core.handover import decide_supersede
from tenure.core.record import LeaseRecord
from tenure.testing import ProcessRegistry
from tests.conftest import HERE, wait_for

FAST = {"TENURE_LEASE_TTL": "1.5", "TENURE_HEARTBEAT": "0.3"}


def spawn_holder(
    reg: ProcessRegistry, root: Path, version: str = "1.0", wait_s: float = 0.0, **env: str
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, str(HERE / "holder.py"), str(root), "sync", version, str(wait_s)]
    return reg.spawn(argv, stdout=subprocess.PIPE, env={**os.environ, **FAST, **env})


def next_event(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> dict[str, Any]:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no event from pid {proc.pid} within {timeout}s"
    line = proc.stdout.readline()
    assert line, f"pid {proc.pid} exited with {proc.wait()} before reporting"
    event: dict[str, Any] = json.loads(line)
    return event


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return ensure_root(tmp_path / "root")


def test_sigkilled_holder_is_replaced_immediately(
    root: Path, proc_registry: ProcessRegistry
) -> None:
    """After SIGKILL the next contender takes the lease at once, with epoch + 1."""
    first = spawn_holder(proc_registry, root)
    assert next_event(first) == {"event": "holding", "epoch": 1}
    first.kill()
    first.wait()
    second = spawn_holder(proc_registry, root, wait_s=0.0)
    assert next_event(second) == {"event": "holding", "epoch": 2}


def test_live_holder_refuses_a_second_contender(root: Path, proc_registry: ProcessRegistry) -> None:
    """A second contender is refused and told who holds the lease."""
    first = spawn_holder(proc_registry, root)
    next_event(first)
    second = spawn_holder(proc_registry, root)
    event = next_event(second)
    assert event["event"] == "refused"
    assert f"held by pid {first.pid}" in event["error"]
    assert second.wait(5) == 3


def test_stopped_holder_is_replaced_and_retires_on_resume(
    root: Path, proc_registry: ProcessRegistry
) -> None:
    """SIGSTOP past the TTL: a contender takes over; on SIGCONT the old holder retires unwritten."""
    store = LeaseStore(root, "sync")
    first = spawn_holder(proc_registry, root)
    next_event(first)
    first.send_signal(signal.SIGSTOP)
    second = spawn_holder(proc_registry, root, wait_s=10.0)
    assert next_event(second, timeout=15) == {"event": "holding", "epoch": 2}
    taken = store.read()
    assert isinstance(taken, LeaseRecord)
    first.send_signal(signal.SIGCONT)
    retired = next_event(first)
    assert retired["reason"] in {"lease_expired", "lease_lost"}
    assert first.wait(5) == 0
    after = store.read()
    assert isinstance(after, LeaseRecord)
    assert after.holder == taken.holder
    assert after.epoch == 2
    stones = read_tombstones(root)
    assert [(s["pid"], s["epoch"], s["reason"]) for s in stones] == [
        (first.pid, 1, retired["reason"])
    ]


def test_removing_the_root_makes_the_holder_retire(
    root: Path, proc_registry: ProcessRegistry
) -> None:
    """Deleting the daemon root is a retirement trigger."""
    first = spawn_holder(proc_registry, root)
    next_event(first)
    shutil.rmtree(root)
    assert next_event(first)["reason"] == "root_gone"
    assert first.wait(5) == 0


def test_removing_the_record_makes_the_holder_retire(
    root: Path, proc_registry: ProcessRegistry
) -> None:
    """Deleting just the lease record is a retirement trigger too."""
    first = spawn_holder(proc_registry, root)
    next_event(first)
    LeaseStore(root, "sync").record_path.unlink()
    assert next_event(first)["reason"] == "record_gone"


@pytest.mark.parametrize("kind", ["garbage", "symlink"])
def test_unreadable_record_retires_holder_and_refuses_clearly(
    root: Path, proc_registry: ProcessRegistry, tmp_path: Path, kind: str
) -> None:
    """Garbage or symlinked record: the holder retires, a newcomer gets a clear error."""
    store = LeaseStore(root, "sync")
    first = spawn_holder(proc_registry, root)
    next_event(first)
    if kind == "garbage":
        store.record_path.write_bytes(b"\x00\x01 not a lease")
    else:
        target = tmp_path / "elsewhere.json"
        target.write_text("{}")
        store.record_path.unlink()
        store.record_path.symlink_to(target)
    assert next_event(first)["reason"] == "record_unreadable"
    second = spawn_holder(proc_registry, root)
    event = next_event(second)
    assert event["event"] == "refused"
    assert "unreadable" in event["error"]
    assert str(store.record_path) in event["error"]
    assert second.wait(5) == 3


def test_supersession_request_in_the_record_retires_the_holder(
    root: Path, proc_registry: ProcessRegistry
) -> None:
    """A holder that missed the retire call still sees `superseded_by` at its next heartbeat."""
    store = LeaseStore(root, "sync")
    first = spawn_holder(proc_registry, root, version="1.0")
    next_event(first)
    store.transact(lambda cur: (None, decide_supersede(cur, "1.1", os.getpid(), 0.0).write))
    assert next_event(first)["reason"] == "superseded"
    assert wait_for(
        lambda: not isinstance(store.read(), LeaseRecord) or store.read().state == "released"
    )  # type: ignore[union-attr]


def test_idle_holder_retires(root: Path, proc_registry: ProcessRegistry) -> None:
    """With no work for longer than the idle constant, the holder retires."""
    first = spawn_holder(proc_registry, root, TENURE_IDLE_SECONDS="0.5")
    next_event(first)
    assert next_event(first)["reason"] == "idle"
    assert read_tombstones(root)[-1]["reason"] == "idle"
