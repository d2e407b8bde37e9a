"""`tenure auth doctor --watch`: a live view of leases and listeners, with what just happened."""

from __future__ import annotations

import io
import time
from collections import deque
from collections.abc import Callable

from tenure.cli.out import clean
from tenure.core.hints import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from tenure.hygiene.doctor import DoctorReport

REFRESH_S = 1.0
EVENTS_SHOWN = 12


def events_between(old: DoctorReport | None, new: DoctorReport) -> list[str]:
    """What changed from one look to the next: renewals, new holders, supersessions,
    releases, retirements, listeners that came or went."""
    if old is None:
        return []
    out: list[str] = []
    before = {lease.family: lease for lease in old.leases}
    for lease in new.leases:
        prev = before.get(lease.family)
        fam = lease.family
        if prev is None or lease.epoch is None:
            continue
        if prev.epoch != lease.epoch:
            out.append(
                f"{fam}: new holder pid {lease.holder_pid} (epoch {lease.epoch}, "
                f"version {lease.version})"
            )
        elif (lease.seq or 0) > (prev.seq or 0):
            out.append(
                f"{fam}: renewed by pid {lease.holder_pid} (epoch {lease.epoch}, seq {lease.seq})"
            )
        if lease.superseded_by and not prev.superseded_by:
            out.append(
                f"{fam}: pid {lease.holder_pid} superseded by version "
                f"{lease.superseded_by.get('version')}"
            )
        if lease.state == "released" and prev.state != "released":
            out.append(f"{fam}: released by pid {lease.holder_pid} (epoch {lease.epoch})")
    seen = {(t.get("pid"), t.get("epoch"), t.get("reason")) for t in old.retirements}
    for t in new.retirements:
        if (t.get("pid"), t.get("epoch"), t.get("reason")) not in seen:
            out.append(
                f"{t.get('family')}: pid {t.get('pid')} ({t.get('version')}) retired: "
                f"{t.get('reason')}"
            )
    old_ports = {r.port: r for _, r in old.candidates()}
    new_ports = {r.port: r for _, r in new.candidates()}
    for port in sorted(new_ports.keys() - old_ports.keys()):
        rec = new_ports[port]
        out.append(f"port {port}: listener appeared (pid {rec.pid}, {rec.cleanup_class.value})")
    for port in sorted(old_ports.keys() - new_ports.keys()):
        out.append(f"port {port}: listener gone (pid {old_ports[port].pid})")
    return [clean(e) for e in out]


class Watch:
    """Builds one frame per look; remembers the previous look and the recent events."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.previous: DoctorReport | None = None
        self.events: deque[str] = deque(maxlen=EVENTS_SHOWN)

    def frame(self, report: DoctorReport) -> RenderableType:
        """The renderable for this look (the doctor's layout plus the event log)."""
        from rich.console import Console, Group  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        from tenure.cli.render import render  # noqa: PLC0415

        stamp = time.strftime("%H:%M:%S", time.localtime(report.generated_at))
        for event in events_between(self.previous, report):
            self.events.append(f"{stamp}  {event}")
        self.previous = report
        # Rendered on a console of its own: captured on the live console, each frame would
        # also capture the live region (the previous frame) through Live's render hook.
        scratch = Console(
            file=io.StringIO(),
            width=self.console.width,
            color_system="truecolor" if self.console.color_system else None,
            force_terminal=self.console.is_terminal,
            no_color=self.console.no_color,
        )
        render(report, scratch)
        body = Text.from_ansi(scratch.file.getvalue())  # type: ignore[attr-defined]
        log = Text("\n".join(self.events) if self.events else "(no changes yet)")
        title = Text(f"watching — refreshed {stamp}, every {REFRESH_S:.0f}s; Ctrl-C leaves")
        return Group(title, body, Text("What happened"), log)


def run(gather: Callable[[], DoctorReport], console: Console) -> None:
    """Refresh the view about once a second until Ctrl-C."""
    from rich.live import Live  # noqa: PLC0415

    watch = Watch(console)
    # The alternate screen, cropped to the terminal: each frame replaces the last whole, even
    # when it is taller than the terminal.
    with Live(
        watch.frame(gather()),
        console=console,
        auto_refresh=False,
        screen=console.is_terminal,  # off a terminal (a pipe): the last frame, printed once
        vertical_overflow="crop",
    ) as live:
        try:
            while True:
                time.sleep(REFRESH_S)
                live.update(watch.frame(gather()), refresh=True)
        except KeyboardInterrupt:
            return
