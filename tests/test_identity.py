"""Identity that survives clock steps, containers and forks (lease.md#identity, #foreign, #fork).

Staged for real, as root, in private namespaces: a clock step as psutil sees it (a mount
namespace whose /proc/stat carries a shifted `btime`), two pid namespaces sharing one root
(with and without a shared network namespace), a contender whose wall clock runs 30 s ahead
(an LD_PRELOAD shim over clock_gettime), fork and multiprocessing inside `hold`, a cancelled
`hold_async`, and a root removed under a live daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tenure.adapters.http import health
from tenure.adapters.procinfo import read_process
from tenure.adapters.store import LeaseStore
from tenure.adapters.tombstones import read_tombstones
from tenure.core.record import LeaseRecord, LeaseState
from tenure.testing import ProcessRegistry, pid_gone
from tests.conftest import HERE, PY, block, linux_only, remove_tree, stop_outside_lock, wait_for

BLOCK = block(__name__)
WEB = f"{BLOCK.extra[0]}-{BLOCK.extra[1]}" if BLOCK.extra else ""
FAST = {"TENURE_LEASE_TTL": "3", "TENURE_HEARTBEAT": "0.5"}
# Reaps its command and keeps a pid namespace alive: pid 1 there, so the governed processes
# get ordinary pids (2, 3, ...) that a second namespace can collide with.
NS_INIT = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def _can_unshare(*flags: str) -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", *flags, "true"], capture_output=True, check=False)
    return probe.returncode == 0


needs_mount_ns = pytest.mark.skipif(
    not _can_unshare("-m", "--propagation", "private"),
    reason="staging a clock step needs root and unshare -m (a private mount namespace)",
)
needs_pid_ns = pytest.mark.skipif(
    not _can_unshare("-n", "-p", "-f", "--mount-proc"),
    reason="two pid namespaces need root and unshare -npf --mount-proc",
)


def env_for(root: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "TENURE_ROOT": str(root),
        "TENURE_DASHBOARD_PORTS": BLOCK.dashboard_env,
        "TENURE_SYNC_PORTS": BLOCK.sync_env,
        **FAST,
        **extra,
    }
    env.pop("TENURE_VERSION", None)
    return env


def tenure_cli(
    argv: list[str], env: dict[str, str], prefix: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(prefix or []), PY, "-m", "tenure", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def held_when(root: Path, family: str, ready: Callable[[LeaseRecord], bool]) -> LeaseRecord:
    """Wait until the family's record satisfies `ready`; that record."""

    def check() -> LeaseRecord | None:
        rec = LeaseStore(root, family).read()
        return rec if isinstance(rec, LeaseRecord) and ready(rec) else None

    found = wait_for(check, what=f"the {family} record to be ready")
    assert isinstance(found, LeaseRecord)
    return found


def record(root: Path, family: str) -> LeaseRecord:
    rec = LeaseStore(root, family).read()
    assert isinstance(rec, LeaseRecord), rec
    return rec


# --- a wall-clock step as psutil sees it ---------------------------------------------------


@pytest.fixture
def stepped_stat(tmp_path: Path) -> Path:
    """A copy of /proc/stat whose boot time is 2 s later: psutil's create_time moves by 2 s."""
    lines = Path("/proc/stat").read_text().splitlines()
    shifted = [
        f"btime {int(line.split()[1]) + 2}" if line.startswith("btime ") else line for line in lines
    ]
    path = tmp_path / "stat.stepped"
    path.write_text("\n".join(shifted) + "\n")
    return path


def after_step(stat: Path) -> list[str]:
    """argv prefix: run the command in a mount namespace that sees the stepped clock."""
    script = f'mount --bind {stat} /proc/stat && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]


