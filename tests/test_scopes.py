"""Scopes: one lease per family *per directory* (a project, a worktree), beside the user scope;
a scoped holder retires when its directory goes; `tenure stop --all` ends every holder.
spec: lease.md#scopes
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import tenure
from tenure.adapters.ports import open_ports
from tenure.adapters.scopes import resolve_scope, scope_intact
from tenure.adapters.store import LeaseStore
from tenure.adapters.tombstones import read_tombstones
from tenure.core.classify import CleanupClass, LeaseView, ListenerFacts, Scope, SkipReason, classify
from tenure.core.codec import encode, parse
from tenure.core.families import FAMILIES
from tenure.core.inputs import split_key
from tenure.core.record import LeaseRecord, LeaseState, Unreadable
from tenure.core.timing import Timing
from tenure.core.values import replace
from tenure.errors import ConfigError, LeaseHeld
from tenure.testing import ProcessRegistry, pid_gone
from tests.conftest import PY, block, wait_for
from tests.test_identity import env_for

BLOCK = block(__name__)
WEB = f"{BLOCK.extra[0]}-{BLOCK.extra[1]}" if BLOCK.extra else ""
SERVE = "import http.server, sys; http.server.test(port=int(sys.argv[1]), bind='127.0.0.1')"
FAST = Timing(ttl_s=3.0, heartbeat_s=0.5)


def run_in(scope: Path, version: str) -> list[str]:
    return [
        *[PY, "-m", "tenure", "run", "--family", "web", "--ports", WEB],
        *["--scope", str(scope), "--version", version, "--", PY, "-c", SERVE, "{port}"],
    ]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [PY, "-m", "tenure", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def projects(tmp_path: Path, *names: str) -> list[Path]:
    """Directories to use as scopes."""
    made = [tmp_path / name for name in names]
    for path in made:
        path.mkdir()
    return made


def scoped(root: Path, scope: Path, ready: object = None) -> LeaseRecord:
    store = LeaseStore(root, "web", resolve_scope(scope))

    def check() -> LeaseRecord | None:
        rec = store.read()
        if isinstance(rec, LeaseRecord) and rec.state is LeaseState.HELD and rec.child:
            return rec if ready is None or ready == rec.holder.version else None
        return None

    found = wait_for(check, what=f"web to hold in {scope.name}")
    assert isinstance(found, LeaseRecord)
    return found


# --- identity, files, placement (pure and files) ------------------------------------------


def test_a_scope_is_its_directory_and_names_files_by_digest_alone(tmp_path: Path) -> None:
    """The key is `family.<16 hex>`: no path text, never a family name, and a directory
    replaced at the same path is another scope."""
    project = tmp_path / "my project; rm -rf ~"
    project.mkdir()
    first = resolve_scope(project)
    store = LeaseStore(tmp_path, "web", first)
    assert store.record_path.parent == tmp_path / "leases"
    assert store.record_path.name == f"web.{first.digest}.json"
    assert split_key(store.key) == ("web", first.digest)
    assert split_key("web") == ("web", None)
    assert split_key("web.json") is None  # a family has no dot: never mistaken for a key
    assert scope_intact(first)
    project.rename(tmp_path / "moved")
    assert not scope_intact(first)
    project.mkdir()
    second = resolve_scope(project)
    assert not scope_intact(first)
    assert second.path == first.path
    assert second.digest != first.digest


def test_a_record_in_the_wrong_file_is_unreadable(tmp_path: Path) -> None:
    """A scoped record MUST sit in its scope's file and a user-scope record MUST carry no
    scope: either put elsewhere is someone else's doing, and reads as unreadable."""
    a, b = projects(tmp_path, "a", "b")
    with tenure.hold("web", version="1.0", root=tmp_path, scope=a, timing=FAST):
        in_a = LeaseStore(tmp_path, "web", resolve_scope(a))
        rec = in_a.read()
        assert isinstance(rec, LeaseRecord)
        assert rec.scope == resolve_scope(a)
        assert parse(encode(rec)) == rec  # the field round-trips
        data = in_a.record_path.read_bytes()
        in_b = LeaseStore(tmp_path, "web", resolve_scope(b))
        in_b.record_path.write_bytes(data)
        assert isinstance(in_b.read(), Unreadable)
        user = LeaseStore(tmp_path, "web")
        user.record_path.write_bytes(data)
        assert isinstance(user.read(), Unreadable)
        in_b.record_path.unlink()
        user.record_path.unlink()


