"""`tenure demo` runs the whole story and leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tenure.probe import open_ports
from tenure.testing import ProcessRegistry
from tests.conftest import block, wait_for

BLOCK = block(__name__)
SYNC_PORTS = range(BLOCK.sync[0], BLOCK.sync[1] + 1)


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `tenure demo ARGS` on the test sub-ranges with a private HOME."""
    env = {
        **os.environ,
        "TENURE_SYNC_PORTS": BLOCK.sync_env,
        "TENURE_DASHBOARD_PORTS": BLOCK.dashboard_env,
        "HOME": str(tmp_path),
    }
    env.pop("TENURE_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "tenure", "demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_tells_the_story_and_cleans_up(tmp_path: Path) -> None:
    """Supersession, SIGKILL takeover and reset happen; afterwards no listener and no root remain."""
    proc = run_demo(tmp_path, "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    steps = {s["step"]: s for s in doc["steps"]}
    assert list(steps) == ["start_1_0", "legacy_started", "supersede", "sigkill_takeover", "reset"]
    assert steps["supersede"]["action"] == "superseded"
    assert [t["reason"] for t in steps["supersede"]["tombstones"]] == ["superseded"]
    assert len(steps["supersede"]["startup_swept"]) == 2
    assert steps["sigkill_takeover"]["epoch"] == steps["supersede"]["epoch"] + 1
    assert [s["pid"] for s in steps["reset"]["swept"]] == [steps["reset"]["late_pid"]]
    assert [s["skip_reason"] for s in steps["reset"]["skipped"]] == ["pre_marker"]
    assert open_ports(SYNC_PORTS) == []
    assert not Path(doc["root"]).exists()


def test_human_demo_output_has_the_five_acts(tmp_path: Path) -> None:
    """The human rendering shows each act's heading and no colour codes when not a terminal."""
    proc = run_demo(tmp_path)
    assert proc.returncode == 0, proc.stderr
    for heading in (
        "1. A lease-aware",
        "2. Legacy",
        "3. Version 1.1",
        "4. The holder is killed",
        "5. Another stale",
    ):
        assert heading in proc.stdout
    assert "\x1b[" not in proc.stdout
    assert open_ports(SYNC_PORTS) == []


def test_ctrl_c_stops_everything_the_demo_started(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """SIGINT in the middle: exit 130, no listener left, the temporary root removed."""
    env = {
        **os.environ,
        "TENURE_SYNC_PORTS": BLOCK.sync_env,
        "TENURE_DASHBOARD_PORTS": BLOCK.dashboard_env,
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),  # the demo's temporary root lands here, where cleanup can find it
    }
    env.pop("TENURE_ROOT", None)
    # --pace holds the demo between acts, so the interrupt lands mid-story deterministically.
    # A test run started in the background may ignore SIGINT, and children inherit that; a
    # handler (not SIG_IGN) in this process becomes the default disposition in the child.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tenure", "demo", "--pace", "60"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        # The pause after act 1 is 60 s: its daemon is up and the interrupt lands in the pause.
        wait_for(lambda: open_ports(SYNC_PORTS), timeout=30, what="the demo daemon up")
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for root in tmp_path.glob("tenure-demo-*/root"):
            proc_registry.track_root(root.resolve())
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert open_ports(SYNC_PORTS) == []
    assert list(tmp_path.glob("tenure-demo-*")) == []
