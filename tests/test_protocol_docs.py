"""The normative docs and the code agree."""

from __future__ import annotations

import re

from tenure.governor import RetireReason
from tenure.record import PROTOCOL
from tests.conftest import HERE

DOCS = HERE.parent / "docs" / "protocol"


def test_protocol_version_matches_index() -> None:
    """docs/protocol/index.md names the same protocol version as the code."""
    match = re.search(r"\*\*Protocol version:\*\* `([^`]+)`", (DOCS / "index.md").read_text())
    assert match is not None
    assert match.group(1) == PROTOCOL


def test_every_retirement_reason_is_documented() -> None:
    """lease.md lists every RetireReason value."""
    text = (DOCS / "lease.md").read_text()
    missing = [r.value for r in RetireReason if f"`{r.value}`" not in text]
    assert missing == []
