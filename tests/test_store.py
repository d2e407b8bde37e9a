"""The daemon root adapter: permission checks, atomic 0600 writes, symlinks, lock timeouts."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tenure.adapters.files import atomic_write, locked
from tenure.adapters.root import check_root, default_root, ensure_root
from tenure.adapters.store import LeaseStore, read_record_at
from tenure.core.record import Unreadable
from tenure.errors import LockTimeout, RootError
from tests.conftest import linux_only, wait_for


def test_root_is_created_0700(tmp_path: Path) -> None:
    """A missing root is created with mode 0700."""
    root = ensure_root(tmp_path / "a" / "root")
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700


def test_env_overrides_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """TENURE_ROOT wins over the platform default."""
    monkeypatch.setenv("TENURE_ROOT", str(tmp_path / "x"))
    assert default_root() == tmp_path / "x"
    monkeypatch.delenv("TENURE_ROOT")
    assert default_root().name == "tenure"


def test_group_writable_root_is_refused(tmp_path: Path) -> None:
    """A group/world-writable root is refused with the path and the mode in the message."""
    root = tmp_path / "r"
    root.mkdir()
    os.chmod(root, 0o777)
    with pytest.raises(RootError, match=r"group/world-writable \(mode 0777\)") as info:
        ensure_root(root)
    assert str(root) in str(info.value)


def test_symlinked_root_is_refused(tmp_path: Path) -> None:
    """A root that is a symlink is refused."""
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(RootError, match="symlink"):
        check_root(link)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_root_owned_by_another_uid_is_refused(tmp_path: Path) -> None:
    """A root owned by another uid is refused."""
    root = tmp_path / "theirs"
    root.mkdir(mode=0o700)
    os.chown(root, 12345, 12345)
    with pytest.raises(RootError, match="owned by uid 12345"):
        check_root(root)


def test_atomic_write_makes_0600_and_leaves_no_temp(tmp_path: Path) -> None:
    """Atomic writes produce 0600 files and leave no temp files behind."""
    target = tmp_path / "f.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_crash_before_rename_leaves_old_content(tmp_path: Path) -> None:
    """A crash between the temp write and the rename keeps the old record intact."""
    target = tmp_path / "f.json"
    atomic_write(target, b"old")
    code = (
        "import sys; from pathlib import Path; from tenure.adapters.store import atomic_write;"
        f"atomic_write(Path({str(target)!r}), b'new')"
    )
    env = {**os.environ, "TENURE_FAULT_CRASH_BEFORE_RENAME": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    assert proc.returncode == 86
    assert target.read_bytes() == b"old"


def test_symlinked_record_is_unreadable_not_followed(tmp_path: Path) -> None:
    """A record replaced by a symlink reads as Unreadable and the target is never read."""
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("{}")
    rec = tmp_path / "sync.json"
    rec.symlink_to(elsewhere)
    result = read_record_at(rec)
    assert isinstance(result, Unreadable)
    assert "symlink" in result.reason


def test_missing_record_reads_as_none(tmp_path: Path) -> None:
    """No record means a free lease."""
    assert read_record_at(tmp_path / "nope.json") is None


@linux_only("the lock holder's pid from /proc/locks")
def test_lock_timeout_names_the_holder_pid(tmp_path: Path) -> None:
    """When another process holds the lock, the timeout error names its pid."""
    lock = tmp_path / "x.lock"
    code = (
        "import sys,time; from pathlib import Path; from tenure.adapters.store import locked\n"
        f"with locked(Path({str(lock)!r})):\n print('held', flush=True); time.sleep(30)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"held"
        with pytest.raises(LockTimeout) as info, locked(lock, timeout_s=0.2):
            pass
        assert info.value.holder_pid == proc.pid
        assert f"held by pid {proc.pid}" in str(info.value)
    finally:
        proc.kill()
        proc.wait()


def test_transact_keeps_an_epoch_floor(tmp_path: Path) -> None:
    """Every granted epoch raises the floor kept beside the record."""
    from tenure.core.record import Holder, LeaseRecord, LeaseState

    root = ensure_root(tmp_path / "r")
    store = LeaseStore(root, "sync")
    rec = LeaseRecord("sync", 5, Holder(1, 1.0, "n", "1", None, 1.0), 15.0, 1.0, 0, LeaseState.HELD)
    store.transact(lambda cur: (None, rec))
    assert store.epoch_floor() == 5
    store.record_path.write_bytes(b"garbage")
    assert store.epoch_floor() == 5
    assert wait_for(lambda: isinstance(store.read(), Unreadable))


def test_a_holder_past_its_own_ttl_fences_itself(tmp_path: Path) -> None:
    """With no renewal for longer than the TTL on its own clock, the holder stops acting at once."""
    from tenure.core.timing import Timing
    from tenure.errors import LeaseLost
    from tenure.holder.governor import Governor, RetireReason

    now = [100.0]
    gov = Governor(
        ensure_root(tmp_path / "r"),
        "sync",
        "1.0",
        timing=Timing(ttl_s=15.0, heartbeat_s=5.0),
        mono=lambda: now[0],
        wall=lambda: 1_800_000_000.0 + now[0],
    )
    gov.acquire()
    gov.ensure_holding()
    now[0] += 15.5  # e.g. SIGSTOP: no heartbeat ran
    assert not gov.holding()
    with pytest.raises(LeaseLost, match="epoch 1"):
        gov.ensure_holding()
    # The fence is a transition of the table, not a side state: the holder is retiring.
    assert gov.retiring is RetireReason.LEASE_EXPIRED
    assert gov.wait_retired(10) is RetireReason.LEASE_EXPIRED
