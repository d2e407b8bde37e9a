"""Adopting tenure end to end (issue: adopters' and operators' surfaces): holders judged on
their own terms, no HTTP to servers that are not tenure's, systemctl's verbs for every family,
remediations that exist, words that cannot be misread, and `--watch` on a real terminal."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import termios
from pathlib import Path
from typing import Any

import psutil
import pyte
import pytest

from tenure.adapters.ports import open_ports
from tenure.adapters.store import LeaseStore
from tenure.core.record import LeaseRecord
from tenure.testing import ProcessRegistry, pid_gone
from tests.conftest import HERE, PY, block, block_fleet, popen_interruptible, wait_for

BLOCK = block(__name__)
assert BLOCK.extra is not None
LO, HI = BLOCK.extra
FAST = {"TENURE_LEASE_TTL": "3", "TENURE_HEARTBEAT": "0.5"}
HELD = HERE.parent / "examples" / "held.py"
# A listener that appends every byte it receives to a file: it must stay empty.
LOGGER = (
    "import socket, sys\n"
    "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(16)\n"
    "while True:\n"
    "    c, _ = s.accept(); c.settimeout(1.0)\n"
    "    try:\n"
    "        while data := c.recv(65536):\n"
    "            open(sys.argv[2], 'ab').write(data)\n"
    "    except OSError:\n"
    "        pass\n"
    "    c.close()\n"
)


def env_for(root: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **FAST,
        "TENURE_ROOT": str(root),
        "TENURE_SYNC_PORTS": BLOCK.sync_env,
        "TENURE_DASHBOARD_PORTS": BLOCK.dashboard_env,
        "SPEC_KITTY_HOME": str(root.parent / "legacy"),
        **extra,
    }


def tenure(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "tenure", *args],
        env=env_for(root),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def doctor(root: Path) -> tuple[dict[str, Any], int]:
    done = tenure(root, "auth", "doctor", "--json")
    assert done.returncode in (0, 1), done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc, done.returncode


def start_held(root: Path, registry: ProcessRegistry) -> subprocess.Popen[str]:
    """examples/held.py: a `tenure.hold` daemon without a port or HTTP."""
    proc = popen_interruptible(
        [PY, str(HELD), str(root), "1.0"], env=env_for(root), stdout=subprocess.PIPE
    )
    registry.popens.append(proc)  # type: ignore[arg-type]
    registry.track(proc.pid)
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("holding epoch")
    return proc


def start_run(root: Path, registry: ProcessRegistry, log: Path) -> subprocess.Popen[bytes]:
    """A byte-logging server under `tenure run` in the custom family `web`."""
    argv = [PY, "-m", "tenure", "run", "--family", "web", "--version", "1.0"]
    argv += ["--ports", f"{LO}-{HI}", "--", PY, "-c", LOGGER, "{port}", str(log)]
    wrapper = registry.spawn(argv, env=env_for(root))

    def serving() -> bool:
        rec = LeaseStore(root, "web").read()
        return (
            isinstance(rec, LeaseRecord)
            and rec.child is not None
            and rec.holder.port is not None
            and open_ports([rec.holder.port]) == [rec.holder.port]
        )

    wait_for(serving, what="the logging server under tenure run to listen")
    return wrapper


def test_holders_are_judged_on_their_own_terms_and_servers_get_no_http(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """A `hold` daemon without HTTP and a `tenure run` child are healthy: the doctor exits 0
    with no critical finding; neither the recorded child nor a stranger listening in the custom
    family's range receives a single byte from `tenure ls`, the doctor or `tenure status`."""
    root = tmp_path / "root"
    stray_log, child_log = tmp_path / "stray.bytes", tmp_path / "child.bytes"
    stray_log.touch()
    child_log.touch()
    stray = proc_registry.spawn([PY, "-c", LOGGER, str(HI), str(stray_log)])
    wait_for(lambda: open_ports([HI]) == [HI], what="the stray listener")
    start_held(root, proc_registry)
    start_run(root, proc_registry, child_log)
    assert tenure(root, "ls", "--json").returncode == 0
    doc, code = doctor(root)
    assert code == 0, doc["findings"]
    assert [f for f in doc["findings"] if f["severity"] == "critical"] == []
    leases = {lease["family"]: lease for lease in doc["leases"]}
    for fam in ("indexer", "web"):
        assert (leases[fam]["state"], leases[fam]["holder_answers"]) == ("held", None)
    assert {c["port"] for c in doc["candidates"] if c["scan_family"] == "web"} >= {HI}
    for fam in ("indexer", "web"):
        status = tenure(root, "status", fam)
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"{fam} held" in status.stdout
    assert stray.poll() is None
    assert (stray_log.read_bytes(), child_log.read_bytes()) == (b"", b"")


