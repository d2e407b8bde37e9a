"""`tenure.hold(..., listen=True)`: the daemon's listening socket, handed over by the version it
supersedes (or bound here), and handed on to the version that supersedes it, so no connection
is refused across an upgrade. spec: docs/protocol/control.md#socket-handover
"""

from __future__ import annotations

import contextlib
import threading

from tenure.adapters import handover
from tenure.adapters.procinfo import holder_liveness
from tenure.core.handover import is_newer
from tenure.core.hints import TYPE_CHECKING
from tenure.core.lease import SEEN
from tenure.core.lifecycle import RetireReason
from tenure.core.record import LeaseRecord, LeaseState
from tenure.core.timing import HANDOVER_WAIT_S
from tenure.errors import ConfigError
from tenure.holder.governor import Governor

if TYPE_CHECKING:
    import socket


class Listening:
    """Made before the lease is taken (a successor listens for the socket before it asks the
    holder to leave); `open` once held; hands the socket on when superseded."""

    def __init__(self, governor: Governor) -> None:
        if governor.me.port is None:
            raise ConfigError(f"{governor.family}: listen=True needs a port (port= or TENURE_PORT)")
        self.governor = governor
        self.receiver: handover.Receiver | None = None
        self._keep: socket.socket | None = None  # our own descriptor, for the handover
        rec = governor.store.read()
        if (
            handover.supported()
            and isinstance(rec, LeaseRecord)
            and rec.state is LeaseState.HELD
            and is_newer(governor.version, rec.holder.version)
            and holder_liveness(rec) in SEEN
        ):
            self.receiver = handover.Receiver(governor.root, governor.store.key, rec.holder.pid)

    def open(self) -> socket.socket:
        """The listening socket: the one handed to us on our port, else a new one."""
        gov = self.governor
        port = gov.me.port
        assert port is not None  # checked in __init__
        got = None if self.receiver is None else self.receiver.take()
        if got is not None and handover.port_of(got) != port:
            got.close()  # handed for another port than ours: not what we serve
            got = None
        sock = got or handover.listen_on(port)
        self._keep = sock.dup()
        gate = threading.Event()
        gov.release_after(gate)  # the lease goes once the socket was offered on (or not)
        gov.on_retiring.append(lambda reason: self._retiring(reason, gate))
        return sock

    def _retiring(self, reason: RetireReason, gate: threading.Event) -> None:
        threading.Thread(
            target=self._hand_on, args=(reason, gate), name="tenure-handover", daemon=True
        ).start()

    def _hand_on(self, reason: RetireReason, gate: threading.Event) -> None:
        keep, self._keep = self._keep, None
        try:
            if keep is None or reason is not RetireReason.SUPERSEDED:
                return
            gov = self.governor
            with contextlib.suppress(OSError):
                rec = gov.store.read()
                if (
                    isinstance(rec, LeaseRecord)
                    and rec.epoch == gov.epoch
                    and rec.superseded_by is not None
                ):
                    to = rec.superseded_by.pid
                    handover.offer(gov.root, gov.store.key, to, keep, HANDOVER_WAIT_S)
        finally:
            if keep is not None:
                keep.close()
            gate.set()

    def close(self) -> None:
        """Give up (the lease was not taken): stop listening for a socket."""
        if self.receiver is not None:
            got = self.receiver.take()
            if got is not None:
                got.close()
