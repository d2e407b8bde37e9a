"""Progress notes (pure): what drivers call to tell a person what they wait for or did."""

from __future__ import annotations

from collections.abc import Callable

Notify = Callable[[str], None]


def quiet(_: str) -> None:
    """A `Notify` that says nothing (library callers that want no output)."""