@needs_mount_ns
@linux_only("start ticks from /proc")
def test_a_clock_step_neither_evicts_a_live_holder_nor_blocks_its_stop(
    tmp_path: Path, proc_registry: ProcessRegistry, stepped_stat: Path
) -> None:
    """After a wall-clock step an equal-version start reuses the holder, and `stop` stops a
    holder that does not answer (its start time, counted since boot, did not move)."""
    env = env_for(tmp_path / "root")
    first = tenure_cli(["dashboard", "start", "--json"], env)
    proc_registry.track_root((tmp_path / "root").resolve())
    assert first.returncode == 0, first.stderr
    pid = json.loads(first.stdout)["pid"]
    probe = subprocess.run(
        [
            *after_step(stepped_stat),
            PY,
            "-c",
            f"import psutil; print(psutil.Process({pid}).create_time())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    recorded = record(tmp_path / "root", "dashboard").holder.create_time
    assert float(probe.stdout) - recorded == pytest.approx(2.0, abs=0.05)  # the step is staged

    again = tenure_cli(["dashboard", "start", "--json"], env, after_step(stepped_stat))
    proc_registry.track_root((tmp_path / "root").resolve())
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["action"], json.loads(again.stdout)["pid"]) == ("reused", pid)

    stop_outside_lock(pid, LeaseStore(tmp_path / "root", "dashboard").lock_path)
    stopped = tenure_cli(["dashboard", "stop", "--json"], env, after_step(stepped_stat))
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: pid_gone(pid), what=f"holder pid {pid} stopped")


