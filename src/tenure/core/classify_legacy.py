"""Pure classification of listeners that are not lease-aware: legacy spec-kitty 3.2.x or not.

Rows 13-23 of docs/protocol/classification.md; `tenure.core.classify.classify` routes here.
"""

from __future__ import annotations

from collections.abc import Mapping

from tenure.core import speckitty
from tenure.core.hints import TYPE_CHECKING
from tenure.core.rules import NEVER, OPERATOR, SAFE, Context, Rule, decide
from tenure.core.values import frozen
from tenure.core.verdicts import (
    DaemonIdentityRecord,
    Governance,
    IdentitySource,
    ListenerFacts,
    Scope,
    SkipReason,
    Verdict,
    int_of,
    text_of,
)

if TYPE_CHECKING:
    from typing import Any

REDACTED = "<redacted>"


def _leaked_token(health: Mapping[str, Any] | None) -> str | None:
    """The raw token a health answer gives away; a redacted or empty one is no leak."""
    token = text_of(health, "token")
    return None if not token or token == REDACTED else token


@frozen
class _Legacy(Context):
    """A listener that is not lease-aware, as the rules of rows 16-25 see it."""

    facts: ListenerFacts
    scope: Scope
    health: Mapping[str, Any] | None
    shape: speckitty.SpawnShape | None
    health_legacy: bool  # its health answer has a legacy sync daemon's fields
    leaked: bool  # it gives its control token away on /api/health
    source: IdentitySource
    governance: Governance = Governance.LEGACY

    def fields(self) -> dict[str, Any]:
        h, shape = self.health, self.shape
        return {
            "daemon_family": "sync",
            "protocol": None if h is None else f"legacy/{int_of(h, 'protocol_version')}",
            "scope_id": shape.root_marker
            if shape is not None
            else text_of(h, "singleton_scope_id"),
            "token_leaked": self.leaked,
            "root_marker_name": speckitty.ROOT_MARKER,
        }

    def evidence(self, *lines: str) -> list[str]:
        version = text_of(self.health, "package_version") or "(version unknown)"
        return [f"legacy spec-kitty sync daemon {version}", *lines]

    @property
    def leak(self) -> list[str]:
        return ["leaks its control token on /api/health"] if self.leaked else []

    @property
    def singleton(self) -> bool:
        """Named by the legacy state file: by pid, or by port when the file has no pid."""
        s, f = self.scope, self.facts
        if f.pid is not None and f.pid == s.legacy_singleton_pid:
            return True
        return s.legacy_singleton_pid is None and f.port == s.legacy_singleton_port

    @property
    def marker(self) -> str | None:
        return None if self.shape is None else self.shape.root_marker

    @property
    def ties(self) -> bool:
        """Its argv names this port, and a token it leaks is the one its argv carries."""
        token = _leaked_token(self.health)
        shape = self.shape
        return (
            shape is not None
            and shape.port == self.facts.port
            and (token is None or token == shape.token)
        )


def _dashboard(c: _Legacy) -> bool:
    return c.health is not None and speckitty.looks_like_legacy_dashboard_health(c.health)


# Rows 16-25 of docs/protocol/classification.md, in order.
LEGACY_RULES: tuple[Rule[_Legacy], ...] = (
    Rule(
        "legacy-dashboard-fingerprint",
        _dashboard,
        NEVER,
        SkipReason.DASHBOARD_FAMILY,
        lambda c: ["legacy spec-kitty dashboard (project_path in health)", *c.leak],
        source=IdentitySource.HEALTH_SELF_REPORT,
        fields=lambda c: {"daemon_family": "dashboard", "token_leaked": c.leaked},
    ),
    Rule(
        "no-legacy-spawn-shape",
        lambda c: c.shape is None and not (c.health_legacy and c.facts.pid is None),
        NEVER,
        SkipReason.THIRD_PARTY,
        lambda c: ["no tenure marker and no legacy spawn shape"],
        governance=Governance.UNKNOWN,
        source=IdentitySource.NONE,
        fields=lambda c: {},
    ),
    Rule(
        "legacy-in-another-family-scope",
        lambda c: c.scope.family.name != "sync",
        NEVER,
        SkipReason.OTHER_FAMILY,
        lambda c: c.evidence(),
    ),
    Rule(
        "legacy-recorded-singleton",
        lambda c: c.singleton,
        NEVER,
        SkipReason.IS_RECORDED_SINGLETON,
        lambda c: c.evidence("named by the legacy state file"),
    ),
    Rule(
        "legacy-without-pid",
        lambda c: c.facts.pid is None,
        OPERATOR,
        SkipReason.MISSING_PID,
        lambda c: c.evidence("no pid owns the listener"),
    ),
    Rule(
        "legacy-without-root-marker",
        lambda c: c.marker is None,
        OPERATOR,
        SkipReason.PRE_MARKER,
        lambda c: c.evidence(f"no --{speckitty.ROOT_MARKER}= marker in argv"),
    ),
    Rule(
        "legacy-other-root",
        lambda c: c.marker != c.scope.legacy_root,
        OPERATOR,
        SkipReason.CROSS_ROOT,
        lambda c: c.evidence(f"root {c.marker} is not {c.scope.legacy_root}"),
    ),
    Rule(
        "legacy-no-health-answer",
        lambda c: not c.health_legacy,
        OPERATOR,
        SkipReason.UNRESPONSIVE,
        lambda c: c.evidence("accepts connections but gives no health answer"),
    ),
    Rule(
        "legacy-answer-does-not-tie-to-listener",
        lambda c: not c.ties,
        OPERATOR,
        SkipReason.PID_PORT_MISMATCH,
        lambda c: c.evidence(
            f"argv names port {None if c.shape is None else c.shape.port}; "
            "the answer does not tie to this listener"
        ),
    ),
    Rule(
        "legacy-same-root-stale",
        lambda c: True,
        SAFE,
        None,
        lambda c: c.evidence(
            "same legacy root, not the recorded singleton: stale holdout", *c.leak
        ),
        source=IdentitySource.HEALTH_SELF_REPORT,
    ),
)


def classify_legacy(
    facts: ListenerFacts, scope: Scope, health: Mapping[str, Any] | None, verdict: Verdict
) -> DaemonIdentityRecord:
    """The first of rows 16-25 that applies to a listener that is not lease-aware."""
    shape = speckitty.spawn_shape(facts.cmdline)
    ctx = _Legacy(
        facts=facts,
        scope=scope,
        health=health,
        shape=shape,
        health_legacy=health is not None and speckitty.looks_like_legacy_sync_health(health),
        leaked=_leaked_token(health) is not None,
        source=IdentitySource.CMDLINE_MARKER
        if shape is not None
        else IdentitySource.HEALTH_SELF_REPORT,
    )
    return decide(LEGACY_RULES, ctx, verdict)
