"""Shared helpers for tenure's own tests: port blocks, the signal guard, waits, profiles.

Port blocks: every module that binds loopback ports takes its own block from `PORT_BLOCKS`
(disjoint, so modules can run in parallel), holds an exclusive OS lock on it (so two suites on
one machine never meet), and skips when a listener it did not start sits in its block. Tests
marked `realports` bind the families' real ranges: they hold the suite-wide port lock
exclusively, so no other port-binding test of any suite on this machine runs meanwhile.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, settings

from tenure.adapters import platform
from tenure.adapters.procfs import proc_locks_holder
from tenure.testing import Fleet, ProcessRegistry, make_fleet

HERE = Path(__file__).parent
PY = sys.executable

# CI: the same examples every run, no deadline, no health check that a loaded machine can trip.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@dataclass(frozen=True)
class PortBlock:
    """A module's own sub-ranges (inclusive) of the sync and dashboard families."""

    sync: tuple[int, int]
    dashboard: tuple[int, int]
    extra: tuple[int, int] | None = None  # a custom family's range, outside both

    @property
    def sync_env(self) -> str:
        return f"{self.sync[0]}-{self.sync[1]}"

    @property
    def dashboard_env(self) -> str:
        return f"{self.dashboard[0]}-{self.dashboard[1]}"

    def ports(self) -> list[int]:
        extra = range(self.extra[0], self.extra[1] + 1) if self.extra else range(0)
        return [
            *range(self.sync[0], self.sync[1] + 1),
            *range(self.dashboard[0], self.dashboard[1] + 1),
            *extra,
        ]


def assert_published_shape(record: Path) -> None:
    """The record file validates against docs/protocol/lease-record.schema.json (issue 35:
    real records of every writer)."""
    import jsonschema

    schema = json.loads(
        (HERE.parent / "docs" / "protocol" / "lease-record.schema.json").read_text()
    )
    jsonschema.validate(json.loads(record.read_bytes()), schema)


# The one table of port blocks. Sync is 9400-9449, dashboard 9237-9336; blocks are disjoint.
PORT_BLOCKS: dict[str, PortBlock] = {
    "test_demo": PortBlock(sync=(9400, 9409), dashboard=(9325, 9329)),
    "test_doctor": PortBlock(sync=(9410, 9429), dashboard=(9300, 9309)),
    "test_legacy_live": PortBlock(sync=(9430, 9439), dashboard=(9310, 9319)),
    "test_daemons": PortBlock(sync=(9440, 9444), dashboard=(9320, 9324)),
    "test_faults": PortBlock(sync=(9445, 9446), dashboard=(9330, 9332)),
    "test_hold": PortBlock(sync=(9447, 9447), dashboard=(9335, 9336), extra=(9500, 9504)),
    "test_chaos": PortBlock(sync=(9448, 9449), dashboard=(9333, 9334)),
}
# The conformance kit checks daemons of test_hold's kinds: one block, serialised by its lock.
PORT_BLOCKS["test_conformance"] = PORT_BLOCKS["test_hold"]
PORT_BLOCKS["test_identity"] = PORT_BLOCKS["test_hold"]
PORT_BLOCKS["test_hostile"] = PORT_BLOCKS["test_doctor"]
PORT_BLOCKS["test_tree"] = PORT_BLOCKS["test_hold"]
PORT_BLOCKS["test_adopting"] = PORT_BLOCKS["test_hold"]
PORT_BLOCKS["test_guide"] = PORT_BLOCKS["test_hold"]
PORT_BLOCKS["test_hostile4"] = PORT_BLOCKS["test_hold"]
PORT_BLOCKS["test_upgrades"] = PORT_BLOCKS["test_hold"]
PORT_BLOCKS["test_handover"] = PORT_BLOCKS["test_hold"]
PORT_BLOCKS["test_scopes"] = PORT_BLOCKS["test_hold"]
# Both real ranges, for the tests marked realports.
REAL_PORTS = [*range(9236, 9338), *range(9399, 9451)]
LOCK_DIR = Path(tempfile.gettempdir())


def linux_only(fact: str) -> pytest.MarkDecorator:
    """Skip where `fact` is missing: off Linux, and in portable mode (TENURE_TEST_PORTABLE=1),
    which switches off Linux's own facts so the generic fallbacks run here too."""
    return pytest.mark.skipif(not platform.PROC_FACTS, reason=f"needs {fact} (Linux's own)")


def block_fleet(block: PortBlock, tmp_path: Path, registry: ProcessRegistry, **env: str) -> Fleet:
    """A fleet on a module's port block, with a private legacy root under `tmp_path`."""
    legacy = tmp_path / "home" / ".spec-kitty"
    legacy.mkdir(parents=True)
    return make_fleet(
        tmp_path / "root",
        registry,
        TENURE_SYNC_PORTS=block.sync_env,
        TENURE_DASHBOARD_PORTS=block.dashboard_env,
        SPEC_KITTY_HOME=str(legacy.resolve()),
        **env,
    )


def block(module: str) -> PortBlock:
    """The port block of a test module (`__name__` works: the last dotted part is used)."""
    return PORT_BLOCKS[module.rsplit(".", 1)[-1]]


def _flock(name: str, mode: int) -> int:
    fd = os.open(LOCK_DIR / name, os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, mode)
    return fd


def _foreign_listeners(ports: list[int]) -> dict[int, int | None]:
    """port → pid (None when another user's) of every TCP listener on `ports`."""
    wanted = set(ports)
    return {
        c.laddr.port: c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in wanted
    }


