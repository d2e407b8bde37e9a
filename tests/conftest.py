"""Shared helpers for tenure's own tests."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
PY = sys.executable


def wait_for(
    predicate: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> object:
    """Poll until `predicate()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def pytest_terminal_summary(terminalreporter: object) -> None:
    """Print the boundary matrix (tests/test_boundary_matrix.py) when it ran."""
    from tests import test_boundary_matrix as matrix

    write = terminalreporter.write_line  # type: ignore[attr-defined]
    if not matrix.MATRIX:
        _chaos_summary(write)
        return
    entries = [e for e in matrix.ENTRY_POINTS if any(r["entry"] == e for r in matrix.MATRIX)]
    write("")
    write("boundary matrix: signals sent per listener (- = none); every cell checked")
    write(f"{'listener':<46} {'port':>5}  " + "  ".join(f"{e:<18}" for e in entries))
    for kind, port, _rule in matrix.LAYOUT:
        cells = []
        for e in entries:
            row = next((r for r in matrix.MATRIX if r["entry"] == e and r["port"] == port), None)
            cells.append(
                f"{'?' if row is None else row['signals'] + ('' if row['ok'] else ' FAIL'):<18}"
            )
        write(f"{kind:<46} {port:>5}  " + "  ".join(cells))
    _chaos_summary(write)


def _chaos_summary(write: object) -> None:
    from tests import test_chaos

    r = test_chaos.REPORT
    if r["schedules"] or r["process_schedules"]:
        write(  # type: ignore[operator]
            f"chaos: {r['schedules']} in-process schedules ({r['steps']} steps, {r['takeovers']} "
            f"acquisitions), {r['process_schedules']} process schedules, "
            f"{r['violations']} invariant violations"
        )