def test_a_bad_scope_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    for bad, said in [
        (tmp_path / "missing", "no such directory"),
        (a_file, "not a directory"),
        ("", "not a directory path"),
    ]:
        with pytest.raises(ConfigError, match=said):
            resolve_scope(bad)
    root = tmp_path / "root"
    with pytest.raises(ConfigError), tenure.hold("web", version="1", root=root, scope=a_file):
        pass
    assert not root.exists()
    done = cli(env_for(root), "run", "--family", "web", "--version", "1", "--scope",
               str(tmp_path / "missing"), "--", PY, "-c", "pass")  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "no such directory" in done.stderr
    assert not root.exists()


@pytest.mark.skipif(sys.platform == "win32" or os.getuid() != 0, reason="needs chown")
def test_another_users_directory_is_not_a_scope(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    with pytest.raises(ConfigError, match="not this user's"):
        resolve_scope(theirs)


def test_holders_of_one_family_coexist_one_per_scope(tmp_path: Path) -> None:
    """`hold` in two scopes at once holds both (two records, their own epochs); a second
    holder in the same scope is refused; the user scope is a third."""
    a, b = projects(tmp_path, "a", "b")
    with (
        tenure.hold("web", version="1.0", root=tmp_path, scope=a, timing=FAST) as in_a,
        tenure.hold("web", version="1.0", root=tmp_path, scope=b, timing=FAST) as in_b,
        tenure.hold("web", version="1.0", root=tmp_path, timing=FAST) as in_user,
    ):
        assert in_a.epoch == in_b.epoch == in_user.epoch == 1
        with (
            pytest.raises(LeaseHeld),
            tenure.hold("web", version="1.0", root=tmp_path, scope=a, timing=FAST),
        ):
            pass
        names = sorted(p.name for p in (tmp_path / "leases").glob("*.json"))
        assert len(names) == 3
        assert "web.json" in names


def test_a_scoped_holder_is_a_holder_to_the_classifier() -> None:
    """A listener that holds the family's lease in another scope (or is its `tenure run`
    child) is never a stale copy of the user scope's holder."""
    family = FAMILIES["sync"]
    view = LeaseView(
        holder_pid=4242,
        holder_create_time=100.0,
        holder_started_at=100.0,
        epoch=3,
        held=True,
        expired=False,
        child_pid=4343,
        child_create_time=101.0,
    )
    scope = Scope(family, 1000, "/r", "/l", 10_000.0, 30.0, scoped=(view,))
    aware = ListenerFacts(
        port=family.lo,
        pid=4242,
        uid=1000,
        create_time=100.0,
        cmdline=("python", "--tenure-family=sync", "--tenure-root=/r"),
    )
    found = classify(aware, scope)
    assert (found.cleanup_class, found.skip_reason) == (
        CleanupClass.NEVER_TOUCH,
        SkipReason.LEASE_HOLDER,
    )
    child = ListenerFacts(port=family.lo, pid=4343, uid=1000, create_time=101.0)
    assert classify(child, scope).skip_reason is SkipReason.LEASE_HOLDER
    # Without the scoped lease, the same aware listener is a non-holder past its grace.
    alone = classify(aware, replace(scope, scoped=()))
    assert alone.cleanup_class is CleanupClass.SAFE_AUTO


# --- real processes -----------------------------------------------------------------------


@pytest.mark.process
def test_tenure_run_serves_per_scope_and_upgrades_within_one(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """web in A and in B: two ports, two rows in `ls --json`; an equal version in A is
    refused while A serves; a newer one in A supersedes A's tree on A's port, and B's child
    keeps its pid."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    a, b = projects(tmp_path, "a", "b")
    proc_registry.spawn(run_in(a, "1.0"), env=env)
    in_a = scoped(root, a)
    proc_registry.spawn(run_in(b, "1.0"), env=env)
    in_b = scoped(root, b)
    assert in_a.holder.port != in_b.holder.port
    rows = json.loads(cli(env, "ls", "--json").stdout)["families"]
    web = sorted((r["scope"], r["state"]) for r in rows if r["family"] == "web")
    assert web == [(str(a.resolve()), "held"), (str(b.resolve()), "held")]
    refused = subprocess.run(
        run_in(a, "1.0"), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert refused.returncode == 1, refused.stderr
    proc_registry.spawn(run_in(a, "2.0"), env=env)
    upgraded = scoped(root, a, ready="2.0")
    assert upgraded.holder.port == in_a.holder.port
    now_b = LeaseStore(root, "web", resolve_scope(b)).read()
    assert isinstance(now_b, LeaseRecord)
    assert (now_b.epoch, now_b.child) == (in_b.epoch, in_b.child)
    assert in_b.child is not None
    assert not pid_gone(in_b.child.pid)


@pytest.mark.process
def test_a_scoped_holder_retires_when_its_directory_is_moved_away(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """Moving B away retires B's holder with reason `scope_gone`: its tree ends, its port
    closes, its wrapper exits 0; A's holder is untouched."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    a, b = projects(tmp_path, "a", "b")
    proc_registry.spawn(run_in(a, "1.0"), env=env)
    wrapper = proc_registry.spawn(run_in(b, "1.0"), env=env)
    in_a, in_b = scoped(root, a), scoped(root, b)
    assert in_b.child is not None
    wait_for(lambda: open_ports([in_b.holder.port or 0]), what="B to serve")
    b.rename(tmp_path / "b-moved")
    assert wrapper.wait(timeout=60) == 0
    assert pid_gone(in_b.child.pid)
    assert not open_ports([in_b.holder.port or 0])
    gone = [t for t in read_tombstones(root) if t["reason"] == "scope_gone"]
    assert [t["pid"] for t in gone] == [in_b.holder.pid]
    still = LeaseStore(root, "web", resolve_scope(a)).read()
    assert isinstance(still, LeaseRecord)
    assert (still.state, still.epoch) == (LeaseState.HELD, in_a.epoch)


DAEMON = (
    "import os, sys, tenure\n"
    "with tenure.hold(os.environ['TENURE_FAMILY'], version=sys.argv[1]) as held:\n"
    "    held.wait()\n"
)


@pytest.mark.process
def test_ensure_reuses_per_scope_and_stop_all_ends_every_holder(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`ensure(scope=A)` twice reuses; `scope=C` starts another (the daemon reads its scope
    from TENURE_SCOPE); with a scoped `tenure run` too, `tenure stop --all` ends them all and
    says so, and nothing of theirs runs or listens afterwards."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    a, c = projects(tmp_path, "a", "c")
    command = [PY, "-c", DAEMON, "1.0"]
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("TENURE_")})
    try:
        first = tenure.ensure("indexer", command, version="1.0", root=root, scope=a)
        proc_registry.track(first.pid)
        again = tenure.ensure("indexer", command, version="1.0", root=root, scope=a)
        other = tenure.ensure("indexer", command, version="1.0", root=root, scope=c)
        proc_registry.track(other.pid)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert (first.action, again.action, other.action) == ("started", "reused", "started")
    assert again.pid == first.pid != other.pid
    assert (first.scope, other.scope) == (str(a.resolve()), str(c.resolve()))
    proc_registry.spawn(run_in(a, "1.0"), env=env)
    web = scoped(root, a)
    assert web.child is not None
    done = cli(env, "stop", "--all", "--json")
    assert done.returncode == 0, done.stderr
    stopped = json.loads(done.stdout)["stopped"]
    assert sorted((s["family"], s["pid"], s["stopped"]) for s in stopped) == sorted(
        [("indexer", first.pid, True), ("indexer", other.pid, True), ("web", web.holder.pid, True)]
    )
    for pid in (first.pid, other.pid, web.holder.pid, web.child.pid):
        assert wait_for(lambda p=pid: pid_gone(p), what=f"pid {pid} to be gone")
    assert not open_ports([web.holder.port or 0])
    assert cli(env, "stop", "--all").stdout.strip() == "no holder running"
    shutil.rmtree(a)


@pytest.mark.process
def test_one_dashboard_per_project_whose_health_names_it(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`tenure dashboard start --project DIR` in two projects: two dashboards on two ports,
    each health answer naming its project; a third start for the first project reuses it;
    `stop --project` stops that one only. A moved-away project's record is pruned by `ls`."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    alpha, beta = projects(tmp_path, "alpha", "beta")

    def start(project: Path) -> dict[str, object]:
        done = cli(env, "dashboard", "start", "--project", str(project), "--json")
        assert done.returncode == 0, done.stderr
        doc = json.loads(done.stdout)
        assert isinstance(doc["pid"], int)
        proc_registry.track(doc["pid"])
        return dict(doc)

    a, b, again = start(alpha), start(beta), start(alpha)
    assert a["port"] != b["port"]
    assert (again["pid"], again["action"]) == (a["pid"], "reused")
    for doc, project in ((a, alpha), (b, beta)):
        with urllib.request.urlopen(f"http://127.0.0.1:{doc['port']}/api/health") as reply:
            health = json.loads(reply.read())
        assert (health["pid"], health["scope"]) == (doc["pid"], str(project.resolve()))
    assert cli(env, "sync", "start", "--project", str(alpha)).returncode == 2
    stopped = cli(env, "dashboard", "stop", "--project", str(beta), "--json")
    assert json.loads(stopped.stdout)["stopped"] is True
    assert wait_for(lambda: pid_gone(int(str(b["pid"]))), what="beta's dashboard to go")
    assert not pid_gone(int(str(a["pid"])))
    key = LeaseStore(root, "dashboard", resolve_scope(beta)).record_path
    shutil.rmtree(beta)
    listed = cli(env, "ls")
    assert "pruned the records of dashboard (" in listed.stderr
    assert not key.exists()
    assert cli(env, "stop", "--all").returncode == 0


def test_a_user_scope_record_is_what_the_previous_release_wrote(tmp_path: Path) -> None:
    """No `scope` key, the same file name: a root written by the previous release is read and
    governed unchanged, and an older reader sees this release's user-scope records as its own."""
    with tenure.hold("web", version="1.0", root=tmp_path, timing=FAST):
        path = tmp_path / "leases" / "web.json"
        doc = json.loads(path.read_bytes())
        assert "scope" not in doc
        assert sorted(p.name for p in (tmp_path / "leases").glob("*.json")) == ["web.json"]
    rec = LeaseStore(tmp_path, "web").read()
    assert isinstance(rec, LeaseRecord)
    assert rec.scope is None
    assert rec.state is LeaseState.RELEASED


def test_a_garbage_scoped_record_is_listed_unreadable_and_governs_nothing(tmp_path: Path) -> None:
    """A file that looks like a scoped record but is garbage, or a record copied from another
    scope's file, is shown by the doctor as unreadable; `ls` and `stop --all` go on."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    a = tmp_path / "a"
    a.mkdir()
    with tenure.hold("web", version="1.0", root=root, scope=a, timing=FAST):
        real = LeaseStore(root, "web", resolve_scope(a)).record_path
        (root / "leases" / "web.0123456789abcdef.json").write_bytes(real.read_bytes())
        (root / "leases" / "web.fedcba9876543210.json").write_bytes(b"\x00garbage")
        doctor = cli(env, "auth", "doctor", "--json")
        leases = json.loads(doctor.stdout)["leases"]
        web = sorted((x["state"], x["scope"]) for x in leases if x["family"] == "web")
        assert web == [("held", str(a.resolve())), ("unreadable", None), ("unreadable", None)]
        listed = cli(env, "ls", "--json")
        assert listed.returncode == 0, listed.stderr
        stopped = cli(env, "stop", "--all", "--family", "nosuch", "--json")
        assert json.loads(stopped.stdout)["stopped"] == []
