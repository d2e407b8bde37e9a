"""A governed process tree (adapter): who belongs to it, keeping it reaped, ending all of it.

`tenure run` starts its child with an inherited cookie (`TENURE_TREE=<nonce>` in the
environment, as Jenkins' process-tree killer marks builds) in a session of its own, and on
Linux makes itself the child subreaper, so a descendant that daemonizes (`setsid … &`, a double
fork) is re-parented to the wrapper instead of init. Members are the wrapper's descendants by
parent links plus processes carrying the cookie that started after the tree did, of any uid.
The one escape: a descendant that scrubs its environment *and* leaves the subreaper (only
possible where there is none, or after the wrapper was SIGKILLed) — see control.md#run.
spec: docs/protocol/control.md#run
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator

from tenure.adapters import guard, platform
from tenure.adapters.procfs import parent_and_start
from tenure.adapters.procinfo import TREE_COOKIE_ENV, read_process, signal_verified, tree_cookies
from tenure.core.hints import TYPE_CHECKING
from tenure.core.identity import ProcessIdentity
from tenure.core.timing import SCAN_POLL_S, StopPolicy
from tenure.core.values import frozen

if TYPE_CHECKING:
    import subprocess

COOKIE_ENV = TREE_COOKIE_ENV
PR_SET_CHILD_SUBREAPER = 36


@frozen
class Tree:
    """How to recognise a tree's members: its cookie, the process it descends from, and the
    start (ticks since boot) before which nothing belongs to it."""

    cookie: str
    root_pid: int | None  # the governing wrapper (None: gone, e.g. a dead holder's tree)
    since_ticks: int | None
    spare: tuple[int, ...] = ()  # the wrapper's own helpers (its watchdog): never members

    def members(self) -> list[ProcessIdentity]:
        """The live members now, of any uid (a member that dropped its privileges is still
        one), never the wrapper itself or its helpers."""
        table = dict(_processes())
        kids: dict[int, list[int]] = {}
        for pid, (ppid, _ticks) in table.items():
            kids.setdefault(ppid, []).append(pid)
        found: set[int] = set()
        todo = list(kids.get(self.root_pid, [])) if self.root_pid is not None else []
        while todo:
            pid = todo.pop()
            if pid not in found:
                found.add(pid)
                todo.extend(kids.get(pid, []))
        for pid, (_ppid, ticks) in table.items():
            if pid not in found and self._started_in(ticks) and self._carries_cookie(pid):
                found.add(pid)
        found.discard(os.getpid())
        found.difference_update(self.spare)
        out = []
        for pid in sorted(found):
            facts = read_process(pid)
            if facts is not None and self._started_in(facts.start_ticks):
                out.append(facts.ident)
        return out

    def proves(self, pid: int) -> bool:
        """Whether `pid` is provably a member (checked again right before each signal)."""
        return self._descends(pid) or self._carries_cookie(pid)

    def _started_in(self, ticks: int | None) -> bool:
        return self.since_ticks is None or (ticks is not None and ticks >= self.since_ticks)

    def _carries_cookie(self, pid: int) -> bool:
        return self.cookie in tree_cookies(pid)

    def _descends(self, pid: int) -> bool:
        if self.root_pid is None:
            return False
        seen = 0
        while pid > 1 and seen < 4096:
            ppid = _ppid(pid)
            if ppid == self.root_pid:
                return True
            if ppid is None:
                return False
            pid, seen = ppid, seen + 1
        return False


def _ppid(pid: int) -> int | None:
    if not platform.PROC_FACTS:
        import psutil  # noqa: PLC0415  (only without /proc)

        try:
            return psutil.Process(pid).ppid()
        except psutil.Error:
            return None
    found = parent_and_start(pid)
    return None if found is None else found[0]


def _processes() -> Iterator[tuple[int, tuple[int, int | None]]]:
    if not platform.PROC_FACTS:
        import psutil  # noqa: PLC0415

        # No /proc: psutil's table (parent links; no start ticks, so no start bound either).
        for proc in psutil.process_iter(["ppid"]):
            ppid = proc.info.get("ppid")
            if isinstance(ppid, int):
                yield proc.pid, (ppid, None)
        return
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if name.isdigit():
            found = parent_and_start(int(name))
            if found is not None:
                yield int(name), found


def inherit_cookie(inherited: str | None, cookie: str) -> str:
    """The cookie variable for a tree nested in another (the kit running `tenure run`): every
    enclosing tree keeps finding its members."""
    return cookie if not inherited else f"{inherited},{cookie}"


def become_subreaper() -> bool:
    """Make this process the child subreaper of its descendants (Linux); False elsewhere."""
    if not platform.PROC_FACTS:  # Linux only, and not in portable mode
        return False
    import ctypes  # noqa: PLC0415  (only `tenure run` needs it; `import tenure` stays lean)

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return bool(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def reap_orphans(child: subprocess.Popen[bytes]) -> bool:
    """Reap descendants re-parented to us that exited; True while any child of ours remains.

    `waitid(WNOWAIT)` peeks, so the Popen child's status is never taken from Popen (reaping it
    here would make Popen report 0).
    """
    if sys.platform != "linux" or not platform.PROC_FACTS:
        return child.poll() is None  # no subreaper there: orphans never come back to us
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    while True:
        try:
            found = os.waitid(os.P_ALL, 0, flags)
        except ChildProcessError:
            return False
        if found is None:
            return True  # children, none exited
        if found.si_pid == child.pid:
            return True  # Popen's to reap (its next poll)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(found.si_pid, 0)


def signal_tree(
    tree: Tree, sig: signal.Signals, skip: int | None = None, only: int | None = None
) -> int:
    """Send `sig` to every member but `skip` (a child signalled through its Popen), or to the
    member `only` alone, each through `signal_verified` plus the tree's own proof (descent or
    cookie); how many."""
    sent = 0
    for ident in tree.members():
        if ident.pid == skip or (only is not None and ident.pid != only):
            continue
        if tree.proves(ident.pid):
            guard.allow(ident)  # the test guard learns the members of a tree it governs
        # The tree's proof (descent or cookie) stands in for the uid: the kernel says whether
        # this process may signal a member that changed its uid (control.md#run).
        if signal_verified(ident, sig, proof=tree.proves, any_uid=True) is None:
            sent += 1
    return sent


def stop_tree(
    tree: Tree,
    child: subprocess.Popen[bytes] | None,
    policy: StopPolicy,
    head: int | None = None,
) -> bool:
    """End the whole tree under `policy` (control.md#stop-policy): its first signal (+SIGCONT)
    to the child (through its Popen) and to every member — to the head alone (the child, or
    `head` by pid) when the policy says the head ends its own children — the grace period,
    then SIGKILL to every member left; reaped as it goes. True when nothing of it is left (a
    member this process may not signal outlives it)."""

    def alive() -> bool:
        if child is not None:
            child.poll()
            reap_orphans(child)
        return (child is not None and child.returncode is None) or bool(tree.members())

    first = platform.signal_named(policy.first)
    skip = None if child is None else child.pid
    for sig, wait in ((first, policy.grace_s), (platform.KILL, policy.kill_wait_s)):
        if child is not None and child.poll() is None:
            child.send_signal(sig)
            if platform.CONT is not None:
                child.send_signal(platform.CONT)
        if sig is first and policy.head_only:
            if child is None and head is not None:
                signal_tree(tree, sig, only=head)
                if platform.CONT is not None:
                    signal_tree(tree, platform.CONT, only=head)
        else:
            signal_tree(tree, sig, skip)
            if sig is first and platform.CONT is not None:
                signal_tree(tree, platform.CONT, skip)  # a stopped member must be able to act
        deadline = time.monotonic() + wait
        while alive() and time.monotonic() < deadline:
            time.sleep(SCAN_POLL_S)
        if not alive():
            return True
    return False
