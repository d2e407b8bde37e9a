"""Reading `--name=value` markers from a process's argv (pure)."""

from __future__ import annotations

from collections.abc import Sequence


def argv_option(cmdline: Sequence[str], name: str) -> str | None:
    """The value of the first `--name=value` in argv, or None.

    The classifier and the reaper both read markers through this one function, so the identity
    a verdict was based on and the identity re-checked before a signal are read the same way.
    """
    prefix = f"--{name}="
    for arg in cmdline:
        if arg.startswith(prefix):
            return arg[len(prefix) :]
    return None
