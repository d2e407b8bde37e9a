"""`tenure.hold` / `tenure.hold_async`: a tool's own daemon governs itself (real processes)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

import tenure
from tenure.adapters.root import ensure_root
from tenure.adapters.store import LeaseStore
from tenure.adapters.tombstones import read_tombstones
from tenure.adapters.waiting import wait_until
from tenure.core.handover import decide_stop_request, decide_supersede
from tenure.core.record import Child, Holder, LeaseRecord, LeaseState
from tenure.core.timing import Timing
from tenure.testing import ProcessRegistry, pid_gone
from tests.conftest import (
    HERE,
    assert_published_shape,
    block,
    popen_interruptible,
    remove_tree,
    stop_outside_lock,
    wait_for,
)

EXAMPLE = HERE.parent / "examples" / "held.py"
FAST = {"TENURE_LEASE_TTL": "3", "TENURE_HEARTBEAT": "0.5"}


def start(root: Path, registry: ProcessRegistry, version: str = "1.0") -> subprocess.Popen[str]:
    proc, said = started(registry, str(EXAMPLE), str(root), version)
    assert said.startswith("holding epoch")
    return proc


def started(
    registry: ProcessRegistry, *args: str, timing: dict[str, str] = FAST
) -> tuple[subprocess.Popen[str], str]:
    """`python ARGS` with the fast timing (or `timing`), tracked by `registry`, and its first
    line."""
    proc = popen_interruptible(
        [sys.executable, *args],
        env={**os.environ, **timing},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    registry.popens.append(proc)  # type: ignore[arg-type]
    registry.track(proc.pid)
    assert proc.stdout is not None
    return proc, proc.stdout.readline()


def another_copy(root: Path, version: str = "1.0") -> subprocess.CompletedProcess[str]:
    """Run one more copy of the example to its end (a refused copy exits at once)."""
    return subprocess.run(
        [sys.executable, str(EXAMPLE), str(root), version],
        env={**os.environ, **FAST},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_tenure(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m tenure ARGS` with `env`, to its end."""
    return subprocess.run(
        [sys.executable, "-m", "tenure", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def record(root: Path) -> LeaseRecord:
    rec = LeaseStore(root, "indexer").read()
    assert isinstance(rec, LeaseRecord)
    return rec


def test_the_example_is_small() -> None:
    """The daemon side of adoption fits in about fifteen lines."""
    code = [
        line
        for line in EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", '"""'))
    ]
    assert len(code) <= 15


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_retires_gracefully_with_a_tombstone_and_a_released_record(
    tmp_path: Path, proc_registry: ProcessRegistry, sig: signal.Signals
) -> None:
    """SIGTERM or Ctrl-C: drain, release, tombstone `signal`, exit 0, no traceback."""
    root = tmp_path / "root"
    proc = start(root, proc_registry)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "retiring: signal" in out
    assert record(root).state is LeaseState.RELEASED
    assert [t["reason"] for t in read_tombstones(root)] == ["signal"]


def test_a_second_copy_is_refused_in_words(tmp_path: Path, proc_registry: ProcessRegistry) -> None:
    """The holder is named by pid and version; no Python repr such as `port None`."""
    root = tmp_path / "root"
    first = start(root, proc_registry)
    second = another_copy(root)
    assert second.returncode == 1
    assert f"held by pid {first.pid}, version 1.0, without a control port" in second.stderr
    assert "None" not in second.stderr


def test_supersession_through_the_record_needs_no_http(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """A newer version's mark in the record makes the holder leave within a heartbeat."""
    root = tmp_path / "root"
    proc = start(root, proc_registry)
    store = LeaseStore(root, "indexer")
    store.transact(lambda cur: (None, decide_supersede(cur, "2.0", os.getpid(), 0.0).write))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "retiring: superseded" in out
    assert [t["reason"] for t in read_tombstones(root)] == ["superseded"]


def test_a_newer_copy_started_directly_supersedes_the_running_one(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """No launcher: `tenure.hold` with a newer version marks the record, the old copy (no HTTP)
    leaves within a heartbeat, and the new one holds; an older copy is still refused."""
    root = tmp_path / "root"
    old = start(root, proc_registry, "1.0")
    new = start(root, proc_registry, "1.1")  # returns once it holds
    out, err = old.communicate(timeout=60)
    assert old.returncode == 0, err
    assert "retiring: superseded" in out
    rec = record(root)
    assert (rec.holder.pid, rec.holder.version, rec.state) == (new.pid, "1.1", LeaseState.HELD)
    assert [t["reason"] for t in read_tombstones(root)] == ["superseded"]
    older = another_copy(root, "1.0")
    assert older.returncode == 1
    assert f"held by pid {new.pid}, version 1.1" in older.stderr
    assert new.poll() is None


def test_a_shell_that_exports_tenure_family_does_not_stop_a_direct_start_superseding(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`TENURE_FAMILY` naming the family with no launcher holding the start lock (a shell that
    exports it): the newer copy still supersedes, as any direct start (control.md#ensure);
    it used to leave that to a launcher that did not exist, and was refused."""
    root = tmp_path / "root"
    old = start(root, proc_registry, "1.0")
    shell = {**FAST, "TENURE_FAMILY": "indexer"}
    new, said = started(proc_registry, str(EXAMPLE), str(root), "1.1", timing=shell)
    assert said.startswith("holding epoch"), new.communicate(timeout=60)
    out, err = old.communicate(timeout=60)
    assert old.returncode == 0, err
    assert "retiring: superseded" in out
    assert (record(root).holder.pid, record(root).holder.version) == (new.pid, "1.1")


def test_removing_the_root_retires_the_holder(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """No root, no lease: the holder leaves and writes nothing."""

    root = tmp_path / "root"
    proc = start(root, proc_registry)
    remove_tree(root)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "retiring: root_gone" in out
    assert not root.exists()


def test_hold_async_waits_without_blocking_the_loop(tmp_path: Path) -> None:
    """`async with hold_async` yields; `await held.wait_async()` returns the reason."""
    root = ensure_root(tmp_path / "root")
    timing = Timing(ttl_s=3.0, heartbeat_s=0.5, drain_s=0.1)

    async def daemon() -> str | None:
        async with tenure.hold_async("indexer", version="1.0", root=root, timing=timing) as held:
            ticks = 0

            async def supersede_soon() -> None:
                await asyncio.sleep(0)  # let the daemon start waiting first
                LeaseStore(root, "indexer").transact(
                    lambda cur: (None, decide_supersede(cur, "2.0", os.getpid(), 0.0).write)
                )

            waiter = asyncio.create_task(held.wait_async())
            await supersede_soon()
            while not waiter.done():
                ticks += 1  # the loop keeps running while the holder waits
                await asyncio.sleep(0.05)
            reason = await waiter
            assert ticks > 0
            return None if reason is None else reason.value

    assert asyncio.run(daemon()) == "superseded"
    wait_for(lambda: record(root).state is LeaseState.RELEASED, what="release")


# --- tenure.ensure: the CLI side, for any family ----------------------------------------------

CLI = HERE.parent / "examples" / "ensure_cli.py"
RANGE = "{}-{}".format(*block("test_hold").extra)  # type: ignore[str-format]


def ensure_via_cli(
    root: Path, version: str, registry: ProcessRegistry, cli: Path = CLI, **extra: str
) -> dict[str, object]:
    """Run the example tool CLI (a real process) and register the daemon it ensured."""
    env = {
        **os.environ,
        **FAST,
        **extra,
        "TENURE_ROOT": str(root),
        "TENURE_SYNC_PORTS": block("test_hold").sync_env,
        "TENURE_DASHBOARD_PORTS": block("test_hold").dashboard_env,
    }
    done = subprocess.run(
        [sys.executable, str(cli), version, RANGE],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    registry.track(int(found["pid"]))  # type: ignore[call-overload]
    return found


def test_ensure_starts_reuses_and_supersedes(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """Exactly one daemon: started, then reused, then superseded by a newer version."""
    root = tmp_path / "root"
    first = ensure_via_cli(root, "1.0", proc_registry)
    assert first["action"] == "started"
    lo, hi = block("test_hold").extra  # type: ignore[misc]
    assert lo <= first["port"] <= hi  # type: ignore[operator]
    assert record(root).ports == (lo, hi)  # the range travels in the record
    assert_published_shape(root / "leases" / "indexer.json")
    again = ensure_via_cli(root, "1.0", proc_registry)
    assert (again["action"], again["pid"]) == ("reused", first["pid"])
    newer = ensure_via_cli(root, "2.0", proc_registry)
    assert newer["action"] == "superseded"
    assert newer["pid"] != first["pid"]
    assert newer["epoch"] == first["epoch"] + 1  # type: ignore[operator]
    wait_for(lambda: pid_gone(int(first["pid"])), what="the superseded daemon to leave")  # type: ignore[call-overload]
    assert [t["reason"] for t in read_tombstones(root) if t["pid"] == first["pid"]] == [
        "superseded"
    ]


def test_a_custom_family_shows_in_ls_and_the_doctor(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`tenure ls` and `tenure auth doctor` find the family from its record and scan its range;
    its daemon is the lease holder, never touched."""
    root = tmp_path / "root"
    found = ensure_via_cli(root, "1.0", proc_registry)
    env = {
        **os.environ,
        "TENURE_ROOT": str(root),
        "TENURE_SYNC_PORTS": block("test_hold").sync_env,
        "TENURE_DASHBOARD_PORTS": block("test_hold").dashboard_env,
    }

    def cli(*args: str) -> dict[str, object]:
        done = run_tenure(env, *args)
        assert done.returncode in (0, 1), done.stderr
        doc: dict[str, object] = json.loads(done.stdout)
        return doc

    ls = cli("ls", "--json")
    families = {f["family"]: f for f in ls["families"]}  # type: ignore[attr-defined]
    assert families["indexer"]["state"] == "held"
    assert families["indexer"]["holder_pid"] == found["pid"]
    assert families["indexer"]["other_listeners"] == {}
    doctor = cli("auth", "doctor", "--json")
    leases = {lease["family"]: lease for lease in doctor["leases"]}  # type: ignore[attr-defined]
    assert leases["indexer"]["state"] == "held"
    (cand,) = [c for c in doctor["candidates"] if c["port"] == found["port"]]  # type: ignore[attr-defined]
    assert (cand["scan_family"], cand["cleanup_class"], cand["skip_reason"]) == (
        "indexer",
        "never_touch",
        "lease_holder",
    )


def test_tenure_stop_ends_any_family_by_verified_identity(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`tenure.stop(family)`: the record's mark, then SIGTERM to the recorded holder, which
    retires gracefully on whichever it sees first (reason signal or requested)."""
    root = tmp_path / "root"
    found = ensure_via_cli(root, "1.0", proc_registry)
    assert tenure.status("indexer", root).state == "held"
    assert tenure.stop("indexer", root) == found["pid"]
    assert pid_gone(int(found["pid"]))  # type: ignore[call-overload]
    assert tenure.status("indexer", root).state == "released"
    reasons = [t["reason"] for t in read_tombstones(root)]
    assert reasons in (["signal"], ["requested"])
    assert tenure.stop("indexer", root) is None


def test_the_verbs_know_which_families_the_root_has(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`tenure stop|status NOSUCH` exit 5 naming the root's families (systemctl's "no such
    unit"); a known family with nothing running stops with 0; `tenure status` alone is the
    overview of every family."""
    root = tmp_path / "root"
    found = ensure_via_cli(root, "1.0", proc_registry)
    env = {**os.environ, **FAST, "TENURE_ROOT": str(root)}

    def tenure_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_tenure(env, *args)

    for verb in ("stop", "status"):
        unknown = tenure_cli(verb, "nosuchfamily")
        assert unknown.returncode == 5, unknown.stderr
        assert "no family 'nosuchfamily'" in unknown.stderr
        assert "indexer" in unknown.stderr
    overview = tenure_cli("status")
    assert overview.returncode == 0, overview.stderr
    lines = overview.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["sync", "dashboard", "indexer"]
    assert f"pid {found['pid']}" in lines[3]
    assert tenure_cli("stop", "indexer").returncode == 0
    again = tenure_cli("stop", "indexer")
    assert (again.returncode, again.stdout) == (0, "no indexer daemon running\n")


# --- tenure run: an unmodified daemon, governed -----------------------------------------------

SERVER = [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]


def run_argv(version: str, *rest: str) -> list[str]:
    """`tenure run --family web --version VERSION REST…`."""
    return [sys.executable, "-m", "tenure", "run", "--family", "web", "--version", version, *rest]


def run_wrapped(
    root: Path, registry: ProcessRegistry, version: str, *command: str
) -> tuple[subprocess.Popen[str], int]:
    """`tenure run` in the background; returns the wrapper and, once it holds, its child pid."""
    wrapper = popen_interruptible(
        run_argv(version, "--ports", RANGE, "--", *(command or SERVER)),
        env={**os.environ, **FAST, "TENURE_ROOT": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    registry.popens.append(wrapper)  # type: ignore[arg-type]
    registry.track(wrapper.pid)

    def child() -> int | None:
        if wrapper.poll() is not None:
            assert wrapper.stderr is not None
            raise AssertionError(
                f"tenure run exited {wrapper.returncode} before holding: {wrapper.stderr.read()}"
            )
        rec = LeaseStore(root, "web").read()
        held = isinstance(rec, LeaseRecord) and rec.holder.pid == wrapper.pid
        # The record names the child (the wrapper may have a watchdog child too).
        return rec.child.pid if held and rec.child else None  # type: ignore[union-attr]

    pid = wait_for(child, what="the wrapper to hold the lease and start its child")
    registry.track(int(pid))  # type: ignore[call-overload]
    return wrapper, int(pid)  # type: ignore[call-overload]


def test_run_governs_an_unmodified_server_through_supersession(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """A newer `tenure run` supersedes: the old wrapper stops its child, says who took its
    place, and exits 0."""
    root = tmp_path / "root"
    old, old_child = run_wrapped(root, proc_registry, "1.0")
    new, new_child = run_wrapped(root, proc_registry, "2.0")
    _out, said = old.communicate(timeout=60)
    assert old.returncode == 0
    assert f"web 1.0 superseded by 2.0 (pid {new.pid}), which serves; leaving" in said
    assert pid_gone(old_child)
    assert new.poll() is None
    rec = LeaseStore(root, "web").read()
    assert isinstance(rec, LeaseRecord)
    assert (rec.holder.pid, rec.holder.version) == (new.pid, "2.0")
    assert rec.child is not None
    assert rec.child.pid == new_child
    assert not pid_gone(new_child)
    assert_published_shape(root / "leases" / "web.json")
    doctor = subprocess.run(
        [sys.executable, "-m", "tenure", "auth", "doctor", "--json"],
        env={
            **os.environ,
            "TENURE_ROOT": str(root),
            "TENURE_SYNC_PORTS": block("test_hold").sync_env,
            "TENURE_DASHBOARD_PORTS": block("test_hold").dashboard_env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    (cand,) = [c for c in json.loads(doctor.stdout)["candidates"] if c["pid"] == new_child]
    assert (cand["scan_family"], cand["skip_reason"]) == ("web", "lease_holder")


def test_run_refuses_when_an_equal_version_holds(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """An equal or newer holder is named on stderr; exit 1; it keeps running."""
    root = tmp_path / "root"
    first, child = run_wrapped(root, proc_registry, "1.0")
    again = subprocess.run(
        run_argv("1.0", "--ports", RANGE, "--", *SERVER),
        env={**os.environ, **FAST, "TENURE_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 1
    assert f"held by pid {first.pid}" in again.stderr
    assert first.poll() is None
    assert not pid_gone(child)


def test_removing_the_root_stops_the_governed_child(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """No root, no lease, no child."""

    root = tmp_path / "root"
    wrapper, child = run_wrapped(root, proc_registry, "1.0")
    remove_tree(root)
    assert wrapper.wait(60) == 0
    assert pid_gone(child)


def test_a_killed_wrapper_takes_its_child_along(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """SIGKILL to the wrapper: the child gets its parent-death signal (or, where there is none,
    the wrapper's watchdog ends it); nothing outlives it."""
    root = tmp_path / "root"
    wrapper, child = run_wrapped(root, proc_registry, "1.0")
    wrapper.kill()
    wrapper.wait(30)
    wait_for(lambda: pid_gone(child), what="the orphaned child to die with its wrapper")


def test_a_child_that_exits_on_its_own_releases_the_lease(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """The wrapper exits with the child's code and releases the lease."""
    root = tmp_path / "root"
    done = subprocess.run(
        run_argv("1.0", "--", sys.executable, "-c", "import sys; sys.exit(7)"),
        env={**os.environ, **FAST, "TENURE_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 7, done.stderr
    rec = LeaseStore(root, "web").read()
    assert isinstance(rec, LeaseRecord)
    assert rec.state is LeaseState.RELEASED


def test_a_new_holder_stops_a_dead_wrappers_surviving_child(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """Where no parent-death signal reached it, a dead `tenure run` holder's child is stopped by
    the next holder, by the identity recorded in the lease (control.md#run)."""
    root = ensure_root(tmp_path / "root")
    orphan = proc_registry.spawn([sys.executable, "-c", "import time; time.sleep(120)"])
    dead = proc_registry.spawn([sys.executable, "-c", "import time; time.sleep(120)"])
    dead_ctime = psutil.Process(dead.pid).create_time()
    dead.kill()  # the wrapper, SIGKILLed; its child (the orphan) survived it
    dead.wait(30)
    orphan_ctime = psutil.Process(orphan.pid).create_time()
    holder = Holder(dead.pid, dead_ctime, "f" * 16, "1.0", None, dead_ctime)
    stale = LeaseRecord(
        "indexer", 1, holder, 3.0, dead_ctime, 0, LeaseState.HELD,
        child=Child(orphan.pid, orphan_ctime),
    )  # fmt: skip
    LeaseStore(root, "indexer").transact(lambda _cur: (None, stale))
    new = start(root, proc_registry, "1.0")
    wait_for(lambda: orphan.poll() is not None, what="the orphaned child to be stopped")
    assert orphan.returncode == -signal.SIGTERM
    assert record(root).holder.pid == new.pid
    assert record(root).epoch == 2


def answers(port: int) -> int | None:
    """The HTTP status of GET / on loopback `port`, or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
            return int(page.status)
    except OSError:
        return None


def test_ensure_keeps_an_unmodified_server_running_under_tenure_run(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """examples/run_cli.py: `tenure.ensure` + `tenure run` around `python -m http.server`."""
    root = tmp_path / "root"
    run_cli = HERE.parent / "examples" / "run_cli.py"

    def served_child() -> int:
        def named() -> int | None:
            rec = LeaseStore(root, "web").read()
            return rec.child.pid if isinstance(rec, LeaseRecord) and rec.child else None

        pid = int(wait_for(named, what="the wrapper to name its child"))  # type: ignore[call-overload]
        proc_registry.track(pid)
        return pid

    first = ensure_via_cli(root, "1.0", proc_registry, run_cli)
    assert first["action"] == "started"
    child = served_child()
    # `ensure` returns once the wrapper holds the lease; the server it starts then binds.
    assert wait_for(lambda: answers(int(first["port"])), what="the server to answer") == 200  # type: ignore[call-overload]
    again = ensure_via_cli(root, "1.0", proc_registry, run_cli)
    assert (again["action"], again["pid"]) == ("reused", first["pid"])
    newer = ensure_via_cli(root, "2.0", proc_registry, run_cli)
    assert newer["action"] == "superseded"
    wait_for(lambda: pid_gone(child), what="the old server to be stopped by its wrapper")
    wait_for(lambda: pid_gone(int(first["pid"])), what="the old wrapper to leave")  # type: ignore[call-overload]
    assert served_child() != child


def test_run_cli_works_where_only_the_library_is_installed(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """examples/run_cli.py with typer, rich and click not importable (`pip install tenure`
    without the `cli` extra): `python -m tenure run -- CMD` needs none of them."""
    root, shims = tmp_path / "root", tmp_path / "shims"
    for name in ("typer", "rich", "click"):
        (shims / name).mkdir(parents=True)
        (shims / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError('No module named {name!r}', name={name!r})\n"
        )
    run_cli = HERE.parent / "examples" / "run_cli.py"
    found = ensure_via_cli(root, "1.0", proc_registry, run_cli, PYTHONPATH=str(shims))
    assert found["action"] == "started"
    assert wait_for(lambda: answers(int(found["port"])), what="the server to answer") == 200  # type: ignore[call-overload]
    assert tenure.stop("web", root) == found["pid"]


def test_ensure_takes_over_from_a_stopped_older_holder_which_then_leaves(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """The upgrade story when the old daemon cannot see the mark (SIGSTOP, a closed laptop):
    its lease runs out, the new daemon takes it, and the old one, resumed, leaves by itself
    without writing (adopting.md#what-happens-on-upgrade)."""
    root = tmp_path / "root"
    old = start(root, proc_registry, "1.0")
    old_epoch = record(root).epoch
    stop_outside_lock(old.pid, LeaseStore(root, "indexer").lock_path)
    try:
        newer = ensure_via_cli(root, "2.0", proc_registry)
    finally:
        os.kill(old.pid, signal.SIGCONT)
    assert newer["action"] == "superseded"
    assert newer["epoch"] == old_epoch + 1
    assert old.wait(60) == 0
    assert old.stdout is not None
    assert old.stdout.read().strip() in {"retiring: lease_expired", "retiring: lease_lost"}
    rec = record(root)
    assert (rec.holder.pid, rec.epoch, rec.state) == (newer["pid"], old_epoch + 1, LeaseState.HELD)


def test_run_takes_over_from_a_stopped_older_wrapper_which_then_stops_its_child(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """A newer `tenure run` by hand, the old wrapper stopped (it cannot see the mark): the new
    one takes the lease once its expiry is confirmed; the old one, resumed, stops its child and
    leaves without writing."""
    root = tmp_path / "root"
    old, old_child = run_wrapped(root, proc_registry, "1.0")
    old_epoch = LeaseStore(root, "web").read().epoch  # type: ignore[union-attr]
    stop_outside_lock(old.pid, LeaseStore(root, "web").lock_path)
    try:
        new, new_child = run_wrapped(root, proc_registry, "2.0")
    finally:
        os.kill(old.pid, signal.SIGCONT)
    assert old.wait(60) == 0
    wait_for(lambda: pid_gone(old_child), what="the resumed wrapper to stop its child")
    rec = LeaseStore(root, "web").read()
    assert isinstance(rec, LeaseRecord)
    assert (rec.holder.pid, rec.epoch, rec.state) == (new.pid, old_epoch + 1, LeaseState.HELD)
    assert rec.child is not None
    assert rec.child.pid == new_child
    assert not pid_gone(new_child)


def test_leaving_the_block_drains_work_in_flight(tmp_path: Path) -> None:
    """The owner leaves `hold`'s block while another thread is inside `held.work()`: the
    graceful leave waits for that work (within the drain bound) before it releases, and the
    tombstone says `shutdown`."""
    import threading

    root = tmp_path / "root"
    inside, finished = threading.Event(), threading.Event()
    timing = Timing(ttl_s=3.0, heartbeat_s=0.5, idle_s=0.0, drain_s=60.0)

    store = LeaseStore(root, "drainer")
    seen: list[LeaseState] = []

    def worker(held: tenure.Held) -> None:
        with held.work():
            inside.set()
            held.retiring.wait(60)  # the leave has begun
            # A leave that does not drain releases now; one that drains cannot while we work.
            wait_until(
                lambda: (r := store.read()) is not None and r.state is LeaseState.RELEASED, 0.5
            )
            current = store.read()
            assert isinstance(current, LeaseRecord)
            seen.append(current.state)
            finished.set()

    with tenure.hold("drainer", version="1.0", root=root, timing=timing) as held:
        thread = threading.Thread(target=worker, args=(held,))
        thread.start()
        assert inside.wait(60)
    assert finished.is_set()  # the block did not end before the work in flight did
    assert seen == [LeaseState.HELD]  # nothing was released while the work was in flight
    thread.join(60)
    rec = LeaseStore(root, "drainer").read()
    assert isinstance(rec, LeaseRecord)
    assert rec.state is LeaseState.RELEASED
    assert [t["reason"] for t in read_tombstones(root)] == ["shutdown"]


DEAF = (
    "import signal, sys, tenure\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "with tenure.hold('deaf', version='1.0', root=sys.argv[1], handle_signals=False) as held:\n"
    "    print('holding', flush=True)\n"
    "    held.retiring.wait()\n"
    "print('retiring:', held.reason, flush=True)\n"
)


def test_stop_asks_through_the_record_first(tmp_path: Path, proc_registry: ProcessRegistry) -> None:
    """lease.md#stop: `tenure.stop` marks the record before any signal, so a holder that
    ignores SIGTERM (and on Windows, where there is no graceful signal, every holder) still
    drains, releases and leaves with reason `requested` instead of being killed."""
    root = tmp_path / "root"
    deaf, said = started(proc_registry, "-c", DEAF, str(root))
    assert said.strip() == "holding"
    assert tenure.stop("deaf", root) == deaf.pid
    out, err = deaf.communicate(timeout=60)
    assert deaf.returncode == 0, err  # left by itself: not SIGKILLed after the grace
    assert "retiring: requested" in out
    assert [t["reason"] for t in read_tombstones(root)] == ["requested"]
    rec = LeaseStore(root, "deaf").read()
    assert isinstance(rec, LeaseRecord)
    assert rec.state is LeaseState.RELEASED


@pytest.mark.process
@pytest.mark.parametrize("mark", ["superseded_by", "stop_requested"])
def test_a_mark_in_the_record_is_acted_on_between_heartbeats(
    tmp_path: Path, proc_registry: ProcessRegistry, mark: str
) -> None:
    """With a 30 s heartbeat, a newer version's mark (or a stop asked) is seen by the holder's
    look at its record between heartbeats: it has released long before its next beat."""
    root = tmp_path / "root"
    slow = {"TENURE_LEASE_TTL": "90", "TENURE_HEARTBEAT": "30"}
    proc, said = started(proc_registry, str(EXAMPLE), str(root), "1.0", timing=slow)
    assert said.startswith("holding epoch")
    store = LeaseStore(root, "indexer")
    held = store.read()
    assert isinstance(held, LeaseRecord)
    if mark == "superseded_by":
        store.transact(lambda cur: (None, decide_supersede(cur, "2.0", os.getpid(), 0.0).write))
    else:
        store.transact(lambda cur: (None, decide_stop_request(cur, held.epoch, os.getpid(), 0.0)))
    # Half the heartbeat: the beat itself would come only after 30 s.
    _out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    reason = "superseded" if mark == "superseded_by" else "requested"
    assert [t["reason"] for t in read_tombstones(root)] == [reason]


def test_two_families_sharing_ports_are_reported_and_warned_about(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`indexer` (ensure) and `web` (`tenure run`) on one range: the start that creates the
    overlap warns on stderr, and the doctor's finding names both families and the ports."""
    root = tmp_path / "root"
    ensure_via_cli(root, "1.0", proc_registry)
    wrapper, _child = run_wrapped(root, proc_registry, "1.0")
    doctor = subprocess.run(
        [sys.executable, "-m", "tenure", "auth", "doctor", "--json"],
        env={**os.environ, "TENURE_ROOT": str(root), "SPEC_KITTY_HOME": str(tmp_path / "lg")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = {f["id"]: f for f in json.loads(doctor.stdout)["findings"]}
    assert "ports_overlap:indexer:web" in findings, sorted(findings)
    assert f"share ports {RANGE}" in findings["ports_overlap:indexer:web"]["summary"]
    assert tenure.stop("web", root) == wrapper.pid
    _out, err = wrapper.communicate(timeout=60)
    assert f"warning: web's ports {RANGE} overlap indexer's ({RANGE})" in err


def test_every_holder_writes_its_life_to_the_familys_log(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """A `tenure.hold` daemon started by hand, a `tenure run` wrapper and a daemon `ensure`
    spawned each write holding, retiring and left lines to `logs/<family>.log`, which
    `tenure logs FAMILY [--since]` shows (the reference daemons always did)."""
    root = tmp_path / "root"
    env = {**os.environ, **FAST, "TENURE_ROOT": str(root)}

    def logs(family: str, *args: str) -> subprocess.CompletedProcess[str]:
        return run_tenure(env, "logs", family, *args)

    by_hand = start(root, proc_registry)
    wrapper, _child = run_wrapped(root, proc_registry, "1.0")
    for family, pid in (("indexer", by_hand.pid), ("web", wrapper.pid)):
        shown = logs(family)
        assert shown.returncode == 0, shown.stderr
        assert f"tenure[{pid}] holding {family} lease epoch 1: version 1.0" in shown.stdout
        assert tenure.stop(family, root) == pid
    assert by_hand.wait(60) == 0
    assert wrapper.wait(60) == 0
    for family in ("indexer", "web"):
        said = logs(family, "--since", "1h").stdout
        assert "retiring: " in said, said
        assert "left epoch 1" in said, said
    spawned = ensure_via_cli(root, "1.1", proc_registry)
    # `ensure` returns once the record names the daemon, a moment before it logs holding.
    line = f"tenure[{spawned['pid']}] holding indexer lease epoch 2: version 1.1"
    wait_for(lambda: line in logs("indexer", "-n", "5").stdout, what="the spawned daemon's line")
    bad = logs("indexer", "--since", "ten minutes")
    assert bad.returncode == 2
    assert "not a duration" in bad.stderr


def test_run_detach_then_stop_then_start_serves_again(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`tenure run --detach` returns once the wrapper holds (its output in the family's log);
    `tenure stop det` ends it; `tenure start det` starts it again from the recorded command
    (never the environment), and `tenure restart det` does both."""
    root = tmp_path / "root"
    env = {**os.environ, **FAST, "TENURE_ROOT": str(root), "SECRET_TOKEN": "s3cr3t"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = run_tenure(env, *args)
        for pid in re.findall(r"pid (\d+)", done.stdout):
            proc_registry.track(int(pid))
        return done

    def serving() -> int | None:
        rec = LeaseStore(root, "det").read()
        if not (isinstance(rec, LeaseRecord) and rec.state is LeaseState.HELD and rec.child):
            return None
        port = rec.holder.port
        return rec.holder.pid if port is not None and answers(port) is not None else None

    started = cli("run", "--detach", "--family", "det", "--version", "1.0", "--ports", RANGE,
                  "--", *SERVER)  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("det started: pid ")
    first = wait_for(serving, what="the detached wrapper's server to answer")
    assert "holding det lease epoch 1" in cli("logs", "det").stdout
    assert cli("stop", "det").returncode == 0
    assert pid_gone(first)
    recorded = (root / "leases" / "det.command.json").read_text()
    assert "s3cr3t" not in recorded
    again = cli("start", "det")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("det started: pid ")
    second = wait_for(serving, what="the started-again server to answer")
    assert second != first
    restarted = cli("restart", "det")
    assert restarted.returncode == 0, restarted.stderr
    assert pid_gone(second)
    third = wait_for(serving, what="the restarted server to answer")
    assert cli("stop", "det").returncode == 0
    assert pid_gone(third)
    never = cli("start", "nosuchfamily")
    assert never.returncode == 5


def test_a_first_start_that_never_ran_leaves_no_record_behind(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """A typo in the server's arguments on the family's very first start: the command exits
    before it is ready, and `tenure ls` does not list a family that never ran (its released
    record is removed at once; the lock and epoch floor stay). After a real start the record
    is history and stays."""
    root = tmp_path / "root"
    env = {**os.environ, **FAST, "TENURE_ROOT": str(root)}
    typo = [*SERVER[:-2], "--bnid", "127.0.0.1"]

    def run_typo() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            run_argv("1.0", "--ports", RANGE, "--", *typo),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = run_typo()
    assert first.returncode == 2
    assert "web never started (its command exited with code 2 before it was ready)" in first.stderr
    assert not (root / "leases" / "web.json").exists()
    assert (root / "leases" / "web.epoch").read_text().strip() == "1"
    wrapper, _child = run_wrapped(root, proc_registry, "1.0")
    assert tenure.stop("web", root) == wrapper.pid
    wrapper.wait(60)
    again = run_typo()
    assert again.returncode == 2
    assert "never started" not in again.stderr
    assert record_of(root, "web").epoch == 3


def record_of(root: Path, family: str) -> LeaseRecord:
    rec = LeaseStore(root, family).read()
    assert isinstance(rec, LeaseRecord)
    return rec


def test_the_public_api_resolves_and_hold_async_takes_control(tmp_path: Path) -> None:
    """Every public class's annotations resolve (`typing.get_type_hints`), every error tenure
    raises is a `TenureError`, and `hold_async(control=True)` records the control port as
    `hold` does."""
    import typing

    from tenure.errors import NotRegularFile

    for name in tenure.__all__:
        obj = getattr(tenure, name)
        if isinstance(obj, type):
            typing.get_type_hints(obj)
    assert issubclass(NotRegularFile, tenure.TenureError)
    assert issubclass(NotRegularFile, OSError)

    async def held_control() -> bool:
        async with tenure.hold_async(
            "ctl",
            version="1.0",
            root=tmp_path,
            port=int(RANGE.split("-")[1]),
            control=True,
            timing=tenure.Timing(ttl_s=3.0, heartbeat_s=0.5),
            handle_signals=False,
        ):
            rec = LeaseStore(tmp_path, "ctl").read()
            assert isinstance(rec, LeaseRecord)
            return rec.holder.control

    assert asyncio.run(held_control()) is True
