"""The conformance kit (driver): does a daemon command speak `tenure/1`? Real processes only.

`run_conformance(["./mydaemon", "--port", "{port}"])` starts the command several times, each in
a fresh private root, with what `tenure.ensure` would pass (TENURE_ROOT, TENURE_FAMILY,
TENURE_VERSION, TENURE_PORT, TENURE_PORTS, short TENURE_LEASE_TTL / TENURE_HEARTBEAT, idleness
off) and `{port}`, `{root}`, `{family}`, `{version}` substituted in the argv. It then checks, by
reading the root as any reader would, that the daemon takes the lease, refuses a second copy,
renews, keeps its token private, and leaves — releasing and recording a tombstone — on SIGTERM,
on supersession, when asked through the record and on lease loss, and leaves without writing
on root removal; and that it never writes the record after losing its epoch.
spec: docs/protocol/control.md#conformance

The kit stops everything it starts, by pid and verified identity (it registers them with the
test kit's signal guard when one is on), and touches nothing outside its own temporary roots.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tenure.adapters.procinfo import liveness
from tenure.conformance.holding import (
    keeps_token_private,
    refuses_second_copy,
    renews,
    serves_control_plane,
    takes_lease,
    takes_the_lock,
)
from tenure.conformance.leaving import asked, lease_loss, root_removal, sigterm, supersession
from tenure.conformance.report import CHECKS, Check, Report
from tenure.conformance.session import Failed, Options, Session, Started
from tenure.core.lease import Liveness
from tenure.core.notify import Notify, quiet
from tenure.core.record import LeaseRecord

__all__ = ["CHECKS", "Check", "Options", "Report", "run_conformance"]


@contextlib.contextmanager
def _session(command: Sequence[str], opts: Options, workdir: Path, tag: str) -> Iterator[Session]:
    s = Session(command, opts, workdir, tag)
    try:
        yield s
    finally:
        s.close()


def _not_run(names: Sequence[str], why: str) -> list[Check]:
    return [Check(n, False, f"not run: {why}") for n in names]


def run_conformance(
    command: Sequence[str], opts: Options | None = None, notify: Notify = quiet
) -> Report:
    """Run every check against `command`; see the module doc."""
    opts = opts or Options()
    if not command:
        raise ValueError("no command to check")
    if opts.ports is None and any("{port}" in arg for arg in command):
        raise ValueError("the command uses {port}: give the family's port range (--ports LO-HI)")
    checks: list[Check] = []
    left_behind: list[str] = []
    held = False
    workdir = Path(tempfile.mkdtemp(prefix="tenure-conformance-", dir=opts.workdir))
    try:
        for names, body in _PLAN:
            if checks and not held:
                # It never took the lease in the first session: the others would only wait
                # out the same start timeout again.
                checks.extend(_not_run(names, "it never took the lease (see takes_lease)"))
                continue
            notify(f"checking {', '.join(names)}")
            with _session(command, opts, workdir, names[0]) as s:
                try:
                    d = s.spawn()
                    t0 = time.monotonic()
                    rec = s.holding(d)
                    found = body(s, d, rec, t0)
                except Failed as exc:
                    found = _not_run(names, str(exc))
                    if names[0] == "takes_lease":
                        found[0] = Check("takes_lease", False, str(exc))
            checks.extend(found)
            left_behind += s.left_behind
            held = held or any(d.holder is not None for d in s.started)
        checks.append(_nothing_behind(left_behind, held))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    order = {name: i for i, name in enumerate(CHECKS)}
    return Report(tuple(command), opts.family, tuple(sorted(checks, key=lambda c: order[c.name])))


Body = Callable[[Session, Started, LeaseRecord, float], list[Check]]


def _first_session(s: Session, d: Started, rec: LeaseRecord, t0: float) -> list[Check]:
    taken = takes_lease(s, d, rec, t0)
    second = refuses_second_copy(s, rec)
    renewed = renews(s, rec)
    locks = takes_the_lock(s)
    current = s.record() or rec
    private = keeps_token_private(s, current)
    control = serves_control_plane(s, current)
    if liveness(rec.holder.ident) is not Liveness.ALIVE:
        died = Check("leaves_on_sigterm", False, "it was gone before SIGTERM: it died by itself")
        return [taken, second, renewed, locks, private, control, died]
    return [taken, second, renewed, locks, private, control, sigterm(s, d, current)]


# The sessions, each a fresh root: which checks it runs (CHECKS, in order; the last check,
# leaves_nothing_behind, is judged across all of them).
_PLAN: tuple[tuple[tuple[str, ...], Body], ...] = (
    (CHECKS[:7], _first_session),
    (CHECKS[7:8], lambda s, d, rec, _t: [supersession(s, d, rec)]),
    (CHECKS[8:9], lambda s, d, rec, _t: [asked(s, d, rec)]),
    (CHECKS[9:11], lambda s, d, rec, _t: list(lease_loss(s, d, rec))),
    (CHECKS[11:13], lambda s, d, rec, _t: list(root_removal(s, d, rec))),
)
assert [n for names, _ in _PLAN for n in names] == list(CHECKS[:-1])


def _nothing_behind(left: list[str], held: bool) -> Check:
    if not held:
        return Check("leaves_nothing_behind", False, "not run: it never held the lease")
    if not left:
        return Check("leaves_nothing_behind", True, "no process of its tree outlived it")
    return Check(
        "leaves_nothing_behind",
        False,
        "it left processes running after it left (the kit ended them): " + "; ".join(left),
    )
