"""The normative docs and the code agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tenure.core.record import PROTOCOL
from tenure.holder.governor import RetireReason
from tests.conftest import HERE, linux_only, python_output

DOCS = HERE.parent / "docs" / "protocol"


def test_protocol_version_matches_index() -> None:
    """docs/protocol/index.md names the same protocol version as the code."""
    match = re.search(r"\*\*Protocol version:\*\* `([^`]+)`", (DOCS / "index.md").read_text())
    assert match is not None
    assert match.group(1) == PROTOCOL


def test_every_retirement_reason_is_documented() -> None:
    """lease.md lists every RetireReason value."""
    text = (DOCS / "lease.md").read_text()
    missing = [r.value for r in RetireReason if f"`{r.value}`" not in text]
    assert missing == []


def test_daemon_process_imports_neither_typer_nor_rich() -> None:
    """The daemon entry point, its startup reaper and the governor stay free of CLI libraries
    (and of asyncio, which only `tenure.hold_async` needs)."""
    code = (
        "import sys, tenure.daemon.main, tenure.hygiene.survey, tenure.adapters.reaper\n"
        "cli = ('typer', 'rich', 'click', 'asyncio')  # asyncio: ~2 MB resident, unused\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in cli)\n"
        "print(','.join(bad))\n"
    )
    assert python_output(code).strip() == ""


# What the daemon and `tenure sync start` must not pay for on Linux (import time and resident
# memory: benchmarks/run.py measures both; these are the deterministic proxies).
HEAVY = (
    "psutil",
    "filelock",
    "packaging",
    "http.server",
    "http.client",
    "ssl",
    "email",
    "argparse",
    "hmac",
    "concurrent",
    "asyncio",
    "typing",  # ~5 ms with contextlib (tenure.core.hints stands in)
    "dataclasses",  # loads inspect; ~0.6 ms a class on top (tenure.core.values replaces it)
    "inspect",
)


@linux_only("/proc instead of psutil")
@pytest.mark.parametrize(
    "modules",
    [
        "tenure.daemon.main, tenure.hygiene.cleanup, tenure.hygiene.survey",  # daemon + reaper
        "tenure.cli.hot, tenure.requester.start",  # `tenure sync start`
        "tenure; tenure.ensure, tenure.hold, tenure.stop",  # a host tool
    ],
)
def test_the_start_path_loads_no_heavy_library(modules: str) -> None:
    """Neither the daemon (with its startup reaper), `tenure sync start` nor a host tool's
    `tenure.ensure`/`hold`/`stop` imports psutil, filelock, packaging, http.server/client, ssl,
    argparse, hmac, concurrent.futures, typing, dataclasses or inspect."""
    code = (
        f"import sys, {modules}\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy))\n"
    )
    assert python_output(code).strip() == "[]"


def test_version_flag_and_the_env_override() -> None:
    """`tenure --version` prints `tenure <version>`; TENURE_VERSION overrides the version."""
    import os
    import subprocess
    import sys

    from tenure.version import __version__

    env = {k: v for k, v in os.environ.items() if k != "TENURE_VERSION"}
    plain = subprocess.run(
        [sys.executable, "-m", "tenure", "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    spoofed = subprocess.run(
        [sys.executable, "-m", "tenure", "--version"],
        env={**env, "TENURE_VERSION": "9.9.9"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert plain.stdout.strip() == f"tenure {__version__}"
    assert spoofed.stdout.strip() == "tenure 9.9.9"


def test_the_conformance_table_lists_exactly_the_kits_checks() -> None:
    """control.md#conformance names every check the kit makes, in the kit's order."""
    from tenure.conformance import CHECKS

    text = (DOCS / "control.md").read_text().split("## Conformance", 1)[1]
    documented = re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE)
    assert documented == list(CHECKS)


