"""The doctor's human layout: tables on wide terminals, short blocks at 80 columns and less.

Everything that came from outside is rendered as plain `Text` (never as Rich markup) and
stripped of control characters. Used by `auth doctor`, `--watch` and the demo.
"""

from __future__ import annotations

import re
import sys

from tenure.cli import cells
from tenure.cli.out import STYLES
from tenure.core.hints import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, TextIO

    from rich.console import Console

    from tenure.hygiene.doctor import DoctorReport


WIDE = 110  # at or above this many columns the doctor uses tables; below, one block per item


def render(report: DoctorReport, console: Console | None = None) -> None:
    """Human output on stdout, fitting the console's width (80 and 60 columns included).

    Everything that came from outside is rendered as plain `Text` (never as Rich markup) and
    stripped of control characters. Rich drops colour itself for NO_COLOR and non-terminals.
    """

    _render(report, console or stdout_console())


class _NoTrailingSpaces:
    """stdout off a terminal, without the spaces Rich leaves at line ends (table padding,
    wrapped lines): piped output is meant to be read and diffed."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_TRAILING.sub("\n", text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_TRAILING = re.compile(r"[ \t]+\n")


def stdout_console() -> Console:
    """A Rich console on stdout: as is on a terminal, without line-end padding elsewhere."""
    from rich.console import Console  # noqa: PLC0415

    # No highlighter: it would colour parts of versions (3.2.4) and URLs by guesswork.
    if sys.stdout.isatty():
        return Console(file=sys.stdout, highlight=False)
    return Console(file=_NoTrailingSpaces(sys.stdout), highlight=False)  # type: ignore[arg-type]


def _render(report: DoctorReport, console: Console) -> None:
    layout = _Tables(console) if console.width >= WIDE else _Blocks(console)
    layout.header(report)
    layout.leases(report)
    layout.daemons(report)
    if report.retirements:
        layout.retirements(report)
    if report.reset_result is not None:
        layout.reset(report)
    layout.findings(report)


class _Tables:
    """Wide terminals: one table per section."""

    def __init__(self, console: Console) -> None:
        self.c = console

    def _table(self, title: str, cols: tuple[str, ...]) -> Any:
        from rich.table import Table  # noqa: PLC0415

        table = Table(title=title, title_justify="left")
        for col in cols:
            table.add_column(col)
        return table

    def header(self, report: DoctorReport) -> None:
        self.c.print(
            cells.text(
                f"tenure auth doctor — root {report.root} — legacy root {report.legacy_root}"
            )
        )

    def leases(self, report: DoctorReport) -> None:
        table = self._table(
            "Leases",
            (
                "family",
                "state",
                "holder pid",
                "port",
                "version",
                "epoch",
                "lease",
                "superseded by",
                "answers",
            ),
        )
        for lease in report.leases:
            row = cells.lease_cells(lease)
            table.add_row(*(cells.text(x, styled=i == 1) for i, x in enumerate(row)))
        self.c.print(table)

    def daemons(self, report: DoctorReport) -> None:
        if not report.candidates():
            self.c.print(f"Daemons: {no_listener(report)}")
            return
        table = self._table(
            "Daemons in the families' port ranges",
            ("port", "family", "pid", "version", "governance", "class", "reason", "remediation"),
        )
        for _family, rec in report.candidates():
            row = cells.daemon_cells(rec)
            table.add_row(*(cells.text(x, styled=i == 5) for i, x in enumerate(row)))
        self.c.print(table)

    def retirements(self, report: DoctorReport) -> None:
        table = self._table(
            "Recent retirements", ("when", "family", "pid", "version", "epoch", "reason")
        )
        for t in reversed(report.retirements):
            table.add_row(
                cells.text(cells.when(t.get("at"))),
                *(cells.text(t.get(k)) for k in ("family", "pid", "version", "epoch", "reason")),
            )
        self.c.print(table)

    def reset(self, report: DoctorReport) -> None:
        table = self._table("Reset", ("outcome", "pid", "port", "detail"))
        for row in cells.reset_rows(report):
            table.add_row(*(cells.text(x) for x in row))
        self.c.print(table)
        self.c.print(cells.text(cells.reset_summary(report)))

    def findings(self, report: DoctorReport) -> None:
        if not report.findings:
            self.c.print("Findings: none — nothing needs attention")
            return
        table = self._table("Findings", ("severity", "id", "summary", "fix"))
        for f in report.findings:
            table.add_row(
                cells.text(f.severity, styled=True),
                cells.text(f.id),
                cells.text(f.summary),
                cells.text(f.remediation),
            )
        self.c.print(table)


class _Blocks:
    """Narrow terminals (80 columns and less): short lines, key fields first, wrapped at spaces."""

    def __init__(self, console: Console) -> None:
        self.c = console

    def _line(self, text: str, indent: int = 0, word: str = "") -> None:
        """One line; `word` (a state, class or severity) gives it its colour (`STYLES`)."""
        from rich.padding import Padding  # noqa: PLC0415

        shown = cells.text(text)
        shown.stylize(STYLES.get(word.split(" ", 1)[0], ""))
        # Wrapped lines keep their indent, so a block stays readable at 60 columns.
        self.c.print(Padding(shown, (0, 0, 0, indent), expand=False))

    def header(self, report: DoctorReport) -> None:
        self._line("tenure auth doctor")
        self._line(f"root         {report.root}", 2)
        self._line(f"legacy root  {report.legacy_root}", 2)

    def leases(self, report: DoctorReport) -> None:
        self.c.print()
        self._line("Leases")
        for lease in report.leases:
            fam, state, pid, port, version, epoch, timing, sup, answers = cells.lease_cells(lease)
            if lease.holder_pid is None:  # absent or unreadable: nothing else to tell
                self._line(f"{fam:<10} {state}", 2, state)
                continue
            self._line(f"{fam:<10} {state}  pid {pid}  port {port}  epoch {epoch}", 2, state)
            superseded = f"; superseded by {sup}" if sup != "-" else ""
            asked = f"; answers {answers}" if answers != "-" else ""
            self._line(f"version {version}; {timing}{asked}{superseded}", 13)

    def daemons(self, report: DoctorReport) -> None:
        self.c.print()
        if not report.candidates():
            self._line(f"Daemons: {no_listener(report)}")
            return
        self._line("Daemons in the families' port ranges")
        for _family, rec in report.candidates():
            port, family, pid, version, governance, cls, reason, fix = cells.daemon_cells(rec)
            self._line(f"{port}  {family:<9} {cls:<17} {reason}", 2, cls)
            self._line(f"pid {pid}, {governance}, version {version}", 9)
            if fix != "-":
                self._line(f"fix: {fix}", 9)

    def retirements(self, report: DoctorReport) -> None:
        self.c.print()
        self._line("Recent retirements")
        for t in reversed(report.retirements):
            self._line(
                f"{cells.when(t.get('at'))}  {t.get('family')} pid {t.get('pid')} "
                f"{t.get('version')} epoch {t.get('epoch')}: {t.get('reason')}",
                2,
            )

    def reset(self, report: DoctorReport) -> None:
        self.c.print()
        self._line("Reset")
        for outcome, pid, port, detail in cells.reset_rows(report):
            self._line(f"{outcome:<8} port {port} pid {pid}: {detail}", 2)
        self._line(cells.reset_summary(report), 2)

    def findings(self, report: DoctorReport) -> None:
        self.c.print()
        if not report.findings:
            self._line("Findings: none — nothing needs attention")
            return
        self._line("Findings")
        for f in report.findings:
            self._line(f"{f.severity}: {f.id}", 2, f.severity)
            self._line(f.summary, 4)
            self._line(f"fix: {f.remediation}", 4)


def no_listener(report: DoctorReport) -> str:
    """What an empty scan says, for however many ranges were scanned."""
    n = len(report.surveys)
    if n == 1:
        return f"no listener in the {report.surveys[0].family.name} port range"
    if n == 2:
        return "no listener in either family's port range"
    return f"no listener in any of the {n} families' port ranges"
