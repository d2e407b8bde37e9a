"""The platform adapter's pure choices, with the platform injected: what each OS is asked for."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tenure.adapters import platform, winjob
from tenure.adapters.platform import CREATE_NEW_PROCESS_GROUP, DETACHED_PROCESS, Detach, detach
from tests.conftest import linux_only, python_output, wait_for


@pytest.mark.parametrize("system", ["linux", "darwin"])
def test_posix_detaches_by_a_session_of_its_own(system: str) -> None:
    assert detach(system) == Detach(new_session=True, creationflags=0)
    assert detach(system, daemon=False) == Detach(new_session=True, creationflags=0)


def test_windows_detaches_by_process_group_and_a_daemon_loses_its_console() -> None:
    daemon = detach("win32")
    assert daemon == Detach(False, CREATE_NEW_PROCESS_GROUP | DETACHED_PROCESS)
    # A `tenure run` child keeps the wrapper's console (and job): only its own group.
    assert detach("win32", daemon=False) == Detach(False, CREATE_NEW_PROCESS_GROUP)
    assert (CREATE_NEW_PROCESS_GROUP, DETACHED_PROCESS) == (0x200, 0x8)  # winbase.h


# POSIX: the child leads a session of its own; Windows (no sessions): it started at all.
SESSION_LEADER = "import os; print(getattr(os, 'getsid', lambda _: os.getpid())(0) == os.getpid())"


def test_this_platforms_detach_is_accepted_by_popen() -> None:
    """The options chosen here start a real child (POSIX refuses non-zero creationflags)."""
    apart = detach()
    proc = subprocess.Popen(
        [sys.executable, "-c", SESSION_LEADER],
        stdout=subprocess.PIPE,
        start_new_session=apart.new_session,
        creationflags=apart.creationflags,
    )
    out, _ = proc.communicate(timeout=30)
    assert out.strip() == b"True"


class Calls:
    """A record of the Job Object calls (Windows' kernel32 is not on this machine)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int | None]] = []

    def create(self) -> int:
        self.seen.append(("create", None))
        return 77

    def kill_on_close(self, job: int) -> None:
        self.seen.append(("kill_on_close", job))

    def assign_self(self, job: int) -> None:
        self.seen.append(("assign_self", job))


def test_the_job_is_kill_on_close_before_the_wrapper_joins_it() -> None:
    """Create, limit, then join: a wrapper in a job without the limit would leave its tree
    behind if it died between the two calls; the child is started only after (it inherits)."""
    calls = Calls()
    assert winjob.contain_self(calls) == 77
    assert calls.seen == [("create", None), ("kill_on_close", 77), ("assign_self", 77)]
    assert winjob.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE == 0x2000  # winnt.h


def test_portable_mode_is_read_once_from_the_environment() -> None:
    code = "from tenure.adapters import platform as p; print(p.PORTABLE, p.PROC_FACTS)"
    for value, expected in (("1", "True False"), ("0", f"False {platform.LINUX}")):
        assert _python(code, TENURE_TEST_PORTABLE=value).split() == expected.split()


def test_portable_mode_reads_a_process_through_psutil_only() -> None:
    """No location, no start ticks, no lock holder (all /proc); the tree cookie still read."""
    code = (
        "import os, pathlib, tempfile\n"
        "from tenure.adapters.location import here\n"
        "from tenure.adapters.procinfo import lock_holder_pid, start_ticks, tree_cookies\n"
        "print(here(), start_ticks(os.getpid()), tree_cookies(os.getpid()),\n"
        "      lock_holder_pid(pathlib.Path(tempfile.gettempdir())), sep='|')"
    )
    out = _python(code, TENURE_TEST_PORTABLE="1", TENURE_TREE="abc,def")
    assert out.strip() == "None|None|('abc', 'def')|None"
    if platform.LINUX:  # and the same process read the Linux way has all of them
        linux = _python(code, TENURE_TREE="abc,def").split("|")
        assert linux[0] != "None"
        assert linux[1].isdigit()


def _python(code: str, **env: str) -> str:
    return python_output(code, env={"PATH": "/usr/bin:/bin", **env})


@linux_only("/proc")
def test_proc_facts_are_the_numbers_psutil_gives() -> None:
    """`read_process` from /proc (the hot path, without psutil) agrees with psutil exactly:
    create_time to the bit, uid, argv (spaces and all); a zombie is gone, init is there."""
    import psutil

    from tenure.adapters import procfs

    odd = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "an arg with spaces", ""],
        stdin=subprocess.PIPE,
    )
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE)
        for pid in (os.getpid(), odd.pid, 1):
            facts = procfs.read(pid)
            proc = psutil.Process(pid)
            assert facts is not None
            assert facts.create_time == proc.create_time()
            assert facts.uid == proc.uids().real
            assert list(facts.cmdline) == proc.cmdline()
        assert procfs.read(zombie.pid) is None
        assert procfs.read(2**22 + 7) is None  # no such pid
    finally:
        odd.kill()
        odd.wait()
        zombie.wait()


def test_a_process_title_written_with_spaces_splits_as_psutil_splits_it() -> None:
    from tenure.adapters.procfs import split_cmdline

    assert split_cmdline("a\0b c\0\0") == ("a", "b c", "")
    assert split_cmdline("nginx: worker process") == ("nginx:", "worker", "process")
    assert split_cmdline("nginx: worker\0") == ("nginx:", "worker")
    assert split_cmdline("") == ()


@linux_only("sock_diag and the socket tables in /proc/net")
@pytest.mark.parametrize("source", ["sock_diag", "/proc/net/tcp"])
def test_listening_pids_from_proc_are_psutils(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`probe.listening_pids` asks the kernel (sock_diag; else /proc/net/tcp{,6}) and /proc, no
    psutil, and pairs ports with pids as psutil's `net_connections` does: an IPv4 listener of
    ours, an IPv6 one of a child, and one socket shared by this process and a child that
    inherited it (psutil names the last holder)."""
    import socket

    import psutil

    from tenure.adapters import peers
    from tenure.adapters.probe import _listeners, listening_pids

    if source != "sock_diag":

        def refused(_family: int) -> list[tuple[int, int]]:
            raise OSError("no sock_diag here")

        monkeypatch.setattr(peers, "_diag_listeners", refused)
    own = socket.create_server(("127.0.0.1", 0))
    shared = socket.create_server(("127.0.0.1", 0))
    code = (
        "import socket, sys; s = socket.create_server(('::1', 0), family=socket.AF_INET6);"
        " print(s.getsockname()[1], flush=True); sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=(shared.fileno(),),
    )
    try:
        assert child.stdout is not None
        v6 = int(child.stdout.readline())
        ports = {own.getsockname()[1], shared.getsockname()[1], v6}
        ours = {p: pid for p, pid in listening_pids().items() if p in ports}
        theirs = _listeners(psutil.net_connections(kind="tcp"))
        assert ours == {p: theirs[p] for p in ports}
        assert ours[v6] == child.pid
        assert ours[own.getsockname()[1]] == os.getpid()
    finally:
        child.kill()
        child.wait()
        own.close()
        shared.close()