def test_the_bounds_table_is_the_code() -> None:
    """control.md#bounds lists every bound with the value `tenure.core.timing` defines."""
    from tenure.core import timing

    t = timing.Timing(ttl_s=9.0, heartbeat_s=2.0)
    assert timing.asked_leave_wait(2.0) == 2.0 + timing.HOLDER_STOP.grace_s
    code = {
        "asked_leave_wait": f"H of the record + {timing.HOLDER_STOP.grace_s:g} s",
        "leave_wait": f"T + 2 H ({timing.leave_wait(t):g} at T=9, H=2)",
        "start_lock_wait": f"2 T + 60 s ({timing.start_lock_wait(t):g} at T=9)",
        "SPAWN_TIMEOUT_S": f"{timing.SPAWN_TIMEOUT_S:g} s",
        "START_ATTEMPTS": f"{timing.START_ATTEMPTS}",
        "PORT_RELEASE_WAIT_S": f"{timing.PORT_RELEASE_WAIT_S:g} s",
        "REAPER_REPORT_WAIT_S": f"{timing.REAPER_REPORT_WAIT_S:g} s",
        "READY_HEALTH_TIMEOUT_S": f"{timing.READY_HEALTH_TIMEOUT_S:g} s",
        "TREE_STOP": f"SIGTERM, {timing.TREE_STOP.grace_s:g} s, SIGKILL, "
        f"{timing.TREE_STOP.kill_wait_s:g} s; whole tree",
        "HOLDER_STOP": f"SIGTERM, {timing.HOLDER_STOP.grace_s:g} s, SIGKILL, "
        f"{timing.HOLDER_STOP.kill_wait_s:g} s; the holder",
        "RUN_RELEASE_S": f"{timing.RUN_RELEASE_S:g} s",
        "DEFAULT_READY_S": f"{timing.DEFAULT_READY_S:g} s",
        "PORT_CLAIM_WAIT_S": f"{timing.PORT_CLAIM_WAIT_S:g} s",
        "HANDOVER_WAIT_S": f"{timing.HANDOVER_WAIT_S:g} s",
        "SOCKET_SETTLE_S": f"{timing.SOCKET_SETTLE_S:g} s",
        "ROLLBACK_WAIT_S": f"{timing.ROLLBACK_WAIT_S:g} s",
        "WATCH_S": f"{timing.WATCH_S * 1000:g} ms",
        "POLL_S": f"{timing.POLL_S * 1000:g} ms",
        "SCAN_POLL_S": f"{timing.SCAN_POLL_S * 1000:g} ms",
    }
    assert timing.leave_wait(t) == 13.0
    assert timing.start_lock_wait(t) == 78.0
    assert timing.TREE_STOP.tree
    assert not timing.HOLDER_STOP.tree
    section = (DOCS / "control.md").read_text().split("## Bounds", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            documented[cells[0].strip("`")] = cells[1]
    expected = {k: v.split(" (")[0] for k, v in code.items()}
    assert documented == expected


def test_the_adopters_path_loads_only_the_generic_protocol() -> None:
    """`import tenure` plus `tenure.ensure` / `tenure.hold` load no doctor, survey, legacy
    classifier, reaper, findings or CLI (a proxy for the cold start a tool's CLI pays)."""
    code = (
        "import sys, tenure\n"
        "tenure.ensure, tenure.hold, tenure.stop\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('tenure', 'typer', "
        "'rich', 'click')))))\n"
    )
    loaded = python_output(code).split()
    unwanted = (
        "tenure.hygiene",
        "tenure.daemon",
        "tenure.demo",
        "tenure.legacy",
        "tenure.conformance",
        "tenure.requester.start",
        "tenure.requester.manage",
        "tenure.core.classify",
        "tenure.core.classify_legacy",
        "tenure.core.speckitty",
        "tenure.core.findings",
        "tenure.core.verdicts",
        "tenure.adapters.reaper",
        "tenure.adapters.probe",
        "tenure.cli",
        "typer",
        "rich",
        "click",
    )
    assert [m for m in loaded if m.startswith(unwanted)] == []
    # 46 with the stand-ins for typing and dataclasses; 41 since ports, spawning, HTTP and
    # tokens load only when a holder is spawned or asked over HTTP; 42 with the record's field
    # field table in a module of their own (core/fields.py).
    assert len([m for m in loaded if m.startswith("tenure")]) <= 42


def test_the_hot_commands_answer_without_typer_exactly_as_the_typer_app_does(
    tmp_path: Path,
) -> None:
    """`tenure sync status` and friends go through the typer-free path (the cold start of a
    tool's first command pays no CLI framework) and say exactly what the typer app says."""
    import subprocess
    import sys

    root = str(tmp_path / "root")
    hot = (
        "import sys; from tenure.cli import main\n"
        "try:\n    main()\nfinally:\n"
        "    sys.stderr.write('typer loaded\\n' if 'typer' in sys.modules else '')\n"
    )
    typer_app = "import sys; from tenure.cli.app import app; app()"
    for args in (
        ["sync", "status", "--json", "--root", root],
        ["status", "dashboard", f"--root={root}"],
        ["dashboard", "stop", "-q", "--root", root],
    ):
        fast = subprocess.run(
            [sys.executable, "-c", hot, *args], capture_output=True, text=True, check=False
        )
        slow = subprocess.run(
            [sys.executable, "-c", typer_app, *args], capture_output=True, text=True, check=False
        )
        assert "typer loaded" not in fast.stderr, args
        assert (fast.returncode, fast.stdout, fast.stderr) == (
            slow.returncode,
            slow.stdout,
            slow.stderr,
        ), args
    typo = subprocess.run(
        [sys.executable, "-c", hot, "sync", "status", "--jsn"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert typo.returncode == 2  # anything the hot path does not know goes to typer
    assert "typer loaded" in typo.stderr


def test_the_pytest_plugin_costs_a_project_nothing_until_it_is_used(tmp_path: Path) -> None:
    """pytest loads the plugin in every project that has tenure installed: a run that uses no
    tenure fixture or option loads a handful of small tenure modules, no runtime, no psutil."""
    import subprocess
    import sys

    (tmp_path / "test_other_project.py").write_text(
        "import sys\n"
        "def test_loaded():\n"
        "    print('LOADED', ' '.join(sorted(m for m in sys.modules\n"
        "          if m.split('.')[0] in ('tenure', 'psutil', 'filelock'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--rootdir", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (line,) = [x for x in done.stdout.splitlines() if "LOADED" in x]
    loaded = line.split("LOADED", 1)[1].split()
    assert "tenure.testing" in loaded  # the plugin is there
    assert [
        m
        for m in loaded
        if m.startswith(("tenure.adapters", "tenure.holder", "tenure.requester", "tenure.protocol"))
    ] == []
    assert [m for m in loaded if m.split(".")[0] in ("psutil", "filelock")] == []
    assert len(loaded) <= 9, loaded  # 7, and the stand-ins for typing and dataclasses
