"""`tenure demo`: the whole story on this machine, in a temporary root it creates and removes.

Lease-aware daemon 1.0 and legacy spec-kitty stand-ins start; 1.1 supersedes 1.0 (which retires
by itself); the holder is SIGKILLed and the next start takes over at once; a reset sweeps the
stale legacy daemons and lists the ones that need an operator. Every process it started is
stopped by pid at the end, also on Ctrl-C. Narration goes through `show`; the CLI renders it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from tenure.adapters import config, platform
from tenure.adapters.http import health
from tenure.adapters.ports import open_ports
from tenure.adapters.procinfo import read_process, signal_verified
from tenure.adapters.registry import ProcessRegistry
from tenure.adapters.tombstones import read_tombstones
from tenure.adapters.waiting import wait_until
from tenure.core.families import DASHBOARD, SYNC
from tenure.core.health import parse_health
from tenure.core.hints import TYPE_CHECKING
from tenure.core.values import field, mutable
from tenure.hygiene.cleanup import cleanup
from tenure.hygiene.doctor import gather
from tenure.legacy.simulated import spawn_legacy, spawn_singleton
from tenure.requester import start as client

if TYPE_CHECKING:
    from typing import Any

Show = Callable[[str, str, "Any"], None]  # (kind, title, payload)


def free_ports(candidates: range, count: int) -> list[int]:
    """The first `count` ports of `candidates` nobody listens on."""
    busy = set(open_ports(candidates))
    return [p for p in candidates if p not in busy][:count]


@contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    return wait_until(predicate, timeout, 0.02) is not None


def _gone(pid: int) -> bool:
    return read_process(pid) is None


def run(show: Show, pace: float = 0.0) -> dict[str, Any]:
    """Run the demo, pausing `pace` seconds after each act; returns a machine-readable summary."""
    work = Path(tempfile.mkdtemp(prefix="tenure-demo-"))
    os.chmod(work, 0o700)
    root, legacy = work / "root", work / "legacy-home" / ".spec-kitty"
    root.mkdir(mode=0o700)
    legacy.mkdir(parents=True)
    reg = ProcessRegistry()
    summary: dict[str, Any] = {"root": str(root), "legacy_root": str(legacy), "steps": []}

    def step(name: str, **data: Any) -> None:
        summary["steps"].append({"step": name, **data})

    try:
        # HOME too: a legacy stand-in without a root marker falls back to ~/.spec-kitty, and the
        # demo never writes outside its temporary directory.
        home = work / "home"
        home.mkdir(mode=0o700)
        with _env(TENURE_ROOT=str(root), SPEC_KITTY_HOME=str(legacy), HOME=str(home)):
            _story(_Ctx(show, step, reg, root, legacy), pace)
    finally:
        reg.track_root(root.resolve())
        reg.stop_all()
        shutil.rmtree(work, ignore_errors=True)
        show("note", "cleanup", f"stopped every process the demo started and removed {work}")
    return summary


@mutable
class _Ctx:
    show: Show
    step: Callable[..., None]
    reg: ProcessRegistry
    root: Path
    legacy: Path
    ports: list[int] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)


def _start(ctx: _Ctx, version: str) -> client.DaemonInfo:
    with _env(TENURE_VERSION=version):
        info = client.start(SYNC, ctx.root, version)
    ctx.reg.track(info.pid)
    return info


def _story(ctx: _Ctx, pace: float) -> None:
    busy = open_ports(config.ports(SYNC))
    if busy:
        ctx.show(
            "note", "busy ports", f"ports already in use in the sync range (left alone): {busy}"
        )
    ports = config.ports(SYNC)
    # The daemons take the first free ports of the range; the stand-ins live further up.
    ctx.ports = free_ports(ports[len(ports) // 2 :], 5)
    if len(ctx.ports) < 5:
        raise RuntimeError(f"need 5 free ports in the upper half of {ports}, found {ctx.ports}")
    acts = (_act_start, _act_legacy, _act_supersede, _act_sigkill, _act_reset, _act_projects)
    for act in acts:
        act(ctx)
        time.sleep(pace)


def _act_start(ctx: _Ctx) -> None:
    ctx.show("rule", "1. A lease-aware sync daemon, version 1.0", None)
    first = _start(ctx, "1.0")
    ctx.pids["1.0"] = first.pid
    ctx.show("daemon", "started", first.to_json())
    ctx.step("start_1_0", **first.to_json())


def _act_legacy(ctx: _Ctx) -> None:
    ctx.show("rule", "2. Legacy spec-kitty 3.2.x daemons that predate leases", None)
    p = ctx.ports
    ctx.pids["singleton"] = spawn_singleton(ctx.reg, p[0], ctx.legacy).pid
    ctx.pids["stale_a"] = spawn_legacy(ctx.reg, p[1], ctx.legacy, "3.2.2")[0].pid
    ctx.pids["stale_b"] = spawn_legacy(ctx.reg, p[2], ctx.legacy, "3.2.3")[0].pid
    ctx.pids["premarker"] = spawn_legacy(ctx.reg, p[3], ctx.legacy, "3.2.2", marker=False)[0].pid
    ctx.show(
        "note",
        "legacy",
        f"singleton 3.2.4 on {p[0]} (named by the state file), stale 3.2.2 on {p[1]}, "
        f"stale 3.2.3 on {p[2]}, a pre-marker 3.2.2 on {p[3]}",
    )
    ctx.show("doctor", "tenure auth doctor", gather(ctx.root, ctx.legacy))
    ctx.step("legacy_started", ports=p[:4])


def _act_supersede(ctx: _Ctx) -> None:
    ctx.show("rule", "3. Version 1.1 starts: 1.0 is asked to retire and leaves by itself", None)
    old = ctx.pids["1.0"]
    t0 = time.monotonic()
    second = _start(ctx, "1.1")
    _wait(lambda: _gone(old))
    took = time.monotonic() - t0
    ctx.pids["1.1"] = second.pid
    stones = [s for s in read_tombstones(ctx.root) if s.get("pid") == old]
    ctx.show("daemon", f"{second.action} in {took:.2f}s", second.to_json())
    ctx.show("tombstones", "tombstone of 1.0", stones)

    def reaper_done() -> bool:
        doc = parse_health(health(second.port))
        return doc is not None and doc.startup_reaper == "done"

    # The new holder's startup reaper cleans safe_auto legacy holdouts of its own family.
    _wait(reaper_done)
    stale = [ctx.pids["stale_a"], ctx.pids["stale_b"]]
    swept = [pid for pid in stale if _wait(partial(_gone, pid), 3)]
    ctx.show(
        "note",
        "startup reaper",
        f"the new holder's startup reaper swept {len(swept)} stale legacy daemons",
    )
    ctx.step(
        "supersede",
        seconds=round(took, 3),
        tombstones=stones,
        startup_swept=swept,
        **second.to_json(),
    )


def _act_sigkill(ctx: _Ctx) -> None:
    ctx.show(
        "rule", "4. The holder is killed with SIGKILL; the next start takes over at once", None
    )
    victim = ctx.pids["1.1"]
    facts = read_process(victim)
    if facts is None:
        raise RuntimeError(f"pid {victim} is no longer the demo's sync daemon")
    # Re-checked (argv marker of this root, start, uid, the test guard) right before the signal.
    mismatch = signal_verified(facts.ident, platform.KILL, ("tenure-root", str(ctx.root.resolve())))
    if mismatch is not None:
        raise RuntimeError(f"pid {victim} is not the demo's sync daemon: {mismatch.value}")
    _wait(lambda: _gone(victim))
    t0 = time.monotonic()
    third = _start(ctx, "1.1")
    took = time.monotonic() - t0
    ctx.show("daemon", f"taken over in {took:.2f}s (epoch {third.epoch})", third.to_json())
    ctx.step("sigkill_takeover", seconds=round(took, 3), **third.to_json())


def _act_reset(ctx: _Ctx) -> None:
    ctx.show("rule", "5. Another stale legacy daemon shows up; tenure auth doctor --reset", None)
    late = spawn_legacy(ctx.reg, ctx.ports[4], ctx.legacy, "3.2.3")[0]
    result = cleanup(gather(ctx.root, ctx.legacy).surveys, ctx.root).result
    after = gather(ctx.root, ctx.legacy)
    after.reset_result = result
    ctx.show("doctor", "after tenure auth doctor --reset", after)
    ctx.show(
        "note",
        "operator_required",
        f"the pre-marker daemon (pid {ctx.pids['premarker']}) needs an operator: "
        "tenure auth doctor --reset --force",
    )
    ctx.step("reset", late_pid=late.pid, **result.to_json())


def _act_projects(ctx: _Ctx) -> None:
    ctx.show("rule", "6. One dashboard per project; a deleted project's dashboard leaves", None)
    from tenure.adapters.scopes import resolve_scope  # noqa: PLC0415

    projects = ctx.root.parent / "projects"
    started = {}
    for name in ("alpha", "beta"):
        (projects / name).mkdir(parents=True)
        with _env(TENURE_VERSION="1.1"):
            info = client.start(DASHBOARD, ctx.root, "1.1", scope=resolve_scope(projects / name))
        ctx.reg.track(info.pid)
        started[name] = info
        ctx.show("daemon", f"dashboard for project {name}", info.to_json())
    beta = started["beta"].pid
    t0 = time.monotonic()
    shutil.rmtree(projects / "beta")
    _wait(lambda: _gone(beta), 30.0)
    took = time.monotonic() - t0
    stones = [s for s in read_tombstones(ctx.root) if s.get("pid") == beta]
    ctx.show("tombstones", f"project beta removed; its dashboard left in {took:.2f}s", stones)
    ctx.step(
        "projects",
        ports=[started["alpha"].port, started["beta"].port],
        beta_gone_s=round(took, 3),
        tombstones=stones,
    )
