"""`tenure auth doctor --watch`: a live view sized to the terminal — findings and what just
happened first, one line per lease and per listener, renewals counted rather than listed — and,
through a pipe, one line per event as it happens (as `kubectl get -w` does)."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable

from tenure.cli import cells
from tenure.cli.out import clean
from tenure.core.hints import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from tenure.core.verdicts import DaemonIdentityRecord
    from tenure.hygiene.doctor import DoctorReport
    from tenure.protocol.report import LeaseReport

REFRESH_S = 1.0
EVENTS_KEPT = 50
RENEWED = "renewed"  # the kind of event that is counted, not listed


def events_between(old: DoctorReport | None, new: DoctorReport) -> list[tuple[str, str]]:
    """What changed from one look to the next, as (kind, words): renewals, new holders,
    supersessions, releases, retirements, listeners that came or went."""
    if old is None:
        return []
    out: list[tuple[str, str]] = []
    before = {(lease.family, lease.scope): lease for lease in old.leases}
    for lease in new.leases:
        prev = before.get((lease.family, lease.scope))
        fam = lease.family if lease.scope is None else f"{lease.family} ({lease.scope})"
        if prev is None or lease.epoch is None:
            continue
        if prev.epoch != lease.epoch:
            out.append(
                (
                    "holder",
                    f"{fam}: new holder pid {lease.holder_pid} (epoch {lease.epoch}, "
                    f"version {lease.version})",
                )
            )
        elif (lease.seq or 0) > (prev.seq or 0):
            out.append((RENEWED, fam))
        if lease.superseded_by and not prev.superseded_by:
            out.append(
                (
                    "superseded",
                    f"{fam}: pid {lease.holder_pid} superseded by version "
                    f"{lease.superseded_by.get('version')}",
                )
            )
        if lease.state == "released" and prev.state != "released":
            out.append(
                ("released", f"{fam}: released by pid {lease.holder_pid} (epoch {lease.epoch})")
            )
    seen = {(t.get("pid"), t.get("epoch"), t.get("reason")) for t in old.retirements}
    for t in new.retirements:
        if (t.get("pid"), t.get("epoch"), t.get("reason")) not in seen:
            out.append(
                (
                    "retired",
                    f"{t.get('family')}: pid {t.get('pid')} ({t.get('version')}) retired: "
                    f"{t.get('reason')}",
                )
            )
    old_ports = {r.port: r for _, r in old.candidates()}
    new_ports = {r.port: r for _, r in new.candidates()}
    for port in sorted(new_ports.keys() - old_ports.keys()):
        rec = new_ports[port]
        out.append(
            ("listener", f"port {port}: listener appeared (pid {rec.pid}, {rec.cleanup_class})")
        )
    for port in sorted(old_ports.keys() - new_ports.keys()):
        out.append(("listener", f"port {port}: listener gone (pid {old_ports[port].pid})"))
    return [(kind, clean(words)) for kind, words in out]


def _fit(line: str, width: int) -> str:
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


def _section(title: str, lines: list[str], room: int) -> list[str]:
    """The title and as many lines as `room` allows (title included), the rest as `+N more`."""
    if room <= 0:
        return []
    if len(lines) + 1 <= room:
        return [title, *lines]
    shown = max(room - 2, 0)
    return [title, *lines[:shown], f"  +{len(lines) - shown} more"][:room]


class Watch:
    """Builds one frame per look; remembers the previous look, the recent events and how many
    renewals each lease made."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console
        self.previous: DoctorReport | None = None
        self.events: deque[str] = deque(maxlen=EVENTS_KEPT)
        self.renewals: Counter[str] = Counter()

    def look(self, report: DoctorReport) -> list[str]:
        """Take in one look; the new events (renewals only counted), each stamped."""
        stamp = time.strftime("%H:%M:%S", time.localtime(report.generated_at))
        new = []
        for kind, words in events_between(self.previous, report):
            if kind == RENEWED:
                self.renewals[words] += 1
            else:
                new.append(f"{stamp}  {words}")
        self.events.extend(new)
        self.previous = report
        return new

    def lines(self, report: DoctorReport, width: int, height: int) -> list[str]:
        """The frame as at most `height` lines of at most `width` characters: nothing is cut
        without a `+N more`."""
        stamp = time.strftime("%H:%M:%S", time.localtime(report.generated_at))
        head = [
            f"watching — refreshed {stamp}, every {REFRESH_S:.0f}s; Ctrl-C leaves",
            f"tenure auth doctor: root {cells.home_short(str(report.root))}",
        ]
        # One line each, what to do first: the doctor without --watch says the rest.
        findings = [f"  {f.severity} {f.id} — {f.remediation}" for f in report.findings]
        happened = list(self.events)
        if self.renewals:
            counted = ", ".join(f"{k} x{n}" for k, n in sorted(self.renewals.items()))
            happened.append(f"  renewals since the watch began: {counted}")
        leases = [_lease_line(lease) for lease in report.leases]
        daemons = [_daemon_line(rec) for _fam, rec in report.candidates()]
        room = height - len(head)
        # Findings and what happened come first, then the leases, then the listeners (the
        # doctor without --watch shows them whole); a section cut short says `+N more`, and
        # the listeners keep at least their count.
        out = list(head)
        if findings:
            found = _section(f"Findings ({len(findings)})", findings, max(room // 3, 2))
        else:
            found = ["Findings: none"]
        recent = happened[-max(room // 4, 1) :]
        events = _section("What happened", recent, len(recent) + 1) if happened else []
        events = events or ["What happened: no changes yet"]
        out += found + events
        room -= len(found) + len(events)
        keep = 1 if daemons else 0
        out += _section(f"Leases ({len(leases)})", leases, min(room - keep, len(leases) + 1))
        room = height - len(out)
        listeners = f"Listeners in the families' ranges ({len(daemons)})"
        if daemons and room == 1:
            out.append(f"{listeners}: no room here (tenure auth doctor lists them)")
        elif daemons:
            out += _section(listeners, daemons, room)
        elif room > 0:
            out.append("Listeners in the families' ranges: none")
        return [_fit(line, width) for line in out[:height]]

    def frame(self, report: DoctorReport) -> RenderableType:
        """The renderable for this look, sized to the console."""
        from rich.text import Text  # noqa: PLC0415

        assert self.console is not None
        self.look(report)
        # One line short of the terminal: a frame as tall as the screen would scroll it.
        height = max(self.console.height - 1, 4)
        return Text("\n".join(self.lines(report, self.console.width, height)))


def _lease_line(lease: LeaseReport) -> str:
    name, state, pid, port, version, epoch, timing, sup, _answers = cells.lease_cells(lease)
    if pid == "-":
        return f"  {name:<10} {state}"
    said = f"  {name:<10} {state:<5} pid {pid} port {port} version {version} epoch {epoch}"
    if sup != "-":
        said += f", superseded by {sup}"
    # The whole timing is in the doctor; here only when it runs out.
    return f"{said}, {timing.rsplit(', ', 1)[-1]}" if timing != "-" else said


def _daemon_line(rec: DaemonIdentityRecord) -> str:
    port, fam, pid, version, _gov, cls, reason, _fix = cells.daemon_cells(rec)
    why = "" if reason == "-" else f" ({reason})"
    return f"  {port:>5} {fam:<10} pid {pid:<7} {version:<7} {cls}{why}"


def run(gather: Callable[[], DoctorReport], console: Console) -> None:
    """Refresh the view about once a second until Ctrl-C; the last frame stays on screen.
    Off a terminal (a pipe), one line per event as it happens instead."""
    if not console.is_terminal:
        _follow(gather)
        return
    from rich.live import Live  # noqa: PLC0415

    watch = Watch(console)
    with Live(
        watch.frame(gather()),
        console=console,
        auto_refresh=False,
        transient=False,  # Ctrl-C leaves the last frame where it was
        vertical_overflow="crop",
    ) as live:
        try:
            while True:
                time.sleep(REFRESH_S)
                live.update(watch.frame(gather()), refresh=True)
        except KeyboardInterrupt:
            return


def _follow(gather: Callable[[], DoctorReport]) -> None:
    """Through a pipe: the leases and findings as they are, then each event as it happens."""
    watch = Watch()
    first = gather()
    watch.look(first)
    stamp = time.strftime("%H:%M:%S", time.localtime(first.generated_at))
    for lease in first.leases:
        print(f"{stamp}  {_lease_line(lease).strip()}", flush=True)
    for f in first.findings:
        print(f"{stamp}  {f.severity} {f.id}: {f.summary}", flush=True)
    try:
        while True:
            time.sleep(REFRESH_S)
            for line in watch.look(gather()):
                print(line, flush=True)
    except KeyboardInterrupt:
        return
    except BrokenPipeError:
        # The reader left (`| head`): nothing more to say, and no traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
