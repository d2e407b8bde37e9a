"""The doctor's findings (pure): what needs attention, and the one command that removes it.

Rule (docs/protocol/doctor-json.md#findings): a finding's `remediation` is a command that
removes that finding given the current classes, or it says plainly that no tenure command can
and what can. Only findings some command removes are `critical`; the rest are at most
`warning`, so following the advice always brings the exit code to 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from tenure.core.classify import CleanupClass, DaemonIdentityRecord, Governance, SkipReason
from tenure.core.families import FAMILIES
from tenure.core.values import frozen

RESET = "tenure auth doctor --reset"
RESET_FORCE = "tenure auth doctor --reset --force"


@frozen
class Finding:
    """Something the operator should know, with the command that removes it."""

    id: str
    severity: str  # info / warning / critical
    summary: str
    remediation: str


@frozen
class RootProblem:
    """Why the root (or a subdirectory of it) is refused: `kind` as RootError reports it."""

    path: str
    kind: str
    message: str


@frozen
class LeaseFacts:
    """What a finding needs to know about one family's lease."""

    family: str
    state: str
    record_path: str
    unreadable_reason: str | None = None
    lock_holder_pid: int | None = None
    holder_pid: int | None = None
    holder_answers: bool | None = None  # None: not asked (no control port)
    holder_alive: bool | None = None
    port: int | None = None  # the port the record names for its holder (or its child)


