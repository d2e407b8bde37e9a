"""A Windows Job Object for `tenure run` (adapter): the tree ends when its wrapper does.

Windows has no subreaper and no parent-death signal. A job with KILL_ON_JOB_CLOSE does both
jobs: every process started inside it is a member (descendants too, unless they break away),
and when the last handle to the job closes — the wrapper exiting, however it ends, even
TerminateProcess — Windows ends every member. The order matters: create the job, set the
limit, put the wrapper itself in it, and only then start the child, which inherits the job
from its first instruction (assigning a child after it started would let a quick grandchild
escape). The handle is not inheritable, so no member keeps the job open.

The steps run through `JobApi`, so their order is tested on every platform; `Kernel32Jobs` is
the real one (Windows only). spec: docs/protocol/index.md#platforms
"""

from __future__ import annotations

import sys

from tenure.core.hints import Protocol

JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
JOB_OBJECT_EXTENDED_LIMIT_INFORMATION = 9  # the JOBOBJECTINFOCLASS value


class JobApi(Protocol):
    """The three calls `contain_self` makes, in this order."""

    def create(self) -> int:
        """A new, unnamed, non-inheritable job; its handle."""
        ...

    def kill_on_close(self, job: int) -> None:
        """Set JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE on `job`."""
        ...

    def assign_self(self, job: int) -> None:
        """Put the calling process in `job`."""
        ...


def contain_self(api: JobApi) -> int:
    """Put this process in a new kill-on-close job before it starts any child; the job's
    handle, to be kept open for as long as this process lives (closing it ends the tree)."""
    job = api.create()
    api.kill_on_close(job)
    api.assign_self(job)
    return job


if sys.platform == "win32":
    import ctypes
    from ctypes import wintypes

    class _BasicLimits(ctypes.Structure):
        _fields_ = (
            ("PerProcessUserTimeLimit", ctypes.c_int64),
            ("PerJobUserTimeLimit", ctypes.c_int64),
            ("LimitFlags", wintypes.DWORD),
            ("MinimumWorkingSetSize", ctypes.c_size_t),
            ("MaximumWorkingSetSize", ctypes.c_size_t),
            ("ActiveProcessLimit", wintypes.DWORD),
            ("Affinity", ctypes.c_size_t),
            ("PriorityClass", wintypes.DWORD),
            ("SchedulingClass", wintypes.DWORD),
        )

    class _ExtendedLimits(ctypes.Structure):
        _fields_ = (
            ("BasicLimitInformation", _BasicLimits),
            ("IoInfo", ctypes.c_uint64 * 6),
            ("ProcessMemoryLimit", ctypes.c_size_t),
            ("JobMemoryLimit", ctypes.c_size_t),
            ("PeakProcessMemoryUsed", ctypes.c_size_t),
            ("PeakJobMemoryUsed", ctypes.c_size_t),
        )

    class Kernel32Jobs:
        """`JobApi` through kernel32 (ctypes)."""

        def __init__(self) -> None:
            self._k32 = ctypes.WinDLL("kernel32", use_last_error=True)
            self._k32.CreateJobObjectW.restype = wintypes.HANDLE
            self._k32.GetCurrentProcess.restype = wintypes.HANDLE

        def _check(self, ok: int, what: str) -> None:
            if not ok:
                raise ctypes.WinError(ctypes.get_last_error(), what)

        def create(self) -> int:
            """See `JobApi.create`."""
            job = self._k32.CreateJobObjectW(None, None)
            self._check(job, "CreateJobObjectW")
            return int(job)

        def kill_on_close(self, job: int) -> None:
            """See `JobApi.kill_on_close`."""
            info = _ExtendedLimits()
            info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
            ok = self._k32.SetInformationJobObject(
                wintypes.HANDLE(job),
                JOB_OBJECT_EXTENDED_LIMIT_INFORMATION,
                ctypes.byref(info),
                ctypes.sizeof(info),
            )
            self._check(ok, "SetInformationJobObject")

        def assign_self(self, job: int) -> None:
            """See `JobApi.assign_self`."""
            me = self._k32.GetCurrentProcess()
            self._check(self._k32.AssignProcessToJobObject(wintypes.HANDLE(job), me), "Assign")