def shell_fix(root: Path, remediation: str) -> None:
    """Run a finding's remediation as an operator would (the text before a two-space note)."""
    command = remediation.split("  (", maxsplit=1)[0].replace("tenure ", f"{PY} -m tenure ")
    done = subprocess.run(
        ["bash", "-c", command],
        env=env_for(root),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (command, done.stdout, done.stderr)


def test_a_stopped_hold_daemon_is_not_renewing_and_tenure_stop_fixes_it(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """SIGSTOP a `hold` daemon (no control port): once its lease expired the doctor says it is
    alive but not renewing (critical, exit 1); its remediation, run as printed, removes it."""
    root = tmp_path / "root"
    held = start_held(root, proc_registry)
    held.send_signal(signal.SIGSTOP)
    try:

        def finding() -> dict[str, Any] | None:
            doc, code = doctor(root)
            found = [f for f in doc["findings"] if f["id"] == "holder_not_renewing:indexer"]
            return found[0] if found and code == 1 else None

        found = wait_for(finding, what="the doctor to see the stopped holder")
        assert isinstance(found, dict)
        assert found["remediation"].startswith("tenure stop indexer")
        shell_fix(root, found["remediation"])
    finally:
        if held.poll() is None:
            held.send_signal(signal.SIGCONT)
    assert held.wait(60) == 0  # SIGTERM + SIGCONT: it retired gracefully
    doc, code = doctor(root)
    assert code == 0, doc["findings"]
    assert "retired" in tenure(root, "ls").stdout or "released" in tenure(root, "ls").stdout


def test_a_wedged_sync_daemon_is_fixed_by_the_remediation_as_printed(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """holder_not_answering names `tenure stop sync`, a command that exists and removes it."""
    fleet = block_fleet(BLOCK, tmp_path, proc_registry, **FAST)
    started = fleet.start("sync")
    proc = psutil.Process(started["pid"])
    proc.suspend()
    try:
        done = fleet.cli("auth", "doctor", "--json", check=False)
        doc = json.loads(done.stdout)
        (found,) = [f for f in doc["findings"] if f["id"] == "holder_not_answering:sync"]
        assert found["remediation"].startswith("tenure stop sync")
        command = found["remediation"].split("  (", maxsplit=1)[0]
        fixed = fleet.cli(*command.split()[1:], check=False)
        assert fixed.returncode == 0, fixed.stderr
    finally:
        if proc.is_running():
            proc.resume()
    wait_for(lambda: pid_gone(started["pid"]), what="the wedged daemon to be stopped")
    after = json.loads(fleet.cli("auth", "doctor", "--json", check=False).stdout)
    assert "holder_not_answering:sync" not in {f["id"] for f in after["findings"]}


def test_systemctl_and_docker_habits_get_an_answer(tmp_path: Path) -> None:
    """`tenure redis stop` says what exists; `logs` of nothing fails in one line; `restart` of
    a family the root has never seen exits 5; no placeholder (`<str>`, a range dump) in any help,
    `run`'s usage shows its command, and no padding when piped."""
    root = tmp_path / "root"
    wrong = tenure(root, "redis", "stop")
    assert wrong.returncode == 2
    assert "Did you mean 'tenure stop redis'?" in wrong.stderr
    logs = tenure(root, "logs", "nosuch")
    assert logs.returncode == 1
    assert logs.stderr.count("\n") == 1
    assert "no nosuch log" in logs.stderr
    restart = tenure(root, "restart", "indexer")  # a family this root has never seen
    assert restart.returncode == 5
    assert "no family 'indexer'" in restart.stderr
    helps = [["ls"], ["auth", "doctor"], [], ["run"], ["stop"], ["status"], ["start"]]
    helps += [["restart"], ["logs"], ["conformance"], ["demo"], ["sync", "start"]]
    for command in [[*h, "-h"] for h in helps] + [["auth", "doctor"]]:
        out = tenure(root, *command).stdout
        assert re.findall(r"<[a-z ]+>|<=x<=|x>=", out) == [], command  # no placeholders
        assert [line for line in out.splitlines() if line != line.rstrip()] == []
    assert "run [OPTIONS] -- CMD [ARGS]..." in tenure(root, "run", "-h").stdout
    relative = subprocess.run(
        [PY, "-m", "tenure", "ls"],
        env={**env_for(root), "TENURE_ROOT": "relroot"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert relative.stdout.splitlines()[0] == f"root {tmp_path / 'relroot'}"


def test_an_absent_or_released_lease_is_told_in_plain_words(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """No `renewed … ago` for a released lease, no countdown for a dead holder's lease, no
    row of dashes for an absent one, no Python `None`."""
    root = tmp_path / "root"
    held = start_held(root, proc_registry)
    held.kill()
    held.wait(30)
    ls = tenure(root, "ls").stdout
    (line,) = [x for x in ls.splitlines() if x.startswith("indexer")]
    assert "holder gone (dead)" in line
    assert "expires in" not in line
    human = tenure(root, "auth", "doctor").stdout
    assert "None" not in human
    assert "version -; renewed -" not in human
    wrapper = start_held(root, proc_registry)
    wrapper.send_signal(signal.SIGTERM)
    wrapper.wait(60)
    (line,) = [x for x in tenure(root, "ls").stdout.splitlines() if x.startswith("indexer")]
    assert "released" in line
    assert "renewed" not in line


class Terminal:
    """`tenure auth doctor --watch` in a pseudo-terminal of 80 by 24, read by a terminal
    emulator (pyte) as a user's terminal would show it."""

    ROWS, COLS = 24, 80

    def __init__(self, root: Path) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", self.ROWS, self.COLS, 0, 0))
        env = {k: v for k, v in env_for(root).items() if k not in ("COLUMNS", "LINES")}
        env["TERM"] = "xterm-256color"
        self.proc = subprocess.Popen(
            [PY, "-m", "tenure", "auth", "doctor", "--watch"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.screen = pyte.Screen(self.COLS, self.ROWS)
        self.stream = pyte.ByteStream(self.screen)

    def read(self) -> list[str]:
        """Feed what the watch wrote so far; the screen's lines."""
        while select.select([self.master], [], [], 0)[0]:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                break
            if not data:
                break
            self.stream.feed(data)
        return list(self.screen.display)

    def showing(self, words: str) -> bool:
        return any(words in line for line in self.read())

    def close(self) -> list[str]:
        """Ctrl-C; the screen it leaves."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        shown = self.read()
        os.close(self.master)
        return shown


def test_watch_on_a_real_terminal_replaces_each_frame(tmp_path: Path) -> None:
    """After several refreshes the screen holds exactly one frame (one title, one header),
    although the view would be taller than the terminal: it is cut to fit, saying `+N more`."""
    root = tmp_path / "root"
    (root / "leases").mkdir(parents=True, mode=0o700)
    os.chmod(root, 0o700)
    for n in range(12):  # unreadable records: a line and a finding each, so a frame overflows
        (root / "leases" / f"fam{n:02d}.json").write_bytes(b"not a record")
    term = Terminal(root)
    stamps: set[str] = set()
    try:

        def refreshed_twice() -> bool:
            title = [line for line in term.read() if "watching" in line]
            stamps.update(re.findall(r"refreshed (\d\d:\d\d:\d\d)", " ".join(title)))
            return len(stamps) >= 3

        wait_for(refreshed_twice, timeout=90, what="three frames of the watch")
        text = term.read()
        assert sum("watching — refreshed" in line for line in text) == 1, "\n".join(text)
        assert sum(line.startswith("tenure auth doctor") for line in text) == 1, "\n".join(text)
        assert text[0].startswith("watching — refreshed"), "\n".join(text)
        assert "Findings (12)" in text[2]
        assert any(line.strip().startswith("+") and "more" in line for line in text)
    finally:
        term.close()


def test_watch_at_80_by_24_shows_findings_and_a_supersession_and_leaves_its_frame(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """Five families, one of them superseded while watched: the findings are on screen, the
    supersession appears within a few seconds, renewals are one summary line (not one event
    each), and Ctrl-C leaves the last frame on screen."""
    root = tmp_path / "root"
    (root / "leases").mkdir(parents=True, mode=0o700)
    os.chmod(root, 0o700)
    for name in ("alpha", "beta", "gamma"):
        (root / "leases" / f"{name}.json").write_bytes(b"garbage")
    old = start_held(root, proc_registry)
    term = Terminal(root)
    try:
        wait_for(lambda: term.showing("indexer"), timeout=90, what="the first frame")
        wait_for(lambda: term.showing("renewals since the watch began: indexer x"), timeout=60)
        newer = popen_interruptible(
            [PY, str(HELD), str(root), "1.1"], env=env_for(root), stdout=subprocess.PIPE
        )
        proc_registry.popens.append(newer)  # type: ignore[arg-type]
        proc_registry.track(newer.pid)
        wait_for(
            lambda: term.showing(f"pid {old.pid} (1.0) retired: superseded"),
            timeout=30,
            what="the supersession on screen",
        )
        text = term.read()
        assert "Findings (3)" in "\n".join(text)
        assert not any("renewed by" in line for line in text)
        assert len([line for line in text if line.strip()]) <= Terminal.ROWS
    finally:
        left = term.close()
    assert any("retired: superseded" in line for line in left), "\n".join(left)


def test_watch_through_a_pipe_prints_one_line_per_event(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """Off a terminal: the leases as they are, then each event as it happens (`kubectl get
    -w`), no frames and no renewal lines."""
    root = tmp_path / "root"
    start_held(root, proc_registry)
    watch = popen_interruptible(
        [PY, "-m", "tenure", "auth", "doctor", "--watch"],
        env=env_for(root),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc_registry.popens.append(watch)  # type: ignore[arg-type]
    proc_registry.track(watch.pid)
    assert watch.stdout is not None
    first = watch.stdout.readline()
    assert "sync" in first
    assert "absent" in first
    newer = popen_interruptible(
        [PY, str(HELD), str(root), "1.1"], env=env_for(root), stdout=subprocess.PIPE
    )
    proc_registry.popens.append(newer)  # type: ignore[arg-type]
    proc_registry.track(newer.pid)
    lines = []
    while not any("retired: superseded" in line for line in lines):
        line = watch.stdout.readline()
        assert line, "the watch ended before the supersession"
        lines.append(line)
    watch.send_signal(signal.SIGINT)
    watch.wait(30)
    assert any(f"indexer: new holder pid {newer.pid}" in line for line in lines), lines
    assert not any("renewed by" in line for line in lines), lines
    assert "\x1b" not in "".join(lines)


SERVED = HERE.parent / "examples" / "served.py"
RECORDS_ITS_START = (
    "import os, runpy, sys\n"
    "open('seen.txt', 'w').write(os.getcwd() + '\\n' + os.environ['GREETING'])\n"
    "sys.argv = [sys.argv[1], sys.argv[2]]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def test_ensure_passes_env_and_cwd_and_waits_for_the_port(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`ensure(env=, cwd=, ready="port")`: the daemon sees both, and its port accepts the
    moment `ensure` returns; `{port}` without a range is a usage error before any spawn."""
    import tenure

    root, work = tmp_path / "root", tmp_path / "work"
    work.mkdir()
    found = tenure.ensure(
        "indexer",
        [PY, "-c", RECORDS_ITS_START, str(SERVED), "1.0"],
        version="1.0",
        ports=(LO, HI),
        root=root,
        env={"GREETING": "hello"},
        cwd=work,
        ready="port",
    )
    proc_registry.track(found.pid)
    assert found.port is not None
    assert open_ports([found.port]) == [found.port]
    assert (work / "seen.txt").read_text().splitlines() == [str(work), "hello"]
    with pytest.raises(tenure.TenureError, match="ports"):
        tenure.ensure("other", [PY, "-c", "pass", "{port}"], version="1.0", root=root)
    assert tenure.stop("indexer", root) == found.pid


def test_the_library_works_without_the_cli_and_the_command_says_how_to_get_it() -> None:
    """typer and rich are the `cli` extra's: with them missing, `tenure.hold` / `tenure.ensure`
    import, and the `tenure` command is one line naming the extra (exit 2)."""
    missing = "import sys; sys.modules['typer'] = sys.modules['rich'] = None\n"
    library = subprocess.run(
        [PY, "-c", missing + "import tenure; tenure.hold, tenure.ensure, tenure.stop; print('ok')"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (library.returncode, library.stdout) == (0, "ok\n"), library.stderr
    command = subprocess.run(
        [PY, "-c", missing + "from tenure.__main__ import main; main()", "ls"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert command.returncode == 2
    assert command.stderr.splitlines() == [
        "tenure: the command line needs typer, which comes with its extra: "
        "pip install 'tenure[cli]'"
    ]


def test_a_service_port_in_a_builtin_range_gets_no_http_either(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """In spec-kitty's ranges the doctor asks listeners for health, but never the port a holder
    without a control plane recorded (here a byte-logging server under `tenure run` in the sync
    family): it receives nothing, and the doctor still exits 0."""
    root = tmp_path / "root"
    log = tmp_path / "child.bytes"
    log.touch()
    lo, hi = BLOCK.sync
    argv = [PY, "-m", "tenure", "run", "--family", "sync", "--version", "1.0"]
    argv += ["--ports", f"{lo}-{hi}", "--", PY, "-c", LOGGER, "{port}", str(log)]
    proc_registry.spawn(argv, env=env_for(root))

    def serving() -> bool:
        rec = LeaseStore(root, "sync").read()
        return isinstance(rec, LeaseRecord) and rec.child is not None and open_ports([lo]) == [lo]

    wait_for(serving, what="the logging server under tenure run in the sync range")
    doc, code = doctor(root)
    assert code == 0, doc["findings"]
    assert [c["port"] for c in doc["candidates"]] == [lo]
    assert tenure(root, "ls", "--json").returncode == 0
    assert log.read_bytes() == b""


def in_terminal(root: Path, *args: str, **extra: str) -> str:
    """`tenure ARGS` with a pseudo-terminal of 120 columns as stdout: the raw bytes it wrote."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
    env = {k: v for k, v in env_for(root).items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen(
        [PY, "-m", "tenure", *args],
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "xterm-256color", **extra},
        start_new_session=True,
    )
    os.close(slave)
    chunks = []
    while True:
        ready = select.select([master], [], [], 60)[0]
        try:
            data = os.read(master, 65536) if ready else b""
        except OSError:  # the terminal closed: the command has finished writing
            data = b""
        if not data:
            break
        chunks.append(data)
    proc.wait(60)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def test_ls_and_the_doctor_colour_states_on_a_terminal_only(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """On a colour terminal `held` is green in `ls` and the doctor; NO_COLOR gets no colour and
    a pipe no escape at all; versions are never split by a highlighter (3.2.4 stays one word)."""
    root = tmp_path / "root"
    daemon = popen_interruptible(
        [PY, str(HELD), str(root), "3.2.4"], env=env_for(root), stdout=subprocess.PIPE
    )
    proc_registry.popens.append(daemon)  # type: ignore[arg-type]
    proc_registry.track(daemon.pid)
    assert daemon.stdout is not None
    assert daemon.stdout.readline().startswith("holding epoch")
    green = "\x1b[32m"
    for args in (("ls",), ("auth", "doctor")):
        coloured = in_terminal(root, *args)
        assert green in coloured, (args, coloured)
        assert "3.2.4" in coloured
        # NO_COLOR (no-color.org) takes colour away; bold and italic may stay.
        plain = in_terminal(root, *args, NO_COLOR="1")
        assert re.findall(r"\x1b\[[0-9;]*(?:3[0-8]|9[0-7])(?:;[0-9;]*)?m", plain) == [], args
        piped = subprocess.run(
            [PY, "-m", "tenure", *args],
            env={**env_for(root), "TERM": "xterm-256color"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert "\x1b" not in piped.stdout, args


def test_family_names_complete_and_tenure_doctor_is_the_hot_doctor(
    tmp_path: Path, proc_registry: ProcessRegistry
) -> None:
    """`tenure stop <TAB>` offers the root's families (bash and zsh), the adopted one
    included; `tenure doctor` answers as `tenure auth doctor` does."""
    root = tmp_path / "root"
    start_held(root, proc_registry)
    script = Path(PY).parent / "tenure"
    env = {**env_for(root), "_TENURE_COMPLETE": "complete_bash", "COMP_CWORD": "2"}
    bash = subprocess.run(
        [str(script)],
        env={**env, "COMP_WORDS": "tenure stop "},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bash.stdout.split() == ["sync", "dashboard", "indexer"], bash.stderr
    zsh = subprocess.run(
        [str(script)],
        env={
            **env_for(root),
            "_TENURE_COMPLETE": "complete_zsh",
            "_TYPER_COMPLETE_ARGS": "tenure logs in",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert '"indexer"' in zsh.stdout
    assert '"sync"' not in zsh.stdout
    alias, full = tenure(root, "doctor"), tenure(root, "auth", "doctor")
    assert alias.returncode == full.returncode
    assert alias.stdout.splitlines()[:4] == full.stdout.splitlines()[:4]
