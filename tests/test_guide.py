"""docs/guide/adopting.md's snippets run exactly as written (the ones marked `<!-- run: NAME -->`):
§1's daemon, §2's CLI, §3's `tenure run`, and the conformance kit on §1's daemon."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tenure.adapters.ports import open_ports
from tenure.adapters.store import LeaseStore
from tenure.core.record import LeaseRecord, LeaseState
from tenure.testing import ProcessRegistry
from tests.conftest import HERE, block, popen_interruptible, wait_for

GUIDE = HERE.parent / "docs" / "guide" / "adopting.md"
BLOCK = block(__name__)
FAST = {"TENURE_LEASE_TTL": "3", "TENURE_HEARTBEAT": "0.5"}


def snippets() -> dict[str, str]:
    """NAME → the code of the fenced block that follows `<!-- run: NAME -->`."""
    found = re.findall(r"<!-- run: (\S+) -->\n```\w*\n(.*?)```", GUIDE.read_text(), re.S)
    return dict(found)


def environment(root: Path) -> dict[str, str]:
    """The reader's shell: this interpreter's `python3` and `tenure` first on PATH."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**os.environ, **FAST, "TENURE_ROOT": str(root), "PATH": path}


def run(argv: list[str], work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=work, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def holder(root: Path, family: str) -> LeaseRecord | None:
    rec = LeaseStore(root, family).read()
    if isinstance(rec, LeaseRecord) and rec.state is LeaseState.HELD:
        return rec
    return None


def answer(port: int) -> str | None:
    """The line §1's daemon sends on its port; None while nothing listens there yet (its
    record names it a moment before its socket listens)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            return conn.makefile().readline().strip()
    except ConnectionRefusedError:
        return None


def test_the_guide_marks_the_snippets_it_runs() -> None:
    assert set(snippets()) == {"daemon.py", "cli.py", "serve", "kit"}


def test_the_daemon_and_the_cli_run_as_written(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """§1: it holds, and a second copy is refused in one line. §2: the CLI reuses a running
    daemon, starts one when none runs, and reuses that one next time."""
    code, root, work = snippets(), tmp_path / "root", tmp_path / "work"
    work.mkdir()
    for name in ("daemon.py", "cli.py"):
        (work / name).write_text(code[name])
    env = environment(root)
    daemon = popen_interruptible(["python3", "daemon.py"], cwd=work, env=env)
    proc_registry.popens.append(daemon)  # type: ignore[arg-type]
    proc_registry.track(daemon.pid)
    wait_for(lambda: (rec := holder(root, "indexer")) and rec.holder.pid == daemon.pid)
    # §1's daemon serves the port it holds
    assert wait_for(lambda: answer(9510), what="§1's daemon to answer") == "indexer 1.4"
    second = run(["python3", "daemon.py"], work, env)
    assert second.returncode == 1
    assert second.stderr.startswith("indexer already runs: indexer lease is held by pid")
    assert "Traceback" not in second.stderr
    assert run(["python3", "cli.py"], work, env).stdout.split()[:2] == ["reused", str(daemon.pid)]
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(60) == 0
    started = run(["python3", "cli.py"], work, env)
    assert started.returncode == 0, started.stderr
    action, pid, port = started.stdout.split()
    proc_registry.track(int(pid))
    assert action == "started"
    assert 9510 <= int(port) <= 9519
    said = wait_for(lambda: answer(int(port)), what="the started daemon to answer")
    assert said == "indexer 1.4"  # on the port ensure gave it
    assert run(["python3", "cli.py"], work, env).stdout.split()[:2] == ["reused", pid]
    assert run(["tenure", "stop", "indexer"], work, env).returncode == 0


def test_tenure_run_and_the_kit_run_as_written(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """§3's `tenure run` serves on the range's first free port until `tenure stop web`; the
    kit passes §1's daemon exactly as the guide invokes it."""
    code, root, work = snippets(), tmp_path / "root", tmp_path / "work"
    work.mkdir()
    (work / "daemon.py").write_text(code["daemon.py"])
    env = environment(root)
    serve = popen_interruptible(["bash", "-c", code["serve"]], cwd=work, env=env)
    proc_registry.popens.append(serve)  # type: ignore[arg-type]
    proc_registry.track(serve.pid)

    def serving() -> int | None:
        rec = holder(root, "web")
        port = None if rec is None or rec.child is None else rec.holder.port
        return port if port is not None and open_ports([port]) == [port] else None

    port = wait_for(serving, what="the guide's tenure run to serve")
    assert BLOCK.extra is not None
    assert port == BLOCK.extra[0]
    assert run(["tenure", "stop", "web"], work, env).returncode == 0
    assert serve.wait(60) == 0
    kit = run(["bash", "-c", code["kit"]], work, env)
    assert kit.returncode == 0, kit.stdout + kit.stderr
    assert "14/14 checks passed" in kit.stdout