@needs_mount_ns
def test_a_wrapper_that_saw_a_clock_step_still_stops_its_child(
    tmp_path: Path, proc_registry: ProcessRegistry, stepped_stat: Path
) -> None:
    """`tenure run` stops its own child through Popen: a clock step between start and SIGTERM
    cannot make it refuse, hang, or leave the child serving."""
    root = tmp_path / "root"
    argv = ["unshare", "-m", "--propagation", "private", PY, "-m", "tenure", "run"]
    argv += ["--family", "web", "--version", "1.0", "--ports", WEB, "--"]
    argv += [PY, "-c", "import time; time.sleep(600)"]
    wrapper = proc_registry.spawn(argv, env=env_for(root), stderr=subprocess.PIPE)
    rec = held_when(root, "web", lambda r: r.child is not None)
    assert rec.child is not None
    child = rec.child.pid
    subprocess.run(
        [
            "nsenter",
            "-t",
            str(wrapper.pid),
            "-m",
            "mount",
            "--bind",
            str(stepped_stat),
            "/proc/stat",
        ],
        check=True,
    )
    moved = subprocess.run(
        ["nsenter", "-t", str(wrapper.pid), "-m", PY, "-c",
         f"import psutil; print(psutil.Process({child}).create_time())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert float(moved.stdout) - rec.child.create_time == pytest.approx(2.0, abs=0.05)

    wrapper.send_signal(signal.SIGTERM)
    assert wrapper.wait(30) == 0, wrapper.stderr.read() if wrapper.stderr else ""
    assert pid_gone(child)
    assert record(root, "web").state is LeaseState.RELEASED


# --- one root, two pid namespaces ------------------------------------------------------------

B_DRIVER = textwrap.dedent(
    """
    import json, os, subprocess, sys
    from pathlib import Path
    from tenure.adapters.store import LeaseStore

    root, web, private_net = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
    rec = LeaseStore(root, "web").read()
    wanted = {rec.holder.pid, rec.child.pid}
    # Take A's pid numbers here: processes that must survive every command run in B.
    decoys, spare = {}, []
    while not wanted <= decoys.keys() and len(spare) < 200:
        p = subprocess.Popen(["sleep", "600"])
        if p.pid in wanted:
            decoys[p.pid] = p
        else:
            spare.append(p)
    for p in spare:
        p.kill(); p.wait()
    if private_net:  # after the decoys: `ip` would take a pid number of its own
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    py = sys.executable
    def cli(*args):
        r = subprocess.run([py, "-m", "tenure", *args], capture_output=True, text=True, timeout=90)
        return {"rc": r.returncode, "out": r.stdout, "err": r.stderr}
    out = {"decoys": sorted(decoys)}
    out["run_equal"] = cli("run", "--family", "web", "--version", "1.0", "--ports", web, "--",
                           py, "-c", "pass")
    out["doctor"] = cli("auth", "doctor", "--json")
    out["reset"] = cli("auth", "doctor", "--reset", "--force", "--json")
    out["ls"] = cli("ls", "--json")
    out["stop"] = subprocess.run([py, "-c", "import tenure; tenure.stop('web')"],
                                 capture_output=True, text=True, timeout=90).stderr
    out["survivors"] = sorted(pid for pid, p in decoys.items() if p.poll() is None)
    print(json.dumps(out), flush=True)
    """
)


def in_pid_ns(argv: list[str], private_net: bool = False) -> list[str]:
    """argv run as the first process of a new pid namespace (and network namespace)."""
    flags = ["-n"] if private_net else []
    return ["unshare", *flags, "-p", "-f", "--kill-child", "--mount-proc", *argv]


@needs_pid_ns
@linux_only("the process's location (boot id and namespaces from /proc)")
@pytest.mark.parametrize("private_net", [False, True], ids=["shared-network", "own-network"])
def test_a_holder_in_another_pid_namespace_is_foreign_and_survives_every_command(
    tmp_path: Path, proc_registry: ProcessRegistry, private_net: bool
) -> None:
    """Two containers sharing a home: from B, an equal version refuses A's live holder (naming
    where it lives), the doctor shows it foreign, nothing is reset or signalled, processes in B
    that carry A's pid numbers survive, and `tenure.stop` from B asks A through the record
    (lease.md#stop), which A honours; a newer version then supersedes another A through the
    record alone."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    # Whatever B signals lives in B's own pid namespace: the guard is not what protects it.
    env.pop("TENURE_TEST_SIGNAL_GUARD", None)
    run_a = [PY, "-m", "tenure", "run", "--family", "web", "--version", "1.0", "--ports", WEB]
    run_a += ["--", PY, "-c", "import time; time.sleep(600)"]
    a = proc_registry.spawn(in_pid_ns([PY, "-c", NS_INIT, *run_a]), env=env)
    held = held_when(root, "web", lambda r: r.child is not None)
    assert held.holder.where is not None
    assert held.child is not None
    assert held.holder.pid < 10  # pid numbers of A's namespace

    b = subprocess.run(
        in_pid_ns([PY, "-c", B_DRIVER, str(root), WEB, "1" if private_net else "0"], private_net),
        env=env, capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert b.returncode == 0, b.stderr
    seen = json.loads(b.stdout)
    assert seen["decoys"] == sorted({held.holder.pid, held.child.pid})
    assert seen["survivors"] == seen["decoys"]
    assert seen["run_equal"]["rc"] == 1
    assert "lives elsewhere" in seen["run_equal"]["err"]
    doctor = json.loads(seen["doctor"]["out"])
    (web,) = [lease for lease in doctor["leases"] if lease["family"] == "web"]
    assert web["state"] == "foreign"
    assert "pid namespace" in web["lives"]
    assert seen["doctor"]["rc"] == 0, seen["doctor"]
    assert json.loads(seen["reset"]["out"])["reset_result"]["swept"] == []
    (listed,) = [f for f in json.loads(seen["ls"]["out"])["families"] if f["family"] == "web"]
    assert listed["state"] == "foreign"
    # The stop, B's last command: asked through the record, A drained, released and left.
    assert "Traceback" not in seen["stop"]
    assert a.wait(30) == 0
    asked = [t for t in read_tombstones(root) if t.get("pid") == held.holder.pid]
    assert [t["reason"] for t in asked] == ["requested"]
    assert record(root, "web").state is LeaseState.RELEASED

    a = proc_registry.spawn(in_pid_ns([PY, "-c", NS_INIT, *run_a]), env=env)
    held_when(root, "web", lambda r: r.child is not None and r.state is LeaseState.HELD)
    run_b = [PY, "-m", "tenure", "run", "--family", "web", "--version", "1.1", "--ports", WEB]
    # It serves nothing: ready once started, so A does not stand by for it (control.md#readiness).
    run_b += ["--ready", "started", "--", PY, "-c", "import time; time.sleep(600)"]
    newer = proc_registry.spawn(in_pid_ns([PY, "-c", NS_INIT, *run_b], private_net), env=env)
    held_when(root, "web", lambda r: r.holder.version == "1.1" and r.state is LeaseState.HELD)
    assert a.wait(30) == 0  # A's wrapper left (superseded) and took its child with it
    left = [t for t in read_tombstones(root) if t.get("version") == "1.0"]
    assert [t["reason"] for t in left] == ["requested", "superseded"]
    assert newer.poll() is None


# --- a contender whose wall clock runs ahead -------------------------------------------------

SHIM_C = """
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
static int (*real_clock_gettime)(clockid_t, struct timespec *);
int clock_gettime(clockid_t id, struct timespec *ts) {
    if (!real_clock_gettime) real_clock_gettime = dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real_clock_gettime(id, ts);
    if (rc == 0 && id == CLOCK_REALTIME) ts->tv_sec += 30;
    return rc;
}
"""


@pytest.fixture(scope="module")
def clock_ahead(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LD_PRELOAD library that moves CLOCK_REALTIME 30 s ahead for one process."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the clock shim")
    out = tmp_path_factory.mktemp("shim")
    (out / "ahead.c").write_text(SHIM_C)
    lib = out / "ahead.so"
    subprocess.run(
        [cc, "-shared", "-fPIC", "-o", str(lib), str(out / "ahead.c"), "-ldl"], check=True
    )
    return lib


def test_a_contender_whose_clock_runs_ahead_never_takes_a_renewing_holder(
    tmp_path: Path, proc_registry: ProcessRegistry, clock_ahead: Path
) -> None:
    """Expiry is judged on the record's terms: a contender 30 s ahead with a 0.05 s heartbeat
    waits past the holder's whole TTL and is still refused."""
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    holder = proc_registry.spawn(
        [PY, str(HERE / "holder.py"), str(root), "web", "1.0"],
        env={**os.environ, "TENURE_LEASE_TTL": "6", "TENURE_HEARTBEAT": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert json.loads(holder.stdout.readline())["event"] == "holding"
    ahead = {**os.environ, "LD_PRELOAD": str(clock_ahead)}
    skew = subprocess.run(
        [PY, "-c", "import time; print(time.time())"],
        env=ahead,
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(skew.stdout) - time.time() > 29  # the shim is in force
    contender = subprocess.run(
        [PY, str(HERE / "holder.py"), str(root), "web", "1.0", "7"],
        env={**ahead, "TENURE_LEASE_TTL": "6", "TENURE_HEARTBEAT": "0.05"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(contender.stdout.splitlines()[0])["event"] == "refused", contender.stdout
    rec = record(root, "web")
    assert (rec.holder.pid, rec.epoch, rec.state) == (holder.pid, 1, LeaseState.HELD)


# --- fork, multiprocessing, cancellation ---------------------------------------------------------

FORKER = textwrap.dedent(
    """
    import json, multiprocessing, os, sys, time
    from pathlib import Path
    import tenure

    def worker(ready):
        ready.set()
        time.sleep(600)

    with tenure.hold("forky", version="1.0", root=Path(sys.argv[1])) as held:
        pid = os.fork()
        if pid == 0:
            seen = {"holding": held.governor.holding()}
            try:
                with held.work():
                    seen["work"] = "accepted"
            except tenure.Retiring:
                seen["work"] = "refused"
            print(json.dumps({"child": seen}), flush=True)
            sys.exit(0)  # leaves the hold block in the child: it must release nothing
        _, status = os.waitpid(pid, 0)
        ctx = multiprocessing.get_context("fork")
        ready = ctx.Event()
        proc = ctx.Process(target=worker, args=(ready,))
        proc.start()
        ready.wait(30)
        proc.terminate()
        proc.join(30)
        beats = held.governor.store.read().seq
        deadline = time.monotonic() + 30
        while held.governor.store.read().seq == beats and time.monotonic() < deadline:
            time.sleep(0.05)
        print(json.dumps({"parent": {
            "holding": held.governor.holding(), "epoch": held.epoch, "child_status": status,
            "worker_exit": proc.exitcode, "renewed": held.governor.store.read().seq > beats,
        }}), flush=True)
    """
)


def test_a_forked_child_never_speaks_for_its_parents_lease(tmp_path: Path) -> None:
    """fork() and multiprocessing (fork) inside `hold`: the child is fenced, the parent keeps
    its lease, epoch and record, and `terminate()` ends the worker."""
    root = tmp_path / "root"
    run = subprocess.run(
        [PY, "-c", FORKER, str(root)],
        env={**os.environ, **FAST},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    child = next(line["child"] for line in lines if "child" in line)
    parent = next(line["parent"] for line in lines if "parent" in line)
    assert child == {"holding": False, "work": "refused"}
    assert parent == {
        "holding": True,
        "epoch": 1,
        "child_status": 0,
        "worker_exit": -signal.SIGTERM,
        "renewed": True,
    }
    # The only retirement is the parent's own, at the end of its block.
    assert [(t["epoch"], t["reason"]) for t in read_tombstones(root)] == [(1, "shutdown")]


CANCELLER = textwrap.dedent(
    """
    import asyncio, json, sys, threading
    from pathlib import Path
    import tenure

    async def main():
        cm = tenure.hold_async("web", version="1.0", root=Path(sys.argv[1]), wait_s=60)
        try:
            await asyncio.wait_for(cm.__aenter__(), 1.0)
        except TimeoutError:
            pass
        for t in threading.enumerate():
            if t.name == "tenure-abandon":
                t.join(30)
        print(json.dumps({"event": "settled"}), flush=True)
        await asyncio.to_thread(sys.stdin.readline)

    asyncio.run(main())
    """
)


def test_a_cancelled_hold_async_leaves_no_lease_behind(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`hold_async` cancelled while it waits: once the holder leaves, the abandoned acquire
    does not take the lease for the still-running process; the next contender gets it."""
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    holder = proc_registry.spawn(
        [PY, str(HERE / "holder.py"), str(root), "web", "1.0"],
        env={**os.environ, **FAST},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert json.loads(holder.stdout.readline())["event"] == "holding"
    waiter = proc_registry.spawn(
        [PY, "-c", CANCELLER, str(root)],
        env={**os.environ, **FAST},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert waiter.stdout is not None
    assert json.loads(waiter.stdout.readline())["event"] == "settled"
    holder.kill()  # a dead holder's lease is free at once: the abandoned acquire would take it
    holder.wait(30)
    nxt = proc_registry.spawn(
        [PY, str(HERE / "holder.py"), str(root), "web", "1.0", "0"],
        env={**os.environ, **FAST},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert nxt.stdout is not None
    assert json.loads(nxt.stdout.readline())["event"] == "holding"
    assert waiter.poll() is None
    assert all(t["pid"] != waiter.pid for t in read_tombstones(root))


# --- a root removed under a live daemon ---------------------------------------------------------


def test_after_its_root_is_removed_an_old_daemon_never_answers_as_holder(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """Health stats the root on every answer: the moment the root is gone the old daemon says
    `retiring`, so it and the new root's daemon never both answer `holder`."""
    root = tmp_path / "root"
    env = env_for(root, TENURE_LEASE_TTL="30", TENURE_HEARTBEAT="10")
    first = tenure_cli(["dashboard", "start", "--json"], env)
    proc_registry.track_root(root.resolve())
    assert first.returncode == 0, first.stderr
    old = json.loads(first.stdout)
    assert (health(old["port"]) or {}).get("role") == "holder"
    remove_tree(root)
    assert (health(old["port"]) or {}).get("role") != "holder"  # health stats the root itself
    second = tenure_cli(["dashboard", "start", "--json"], env)
    proc_registry.track_root(root.resolve())
    assert second.returncode == 0, second.stderr
    new = json.loads(second.stdout)
    assert new["pid"] != old["pid"]
    assert (health(new["port"]) or {}).get("role") == "holder"
    # The old daemon, if it still answers, is not a holder. It may have left already (it
    # watches its record, and the root went with it), its port then free for the new one.
    still = health(old["port"]) or {}
    assert still.get("pid") != old["pid"] or still.get("role") != "holder"


@linux_only("start ticks from /proc")
def test_a_process_is_known_by_its_start_ticks(proc_registry: ProcessRegistry) -> None:
    """The identity a reader records (start ticks since boot) is the same on every read."""
    proc = proc_registry.spawn([PY, "-c", "import time; time.sleep(600)"])
    first, second = read_process(proc.pid), read_process(proc.pid)
    assert first is not None
    assert second is not None
    assert first.start_ticks is not None
    assert first.ident == second.ident


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CLOCK_BOOTTIME is Linux's")
def test_a_holder_measures_its_lease_on_a_clock_that_counts_suspend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lease.md#sleep: the Governor's own clock reads CLOCK_BOOTTIME (time.monotonic stops while
    the machine sleeps, so a laptop that slept past its TTL would wake believing it holds)."""
    from tenure.adapters import platform
    from tenure.holder.governor import Governor

    asked: list[int] = []
    real = time.clock_gettime

    def spy(clock: int) -> float:
        asked.append(clock)
        return real(clock)

    monkeypatch.setattr(time, "clock_gettime", spy)
    gov = Governor(tmp_path / "root", "sleeper", "1.0")
    asked.clear()
    gov._mono()
    assert asked == [time.CLOCK_BOOTTIME]
    assert platform.lease_clock() > 0