@pytest.fixture(autouse=True)
def _hermetic_ports(request: pytest.FixtureRequest) -> Iterator[None]:
    """Lock this test's ports; skip when someone else listens there (never touch them)."""
    realports = request.node.get_closest_marker("realports") is not None
    module = request.module.__name__.rsplit(".", 1)[-1]
    if not realports and module not in PORT_BLOCKS:
        yield
        return
    fds = [_flock("tenure-tests-ports.lock", fcntl.LOCK_EX if realports else fcntl.LOCK_SH)]
    try:
        if realports:
            ports = REAL_PORTS
        else:
            mine = PORT_BLOCKS[module]
            # Two modules may share a block only if it is locked; the lock serialises them.
            fds.append(_flock(f"tenure-tests-block-{mine.sync[0]}.lock", fcntl.LOCK_EX))
            ports = mine.ports()
        foreign = _foreign_listeners(ports)
        if foreign:
            pytest.skip(
                "listeners this suite did not start sit in the test's ports "
                f"(port: pid) {foreign}; they are left alone"
            )
        yield
    finally:
        for fd in reversed(fds):
            os.close(fd)


@pytest.fixture(autouse=True)
def _signal_guard(tenure_signal_guard: Path) -> Path:
    """Every test runs under the signal guard: tenure ends only processes the test started."""
    return tenure_signal_guard


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shuffle",
        type=int,
        default=None,
        metavar="SEED",
        help="run the tests in an order shuffled with SEED (shows they are independent)",
    )


# The modules of pure tests (no process started, no port bound; the whole set runs in seconds):
# every other test is marked `process`, so `pytest -m "not process"` is the fast speed.
PURE_MODULES = frozenset(
    [
        "test_classify",
        "test_findings",
        "test_layout",
        "test_lifecycle",
        "test_machine",
        "test_model",
        "test_record",
        "test_server",
        "test_values",
    ]
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__.rsplit(".", 1)[-1] not in PURE_MODULES:
            item.add_marker(pytest.mark.process)
    seed = config.getoption("--shuffle")
    if seed is not None:
        random.Random(seed).shuffle(items)


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.getoption("--shuffle")
    profile = settings._current_profile
    order = "file order" if seed is None else f"shuffled with seed {seed}"
    return f"tenure: test order {order}; hypothesis profile {profile}"


def popen_interruptible(argv: list[str], **kwargs: Any) -> subprocess.Popen[str]:
    """Start a child that Ctrl-C (SIGINT) can interrupt, even when this run ignores SIGINT.

    A test run started in the background ignores SIGINT and children inherit that; a handler
    (not SIG_IGN) in this process becomes the default disposition in the child.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(argv, text=True, **kwargs)
    finally:
        signal.signal(signal.SIGINT, previous)


def remove_tree(path: Path) -> None:
    """Remove a daemon root that live daemons may be writing into meanwhile (retry until gone)."""
    import shutil

    def gone() -> bool:
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()

    wait_for(gone, what=f"{path} removed")


def stop_outside_lock(pid: int, lock_path: Path) -> None:
    """SIGSTOP `pid` at a moment it does not hold `lock_path` (not mid-heartbeat).

    A holder stopped inside its record lock stalls every writer until it resumes (a stuck
    lock: the doctor reports it); tests about a stopped holder mean one between heartbeats.
    """

    def stopped_unlocked() -> bool:
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, what="SIGSTOP")
        if proc_locks_holder(lock_path) != pid:  # /proc/locks even in portable mode
            return True
        os.kill(pid, signal.SIGCONT)
        return False

    wait_for(stopped_unlocked, what=f"pid {pid} to stop outside its record lock")


def python_output(code: str, env: dict[str, str] | None = None) -> str:
    """What `python -c CODE` prints in a fresh interpreter (this one's environment by default)."""
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


def wait_for(
    predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition"
) -> object:
    """Poll until `predicate()` is truthy; fail with `what` after `timeout` seconds.

    The timeout is a bound only a real bug reaches, not an expectation of speed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def pytest_terminal_summary(terminalreporter: object) -> None:
    """Print the boundary matrix (tests/test_boundary_matrix.py) when it ran."""
    from tests import test_boundary_matrix as matrix

    write = terminalreporter.write_line  # type: ignore[attr-defined]
    if not matrix.MATRIX:
        _chaos_summary(write)
        return
    entries = [e for e in matrix.ENTRY_POINTS if any(r["entry"] == e for r in matrix.MATRIX)]
    write("")
    write("boundary matrix: signals sent per listener (- = none); every cell checked")
    write(f"{'listener':<46} {'port':>5}  " + "  ".join(f"{e:<18}" for e in entries))
    for kind, port, _rule in matrix.LAYOUT:
        cells = []
        for e in entries:
            row = next((r for r in matrix.MATRIX if r["entry"] == e and r["port"] == port), None)
            cells.append(
                f"{'?' if row is None else row['signals'] + ('' if row['ok'] else ' FAIL'):<18}"
            )
        write(f"{kind:<46} {port:>5}  " + "  ".join(cells))
    _chaos_summary(write)


def _chaos_summary(write: object) -> None:
    from tests import test_chaos

    r = test_chaos.REPORT
    if r["schedules"] or r["process_schedules"]:
        write(  # type: ignore[operator]
            f"chaos: {r['schedules']} in-process schedules ({r['steps']} steps, {r['takeovers']} "
            f"acquisitions), {r['process_schedules']} process schedules, "
            f"{r['violations']} invariant violations"
        )
