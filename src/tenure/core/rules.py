"""Classification as rule tables (pure): first match wins, one row per row of
docs/protocol/classification.md, named by that row's id (a test compares the two)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tenure.core.hints import TYPE_CHECKING, Generic, TypeVar
from tenure.core.values import frozen
from tenure.core.verdicts import (
    CleanupClass,
    DaemonIdentityRecord,
    Governance,
    IdentitySource,
    SkipReason,
    Verdict,
)

if TYPE_CHECKING:
    from typing import Any

NEVER = CleanupClass.NEVER_TOUCH
OPERATOR = CleanupClass.OPERATOR_REQUIRED
SAFE = CleanupClass.SAFE_AUTO


class Context:
    """What every rule context offers the verdict: its governance, source and extra fields."""

    governance: Governance
    source: IdentitySource

    def fields(self) -> dict[str, Any]:
        """Fields of the identity record every row of this table sets."""
        return {}


C = TypeVar("C", bound=Context)


@frozen
class Rule(Generic[C]):
    """One row: when it applies to a context, the class and skip reason it gives, and why.

    `governance`, `source` and `fields` replace the context's own for this row only (e.g. a
    listener proven by the lease record rather than by its own health answer)."""

    row: str
    when: Callable[[C], bool]
    cls: CleanupClass
    reason: SkipReason | None
    why: Callable[[C], list[str]]
    governance: Governance | None = None
    source: IdentitySource | None = None
    fields: Callable[[C], dict[str, Any]] | None = None


def decide(rules: Sequence[Rule[C]], ctx: C, verdict: Verdict) -> DaemonIdentityRecord:
    """The identity record the first row whose condition holds gives (a table's last row
    always holds)."""
    rule = next((rule for rule in rules if rule.when(ctx)), None)
    if rule is None:
        raise LookupError(f"no row of the table applies to {ctx!r}")
    fields = rule.fields(ctx) if rule.fields is not None else ctx.fields()
    return verdict(
        rule.cls,
        rule.reason,
        rule.governance or ctx.governance,
        rule.source or ctx.source,
        rule.why(ctx),
        **fields,
    )