def plural(n: int, word: str, words: str | None = None) -> str:
    """`1 daemon`, `2 daemons`."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def agree(n: int, one: str, many: str) -> str:
    """The verb (or pronoun) that agrees with a count: `returns` / `return`."""
    return one if n == 1 else many


def port_list(records: Sequence[DaemonIdentityRecord]) -> str:
    """`port 9404` or `ports 9401, 9402`."""
    ports = ", ".join(str(r.port) for r in records)
    return f"{'port' if len(records) == 1 else 'ports'} {ports}"


def reset_for(records: Sequence[DaemonIdentityRecord]) -> str:
    """The single reset that cleans every one of `records` (all must be cleanable)."""
    operator = any(r.cleanup_class is CleanupClass.OPERATOR_REQUIRED for r in records)
    return RESET_FORCE if operator else RESET


def cleanable(record: DaemonIdentityRecord) -> bool:
    """Whether some reset can end this listener (by pid, within the rules)."""
    if record.cleanup_class is CleanupClass.SAFE_AUTO:
        return True
    return (
        record.cleanup_class is CleanupClass.OPERATOR_REQUIRED
        and record.pid is not None
        and record.skip_reason is not SkipReason.MISSING_PID
    )


def remediation_for(record: DaemonIdentityRecord) -> str | None:
    """A one-line fix for one listener, or None when it is left alone by design."""
    if record.cleanup_class is CleanupClass.NEVER_TOUCH:
        return None
    if not cleanable(record):
        return "no tenure command can: no process owns the port; find it with ss -ltnp"
    return reset_for([record])


def root_remediation(problem: RootProblem) -> tuple[str, str]:
    """(severity, remediation) for a refused root or subdirectory."""
    path = problem.path
    if problem.kind == "writable":
        return "critical", f"chmod 700 {path}"
    if problem.kind == "symlink":
        return "critical", f"rm {path}  (removes the link, not its target; tenure makes a real one)"
    if problem.kind == "not_directory":
        return "critical", f"mv {path} {path}.bak  (tenure creates it anew on the next start)"
    if problem.kind == "foreign_owner":
        return (
            "warning",
            f"no tenure command can change another user's {path}: use a root of your own "
            "(--root DIR or TENURE_ROOT=DIR) or ask its owner to remove it",
        )
    return "warning", f"no tenure command can repair {path}: check it with ls -ld {path}"


def _lease_findings(lease: LeaseFacts) -> list[Finding]:
    out: list[Finding] = []
    fam = lease.family
    if lease.state == "unreadable":
        out.append(
            Finding(
                f"lease_unreadable:{fam}",
                "critical",
                f"{fam} lease record is unreadable: {lease.unreadable_reason}",
                f"rm {lease.record_path} && tenure {fam} start"
                if fam in FAMILIES  # tenure starts only its own families
                else f"rm {lease.record_path}  (the family's next start takes the lease)",
            )
        )
    if lease.lock_holder_pid is not None:
        out.append(
            Finding(
                f"lease_lock_stuck:{fam}",
                "warning",
                f"{fam} lease lock is held by pid {lease.lock_holder_pid}",
                f"no tenure command can release another process's lock: see "
                f"ps -o pid,args -p {lease.lock_holder_pid} and stop it if it is hung",
            )
        )
    if lease.state in ("held", "expired") and lease.holder_answers is False:
        out.append(
            Finding(
                f"holder_not_answering:{fam}",
                "critical",
                f"{fam} lease holder pid {lease.holder_pid} does not answer health on its "
                "control port",
                f"tenure stop {fam}  (verified SIGTERM, then SIGKILL)",
            )
        )
    elif lease.state == "expired" and lease.holder_alive and lease.holder_answers is None:
        # A holder judged on its own terms (no control port): alive, yet not renewing.
        out.append(
            Finding(
                f"holder_not_renewing:{fam}",
                "critical",
                f"{fam} lease holder pid {lease.holder_pid} is alive but stopped renewing its "
                "lease (stopped or wedged); the family's next start takes the lease over",
                f"tenure stop {fam}  (verified SIGTERM, then SIGKILL)",
            )
        )
    return out


def _legacy_findings(cands: Sequence[DaemonIdentityRecord]) -> list[Finding]:
    out: list[Finding] = []
    legacy = [
        r
        for r in cands
        if r.governance is Governance.LEGACY and r.cleanup_class is not CleanupClass.NEVER_TOUCH
    ]
    fixable = [r for r in legacy if cleanable(r)]
    if fixable:
        safe = sum(r.cleanup_class is CleanupClass.SAFE_AUTO for r in fixable)
        out.append(
            Finding(
                "legacy_holdouts",
                "warning",
                f"{plural(len(fixable), 'legacy spec-kitty daemon')} "
                f"{agree(len(fixable), 'predates', 'predate')} leases "
                f"({port_list(fixable)}): {safe} safe_auto, {len(fixable) - safe} "
                "operator_required",
                reset_for(fixable),
            )
        )
    unowned = [r for r in legacy if not cleanable(r)]
    if unowned:
        out.append(
            Finding(
                "legacy_unattributed",
                "warning",
                f"{plural(len(unowned), 'legacy daemon')} on {port_list(unowned)} cannot be "
                "tied to a process",
                "no tenure command can end a listener without a pid: find it with ss -ltnp",
            )
        )
    leaking = [r for r in cands if r.token_leaked]
    ending = [r for r in leaking if cleanable(r)]
    if ending:
        out.append(
            Finding(
                "legacy_token_leak",
                "critical",
                f"{plural(len(ending), 'legacy daemon')} "
                f"{agree(len(ending), 'returns its', 'return their')} raw control token on "
                f"/api/health ({port_list(ending)}); stopping "
                f"{agree(len(ending), 'it', 'them')} ends the leak",
                reset_for(ending),
            )
        )
    kept = [r for r in leaking if not cleanable(r)]
    if kept:
        out.append(
            Finding(
                "legacy_token_leak_kept",
                "warning",
                f"{plural(len(kept), 'daemon')} that tenure leaves alone by design "
                f"{agree(len(kept), 'returns its', 'return their')} raw token on /api/health "
                f"({port_list(kept)}: "
                f"{', '.join(sorted({_why(r) for r in kept}))})",
                "no tenure command can stop spec-kitty's own active daemon or dashboard: stop "
                "it from spec-kitty, or upgrade spec-kitty to a release that does not leak",
            )
        )
    return out


def _port_findings(
    leases: Sequence[LeaseFacts], cands: Sequence[DaemonIdentityRecord]
) -> list[Finding]:
    """A dead holder's port that something tenure cannot tie to the family still holds: the
    documented escape of `tenure run` (a child that scrubbed its environment and double-forked
    before its wrapper was SIGKILLed), or a stranger that took the port (control.md#run)."""
    out = []
    for lease in leases:
        if lease.state != "expired" or lease.holder_alive is not False or lease.port is None:
            continue
        strangers = [
            r
            for r in cands
            if r.port == lease.port
            and r.cleanup_class is CleanupClass.NEVER_TOUCH
            and r.skip_reason is not SkipReason.LEASE_HOLDER
        ]
        for r in strangers:
            who = "a process tenure cannot see" if r.pid is None else f"pid {r.pid}"
            out.append(
                Finding(
                    f"holder_port_held:{lease.family}",
                    "warning",
                    f"{lease.family} holder pid {lease.holder_pid} is dead, yet its port "
                    f"{lease.port} is still held by {who} ({_why(r)}): tenure cannot prove it "
                    "belongs to the family",
                    "no tenure command can: check it with "
                    + (f"ps -o pid,user,args -p {r.pid}" if r.pid else f"ss -ltnp sport = {r.port}")
                    + " and stop it if it is the family's",
                )
            )
    return out


def _why(record: DaemonIdentityRecord) -> str:
    return record.skip_reason.value if record.skip_reason is not None else "unattributed"


def build_findings(
    root_problem: RootProblem | None,
    leases: Sequence[LeaseFacts],
    cands: Sequence[DaemonIdentityRecord],
    unscanned: Sequence[tuple[str, str]] = (),
    overlapping: Sequence[tuple[str, str, int, int]] = (),
) -> list[Finding]:
    """Findings from gathered facts; `unscanned` holds (family, why) of ranges not scanned,
    `overlapping` (family, family, lo, hi) of ranges that share ports."""
    out: list[Finding] = []
    if root_problem is not None:
        severity, fix = root_remediation(root_problem)
        out.append(Finding("root_permissions", severity, root_problem.message, fix))
    for family, why in unscanned:
        out.append(
            Finding(
                f"not_scanned:{family}",
                "warning",
                f"{family} ports were not scanned: {why}",
                "no tenure command can raise the descriptor limit: close descriptors or raise "
                "ulimit -n, then run tenure auth doctor again",
            )
        )
    for a, b, lo, hi in overlapping:
        shared = f"port {lo}" if lo == hi else f"ports {lo}-{hi}"
        out.append(
            Finding(
                f"ports_overlap:{a}:{b}",
                "warning",
                f"families {a} and {b} share {shared}: each scans the other's servers (listed "
                "twice below) and either may take a port the other's next start wants",
                f"no tenure command changes a family's range: give {b} (or {a}) ports of its "
                "own (--ports LO-HI, ports=) and restart it",
            )
        )
    for lease in leases:
        out += _lease_findings(lease)
    out += _legacy_findings(cands)
    out += _port_findings(leases, cands)
    stale = [
        r
        for r in cands
        if r.governance is Governance.LEASE and r.cleanup_class is not CleanupClass.NEVER_TOUCH
    ]
    if stale:
        reasons = ", ".join(sorted({_why(r) if r.skip_reason else "lingering" for r in stale}))
        out.append(
            Finding(
                "stale_lease_daemons",
                "warning",
                f"{plural(len(stale), 'lease-aware daemon')} of this root "
                f"{agree(len(stale), 'needs', 'need')} attention "
                f"({port_list(stale)}: {reasons})",
                reset_for([r for r in stale if cleanable(r)] or stale),
            )
        )
    return out
