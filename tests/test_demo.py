"""`tenure demo` runs the whole story and leaves nothing behind."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tenure.adapters.ports import open_ports
from tenure.testing import ProcessRegistry
from tests.conftest import block, popen_interruptible, wait_for

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
    assert list(steps) == [
        "start_1_0",
        "legacy_started",
        "supersede",
        "sigkill_takeover",
        "reset",
        "projects",
    ]
    assert steps["supersede"]["action"] == "superseded"
    assert [t["reason"] for t in steps["supersede"]["tombstones"]] == ["superseded"]
    assert len(steps["supersede"]["startup_swept"]) == 2
    assert steps["sigkill_takeover"]["epoch"] == steps["supersede"]["epoch"] + 1
    assert [s["pid"] for s in steps["reset"]["swept"]] == [steps["reset"]["late_pid"]]
    assert [s["skip_reason"] for s in steps["reset"]["skipped"]] == ["pre_marker"]
    # One dashboard per project; the removed project's dashboard left by itself.
    assert len(set(steps["projects"]["ports"])) == 2
    assert [t["reason"] for t in steps["projects"]["tombstones"]] == ["scope_gone"]
    assert open_ports(SYNC_PORTS) == []
    assert not Path(doc["root"]).exists()
    # Nothing outside the demo's temporary directory: HOME (tmp_path here) stays empty.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_human_demo_output_has_the_six_acts(tmp_path: Path) -> None:
    """The human rendering shows each act's heading and no colour codes when not a terminal."""
    proc = run_demo(tmp_path)
    assert proc.returncode == 0, proc.stderr
    for heading in (
        "1. A lease-aware",
        "2. Legacy",
        "3. Version 1.1",
        "4. The holder is killed",
        "5. Another stale",
        "6. One dashboard per project",
    ):
        assert heading in proc.stdout
    assert "\x1b[" not in proc.stdout
    assert [line for line in proc.stdout.splitlines() if line != line.rstrip()] == []
    assert open_ports(SYNC_PORTS) == []


@pytest.mark.parametrize(
    ("sig", "code", "listeners", "pace"),
    [
        # SIGINT lands in the pause after act 1 (the daemon only).
        pytest.param(signal.SIGINT, 130, 1, "60", id="SIGINT"),
        # SIGTERM / SIGHUP land after act 2: the daemon plus four legacy stand-ins.
        pytest.param(signal.SIGTERM, 143, 5, "15", id="SIGTERM"),
        pytest.param(signal.SIGHUP, 129, 5, "15", id="SIGHUP"),
    ],
)
def test_a_stop_signal_stops_everything_the_demo_started(
    tmp_path: Path,
    proc_registry: ProcessRegistry,
    sig: signal.Signals,
    code: int,
    listeners: int,
    pace: str,
) -> None:
    """A signal in the middle: no listener left, the temporary root removed, 128 + signal."""
    env = {
        **os.environ,
        "TENURE_SYNC_PORTS": BLOCK.sync_env,
        "TENURE_DASHBOARD_PORTS": BLOCK.dashboard_env,
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),  # the demo's temporary root lands here, where cleanup can find it
    }
    env.pop("TENURE_ROOT", None)
    # --pace holds the demo between acts, so the interrupt lands mid-story deterministically.
    proc = popen_interruptible(
        [sys.executable, "-m", "tenure", "demo", "--pace", pace],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        # The pauses are long, so the signal lands in the pause after the act we wait for.
        wait_for(
            lambda: len(open_ports(SYNC_PORTS)) >= listeners,
            timeout=60,
            what=f"{listeners} demo listeners up",
        )
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for root in tmp_path.glob("tenure-demo-*/root"):
            proc_registry.track_root(root.resolve())
    assert proc.returncode == code, err
    assert "every process the demo started was stopped" in err
    assert open_ports(SYNC_PORTS) == []
    assert list(tmp_path.glob("tenure-demo-*")) == []
    assert not (tmp_path / ".spec-kitty").exists()


def test_the_built_wheel_installs_and_runs_in_a_clean_venv(tmp_path: Path) -> None:
    """Wheel and sdist carry LICENSE and py.typed; installed alone, -V, ls and demo work and
    `import tenure` loads neither typer nor rich. Hermetic: built without an isolated build
    environment and installed without an index, the dependencies taken from the running
    environment, so it passes on an offline laptop too."""
    import sysconfig
    import tarfile
    import zipfile

    pytest.importorskip("hatchling", reason="building offline needs hatchling installed")
    repo = Path(__file__).resolve().parent.parent
    dist = tmp_path / "dist"
    build = ["--no-isolation", "--sdist", "--wheel", "--outdir", str(dist), str(repo)]
    subprocess.run(
        [sys.executable, "-m", "build", *build],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tenure/py.typed" in names
    (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    requires = [
        line.split(":", 1)[1].strip()
        for line in zipfile.ZipFile(wheel).read(meta).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    # typer and rich are the CLI's (`tenure[cli]`), never the library's.
    cli_deps = [r for r in requires if re.split(r"[<>=; ]", r, maxsplit=1)[0] in ("typer", "rich")]
    assert cli_deps
    assert all("extra ==" in r for r in cli_deps), cli_deps
    assert any(n.endswith("licenses/LICENSE") for n in names)
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    assert any(m.endswith("/LICENSE") for m in members)
    assert any(m.endswith("/src/tenure/py.typed") for m in members)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300
    )
    target = ["--python", str(venv / "bin" / "python")]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            *target,
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    # The dependencies: the running environment's site-packages, after the venv's own (a bare
    # path in a .pth file: its editable tenure finder is not activated, the wheel's tenure wins).
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site) / "running-env-deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    env = {
        **os.environ,
        "TENURE_ROOT": str(tmp_path / "root"),
        "TENURE_SYNC_PORTS": BLOCK.sync_env,
        "TENURE_DASHBOARD_PORTS": BLOCK.dashboard_env,
        "HOME": str(tmp_path / "home"),
    }
    tenure = str(venv / "bin" / "tenure")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=300, check=False
        )

    assert run(tenure, "-V").stdout.startswith("tenure ")
    listed = run(tenure, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [f["family"] for f in json.loads(listed.stdout)["families"]] == ["sync", "dashboard"]
    lean = run(
        str(venv / "bin" / "python"),
        "-c",
        "import sys, tenure.lowlevel; print(sorted(m for m in ('typer', 'rich') if m in sys.modules))",
    )
    assert lean.stdout.strip() == "[]", lean.stderr
    demo = run(tenure, "demo", "--json")
    assert demo.returncode == 0, demo.stderr
    assert open_ports(SYNC_PORTS) == []
