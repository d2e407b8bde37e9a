"""Pure classification of listeners that are not lease-aware: legacy spec-kitty 3.2.x or not.

Rows 13-23 of docs/protocol/classification.md; `tenure.core.classify.classify` routes here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tenure.core import speckitty
from tenure.core.verdicts import (
    CleanupClass,
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

REDACTED = "<redacted>"


def _leaked_token(health: Mapping[str, Any] | None) -> str | None:
    """The raw token a health answer gives away; a redacted or empty one is no leak."""
    token = text_of(health, "token")
    return None if not token or token == REDACTED else token


def classify_legacy(
    facts: ListenerFacts, scope: Scope, health: Mapping[str, Any] | None, verdict: Verdict
) -> DaemonIdentityRecord:
    never, operator = CleanupClass.NEVER_TOUCH, CleanupClass.OPERATOR_REQUIRED
    legacy = Governance.LEGACY
    leaked = _leaked_token(health) is not None
    if health is not None and speckitty.looks_like_legacy_dashboard_health(health):
        evidence = ["legacy spec-kitty dashboard (project_path in health)"]
        if leaked:
            evidence.append("leaks its control token on /api/health")
        return verdict(
            never,
            SkipReason.DASHBOARD_FAMILY,
            legacy,
            IdentitySource.HEALTH_SELF_REPORT,
            evidence,
            daemon_family="dashboard",
            token_leaked=leaked,
        )
    shape = speckitty.spawn_shape(facts.cmdline)
    health_legacy = health is not None and speckitty.looks_like_legacy_sync_health(health)
    if shape is None and not (health_legacy and facts.pid is None):
        return verdict(
            never,
            SkipReason.THIRD_PARTY,
            Governance.UNKNOWN,
            IdentitySource.NONE,
            ["no tenure marker and no legacy spawn shape"],
        )
    source = (
        IdentitySource.CMDLINE_MARKER if shape is not None else IdentitySource.HEALTH_SELF_REPORT
    )
    extra: dict[str, Any] = {
        "daemon_family": "sync",
        "protocol": None if health is None else f"legacy/{int_of(health, 'protocol_version')}",
        "scope_id": shape.root_marker
        if shape is not None
        else text_of(health, "singleton_scope_id"),
        "token_leaked": leaked,
        "root_marker_name": speckitty.ROOT_MARKER,
    }
    version = text_of(health, "package_version")
    evidence = [f"legacy spec-kitty sync daemon {version or '(version unknown)'}"]
    if scope.family.name != "sync":
        return verdict(never, SkipReason.OTHER_FAMILY, legacy, source, evidence, **extra)
    by_pid = facts.pid is not None and facts.pid == scope.legacy_singleton_pid
    by_port = scope.legacy_singleton_pid is None and facts.port == scope.legacy_singleton_port
    if by_pid or by_port:
        return verdict(
            never,
            SkipReason.IS_RECORDED_SINGLETON,
            legacy,
            source,
            [*evidence, "named by the legacy state file"],
            **extra,
        )
    if facts.pid is None:
        return verdict(
            operator,
            SkipReason.MISSING_PID,
            legacy,
            source,
            [*evidence, "no pid owns the listener"],
            **extra,
        )
    assert shape is not None  # a pid with no shape was third_party above
    if shape.root_marker is None:
        return verdict(
            operator,
            SkipReason.PRE_MARKER,
            legacy,
            source,
            [*evidence, f"no --{speckitty.ROOT_MARKER}= marker in argv"],
            **extra,
        )
    if shape.root_marker != scope.legacy_root:
        return verdict(
            operator,
            SkipReason.CROSS_ROOT,
            legacy,
            source,
            [*evidence, f"root {shape.root_marker} is not {scope.legacy_root}"],
            **extra,
        )
    if health is None or not health_legacy:
        return verdict(
            operator,
            SkipReason.UNRESPONSIVE,
            legacy,
            source,
            [*evidence, "accepts connections but gives no health answer"],
            **extra,
        )
    health_token = _leaked_token(health)
    if shape.port != facts.port or (health_token is not None and health_token != shape.token):
        return verdict(
            operator,
            SkipReason.PID_PORT_MISMATCH,
            legacy,
            source,
            [*evidence, f"argv names port {shape.port}; the answer does not tie to this listener"],
            **extra,
        )
    evidence.append("same legacy root, not the recorded singleton: stale holdout")
    if leaked:
        evidence.append("leaks its control token on /api/health")
    return verdict(
        CleanupClass.SAFE_AUTO, None, legacy, IdentitySource.HEALTH_SELF_REPORT, evidence, **extra
    )
