"""The cleanup use-case, written once: survey → confirm → reap → result.

Used by `tenure auth doctor --reset [--force]`, the demo's reset act and a new holder's startup
reaper. spec: docs/protocol/classification.md#acting-on-a-verdict-the-reaper
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tenure.adapters.reaper import ReapResult, reap
from tenure.core.families import Family
from tenure.core.findings import plural
from tenure.core.notify import Notify, quiet
from tenure.core.values import field, mutable
from tenure.core.verdicts import CleanupClass, DaemonIdentityRecord
from tenure.hygiene.survey import Survey, survey

Confirm = Callable[[DaemonIdentityRecord], bool]


@mutable
class Cleanup:
    """What a cleanup did: the reaper's result, what it left for an operator, interruption."""

    result: ReapResult = field(default_factory=ReapResult)
    pending: list[DaemonIdentityRecord] = field(default_factory=list)
    interrupted: bool = False


def cleanup(
    surveys: Sequence[Survey],
    root: Path,
    *,
    force: bool = False,
    confirm: Confirm | None = None,
    notify: Notify = quiet,
    should_stop: Callable[[], bool] = lambda: False,
) -> Cleanup:
    """Clean `safe_auto` listeners of every surveyed family; `operator_required` ones only with
    `force`, or when `confirm` says yes (without either they are listed in `pending`).

    Ctrl-C at a prompt (or a closed prompt), or `should_stop()` turning true (the caller's
    signal handler), stops between candidates: what was done so far is returned with
    `interrupted` set, never lost.
    """
    done = Cleanup()

    def allow(rec: DaemonIdentityRecord) -> bool:
        if force:
            return True
        if confirm is not None:
            return confirm(rec)
        done.pending.append(rec)
        return False

    try:
        for found in surveys:
            if any(r.cleanup_class is not CleanupClass.NEVER_TOUCH for r in found.records):
                notify(f"resetting {found.family.name}: {plural(len(found.records), 'listener')}")
            reap(
                found.records,
                found.family,
                root,
                allow_operator=allow,
                into=done.result,
                should_stop=should_stop,
            )
            if should_stop():
                done.interrupted = True
                break
    except (KeyboardInterrupt, EOFError):
        done.interrupted = True
    return done


def startup_cleanup(family: Family, root: Path, legacy_root: Path) -> Cleanup:
    """What a new holder runs once: its own family, `safe_auto` only, nobody to ask."""
    return cleanup([survey(family, root, legacy_root)], root)
