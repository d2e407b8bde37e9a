"""The conformance report: one verdict per check, in a fixed order."""

from __future__ import annotations

from tenure.core.hints import TYPE_CHECKING
from tenure.core.values import frozen

if TYPE_CHECKING:
    from typing import Any

CHECKS = (
    "takes_lease",
    "refuses_second_copy",
    "renews",
    "takes_the_lock",
    "keeps_token_private",
    "serves_control_plane",
    "leaves_on_sigterm",
    "leaves_on_supersession",
    "leaves_when_asked",
    "leaves_on_lease_loss",
    "no_write_after_losing_epoch",
    "leaves_on_root_removal",
    "no_write_into_a_new_root",
    "leaves_nothing_behind",
)

# The section of docs/protocol each check holds a daemon to (control.md#conformance lists all).
SPEC = {
    "takes_lease": "lease.md#record",
    "refuses_second_copy": "lease.md#acquire",
    "renews": "lease.md#renew",
    "takes_the_lock": "lease.md#transitions",
    "keeps_token_private": "control.md#endpoints",
    "serves_control_plane": "control.md#endpoints",
    "leaves_on_sigterm": "root.md#tombstones",
    "leaves_on_supersession": "lease.md#supersession",
    "leaves_when_asked": "lease.md#stop",
    "leaves_on_lease_loss": "lease.md#fencing",
    "no_write_after_losing_epoch": "lease.md#fencing",
    "leaves_on_root_removal": "lease.md#governor",
    "no_write_into_a_new_root": "root.md#instance",
    "leaves_nothing_behind": "control.md#run",
}


@frozen
class Check:
    """One verdict: `seconds` is the measured time where there is one (leaving, renewing)."""

    name: str
    passed: bool
    detail: str
    seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "spec": SPEC[self.name],
        }


@frozen
class Report:
    """Every check, in `CHECKS` order."""

    command: tuple[str, ...]
    family: str
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    def check(self, name: str) -> Check:
        """The verdict named `name`."""
        return next(c for c in self.checks if c.name == name)

    def explain(self) -> str:
        """One line per check, failures first: what a failing test or the CLI prints."""
        lines = [f"tenure/1 conformance of: {' '.join(self.command)}"]
        for c in sorted(self.checks, key=lambda c: c.passed):
            took = "" if c.seconds is None else f" ({c.seconds:.2f}s)"
            spec = "" if c.passed else f" [spec: {SPEC[c.name]}]"
            lines.append(f"  {'PASS' if c.passed else 'FAIL'} {c.name}{took}: {c.detail}{spec}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "command": list(self.command),
            "family": self.family,
            "passed": self.passed,
            "checks": [c.to_json() for c in self.checks],
        }
