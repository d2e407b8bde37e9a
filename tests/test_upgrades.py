"""Upgrades that never go dark, first part: everything is checked before an older holder is
touched (a typo'd executable or option, a command `ensure` cannot start), and one version
grammar (PEP 440) at every door. spec: control.md#run, control.md#ensure, versioning.md
"""

from __future__ import annotations

import json
import string
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import InvalidVersion, Version

import tenure
from tenure.adapters.store import LeaseStore
from tenure.core.inputs import is_pep440
from tenure.core.record import LeaseRecord, LeaseState
from tenure.errors import ConfigError, TenureError
from tenure.testing import ProcessRegistry
from tests.conftest import PY, block
from tests.test_identity import env_for, held_when

BLOCK = block(__name__)
WEB = f"{BLOCK.extra[0]}-{BLOCK.extra[1]}" if BLOCK.extra else ""
SERVE = "import http.server, sys; http.server.test(port=int(sys.argv[1]), bind='127.0.0.1')"
RUN = [PY, "-m", "tenure", "run", "--family", "web", "--ports", WEB]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [PY, "-m", "tenure", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def serving_1_0(root: Path, registry: ProcessRegistry, env: dict[str, str]) -> LeaseRecord:
    registry.spawn([*RUN, "--version", "1.0", "--", PY, "-c", SERVE, "{port}"], env=env)
    return held_when(root, "web", lambda r: r.child is not None and r.state is LeaseState.HELD)


def unchanged(root: Path, before: LeaseRecord) -> None:
    now = LeaseStore(root, "web").read()
    assert isinstance(now, LeaseRecord)
    assert (now.state, now.epoch, now.holder.nonce, now.superseded_by) == (
        LeaseState.HELD,
        before.epoch,
        before.holder.nonce,
        None,
    )


@pytest.mark.parametrize(
    ("upgrade", "said"),
    [
        pytest.param(
            ["--version", "2.0", "--", "pyhton3", "-m", "http.server", "{port}"],
            "'pyhton3' not found on PATH",
            id="typo-in-the-executable",
        ),
        pytest.param(
            ["--version", "2.0", "--idle", "60", "--", PY, "-m", "http.server", "{port}"],
            "'--idle' is not an option of tenure run",
            id="typo-in-an-option",
        ),
        pytest.param(
            ["--version", "2.0 beta", "--", PY, "-m", "http.server", "{port}"],
            "is not a PEP 440 version",
            id="a-version-that-cannot-be-compared",
        ),
    ],
)
def test_a_mistyped_upgrade_leaves_the_running_version_serving(
    tmp_path: Path, proc_registry: ProcessRegistry, upgrade: list[str], said: str
) -> None:
    """A usage error (exit 2) before any file is touched: 1.0 keeps its lease and epoch, and
    nobody asked it to leave."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    before = serving_1_0(root, proc_registry, env)
    failed = subprocess.run(
        [*RUN, *upgrade], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert failed.returncode == 2, failed.stderr
    assert said in failed.stderr
    assert "Errno" not in failed.stderr
    unchanged(root, before)


def test_a_version_outside_the_grammar_writes_no_record(tmp_path: Path) -> None:
    """`--version "1.0 beta"` on an empty root: exit 2, naming the grammar, no record."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    failed = cli(env, "run", "--family", "web", "--version", "1.0 beta", "--", PY, "-c", "pass")
    assert failed.returncode == 2
    assert "PEP 440" in failed.stderr
    assert not LeaseStore(root, "web").record_path.exists()


HOLD_DAEMON = (
    "import sys, tenure\n"
    "with tenure.hold('indexer', version=sys.argv[1]) as held:\n"
    "    held.wait()\n"
)


def test_ensure_with_a_command_that_cannot_start_leaves_the_old_holder(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`ensure` cannot bring old code back, so a missing executable is a `TenureError` raised
    before the 1.1 holder is asked to leave."""
    root = (tmp_path / "root").resolve()
    env = env_for(root)
    found = tenure.ensure("indexer", [PY, "-c", HOLD_DAEMON, "1.1"], version="1.1", root=root)
    proc_registry.track(found.pid)
    before = LeaseStore(root, "indexer").read()
    assert isinstance(before, LeaseRecord)
    with pytest.raises(TenureError, match="/nonexistent/served"):
        tenure.ensure("indexer", ["/nonexistent/served", "1.2"], version="1.2", root=root)
    now = LeaseStore(root, "indexer").read()
    assert isinstance(now, LeaseRecord)
    assert (now.epoch, now.holder.pid, now.superseded_by) == (before.epoch, found.pid, None)
    tenure.stop("indexer", root=root)
    assert json.loads(cli(env, "ls", "--json").stdout)["families"]


@pytest.mark.parametrize(
    "version", ["1.0 beta", "dev", "2024-06-01", "", " 1.0", "1.0-local", "x1"]
)
def test_every_door_refuses_a_version_outside_pep_440(tmp_path: Path, version: str) -> None:
    with (
        pytest.raises(ConfigError, match="PEP 440"),
        tenure.hold("w", version=version, root=tmp_path),
    ):
        pass
    with pytest.raises(ConfigError, match="PEP 440"):
        tenure.ensure("w", [sys.executable, "-c", "pass"], version=version, root=tmp_path)


VERSIONISH = st.text(alphabet=string.digits + ".-_+!abcdeoprstvlv", max_size=14)


@given(VERSIONISH)
def test_the_version_grammar_is_pep_440s(text: str) -> None:
    """Differential against packaging: the same strings are versions (no surrounding blanks)."""
    try:
        Version(text)
        accepted = text == text.strip() and bool(text)
    except InvalidVersion:
        accepted = False
    assert is_pep440(text) is accepted
