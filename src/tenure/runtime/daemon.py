"""Daemon runtime: a governed loopback control plane (stdlib only; no typer, no rich).

Run as `python -m tenure.runtime.daemon --tenure-root=<root> --tenure-family=<family>`; the two argv
markers let a reaper attribute the process without trusting any file.
spec: docs/protocol/control.md
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tenure.adapters import config
from tenure.adapters.http import LOOPBACK
from tenure.adapters.store import ensure_root, log_path, open_regular, token_path, write_token
from tenure.core.families import (
    EXIT_CONFIG,
    EXIT_HELD,
    EXIT_NO_PORT,
    EXIT_ROOT,
    Family,
    family_named,
)
from tenure.core.record import PROTOCOL
from tenure.errors import ConfigError, LeaseHeld, LeaseUnreadable, Retiring, RootError
from tenure.runtime.holder import Governor, RetireReason
from tenure.version import checked_version

MAX_WORK_S = 30.0  # bound on the demo workload's in-flight slot
MAX_BODY = 4096
# spec: control.md#limits — a client can hold at most this many handler threads and
# descriptors, so no local user can starve the heartbeat of descriptors.
MAX_CONNECTIONS = 32
CLIENT_TIMEOUT_S = 5.0  # per socket read or write of one connection
LOG_MAX_BYTES = 1024 * 1024  # the log rotates to <family>.log.1 past this (one old file kept)

StartupHook = Callable[["Daemon"], None]


class DaemonLog:
    """The daemon's log: fd 1 and 2, rotated to `<log>.1` once it passes LOG_MAX_BYTES.

    Rotation re-points fd 1 and 2 at a fresh file, so stray writes follow. A daemon started
    with stderr elsewhere (a terminal, a pipe) is never rotated.
    """

    def __init__(self, path: Path | None, max_bytes: int = LOG_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def _ours(self) -> bool:
        if self.path is None:
            return False
        try:
            fd_st, path_st = os.fstat(2), os.lstat(self.path)
        except OSError:
            return False
        return (fd_st.st_dev, fd_st.st_ino) == (path_st.st_dev, path_st.st_ino)

    def _rotate_if_full(self) -> None:
        try:
            if os.fstat(2).st_size < self.max_bytes or not self._ours():
                return
            assert self.path is not None
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        except OSError:
            return  # a full disk must not stop the daemon from governing
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    def write(self, msg: str) -> None:
        """One timestamped line; control characters from outside are escaped."""
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')} tenure[{os.getpid()}] {msg}"
        safe = line.encode("unicode_escape").decode("ascii") if not line.isprintable() else line
        with self._lock:
            self._rotate_if_full()
            with contextlib.suppress(OSError):
                print(safe, file=sys.stderr, flush=True)


LOG = DaemonLog(None)


def _log(msg: str) -> None:
    LOG.write(msg)


class BoundedServer(ThreadingHTTPServer):
    """A threading server that serves at most MAX_CONNECTIONS clients at once.

    A connection past the limit is accepted and closed at once, so neither handler threads
    nor descriptors grow with what another local user opens.
    """

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.refused = 0
        super().__init__(addr, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # One line per client error, never a traceback: clients are not ours to debug.
        exc = sys.exc_info()[1]
        _log(f"client {client_address[0]}:{client_address[1]}: {type(exc).__name__}: {exc}")


def bind_first_free(ports: range, handler: type[BaseHTTPRequestHandler]) -> BoundedServer | None:
    """Bind 127.0.0.1 on the first free port of `ports`."""
    for port in ports:
        try:
            return BoundedServer((LOOPBACK, port), handler)
        except OSError:
            continue
    return None


class Daemon:
    """One governed daemon: its server, governor, token and startup-reaper status."""

    def __init__(self, family: Family, root: Path, version: str, server: BoundedServer) -> None:
        self.family = family
        self.root = root
        self.version = version
        self.server = server
        self.port: int = server.server_address[1]
        self.token = secrets.token_urlsafe(32)
        self.reaper_status = "pending"
        self.reaper_result: dict[str, Any] | None = None  # what the startup reaper did
        self.governor = Governor(
            root,
            family.name,
            version,
            port=self.port,
            timing=config.timing(family.idle_s),
            on_retire=self._on_retire,
        )

    def _on_retire(self, reason: RetireReason) -> None:
        _log(f"retiring: {reason.value}")
        threading.Thread(target=self.server.shutdown, daemon=True).start()

    def health(self) -> dict[str, Any]:
        """The /api/health document: memory only, never the token."""
        gov = self.governor
        holding = gov.holding()
        return {
            "status": "ok" if holding else "retiring",
            "protocol": PROTOCOL,
            "daemon_family": self.family.name,
            "package_version": self.version,
            "pid": gov.me.pid,
            "port": self.port,
            "root": str(self.root),
            "epoch": gov.epoch,
            "role": "holder" if holding else "retiring",
            "started_at": gov.me.started_at,
            "in_flight": gov.in_flight,
            "startup_reaper": self.reaper_status,
            "startup_reaper_result": self.reaper_result,
            "root_id": gov.root_id,
            "last_fault": gov.last_fault,
        }

    def authorized(self, header: str | None) -> int:
        """200 when `header` carries this daemon's token, 401 when absent, 403 when wrong."""
        if not header or not header.startswith("Bearer "):
            return 401
        given = header[len("Bearer ") :].encode()
        return 200 if hmac.compare_digest(given, self.token.encode()) else 403


def make_handler(get_daemon: Callable[[], Daemon]) -> type[BaseHTTPRequestHandler]:
    """A request handler bound to the daemon (looked up lazily: the server exists first)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "tenure"
        protocol_version = "HTTP/1.1"
        timeout = CLIENT_TIMEOUT_S  # a silent client is dropped, not waited for

        def log_message(self, format: str, *args: Any) -> None:
            """Silence per-request logging: it would grow the log and cost a write per probe."""

        def _send(self, status: int, doc: dict[str, Any]) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def _length(self) -> int | None:
            """The declared body length, or None after answering 400/413 (before any auth)."""
            raw = self.headers.get("Content-Length") or "0"
            length = int(raw) if raw.isdigit() else -1
            if length < 0:
                self._send(400, {"error": "bad Content-Length"})
                return None
            if length > MAX_BODY:
                self._send(413, {"error": f"body larger than {MAX_BODY} bytes"})
                return None
            return length

        def _body(self, length: int) -> dict[str, Any]:
            try:
                doc = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return {}
            return doc if isinstance(doc, dict) else {}

        def do_GET(self) -> None:
            if self.path == "/api/health":
                self._send(200, get_daemon().health())
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            daemon = get_daemon()
            if self.path not in ("/api/retire", "/api/shutdown", "/api/work"):
                self._send(404, {"error": "not found"})
                return
            length = self._length()
            if length is None:
                return
            status = daemon.authorized(self.headers.get("Authorization"))
            if status != 200:
                self._send(status, {"error": "unauthorized" if status == 401 else "forbidden"})
                return
            body = self._body(length)
            gov = daemon.governor
            if self.path == "/api/retire":
                reason = (
                    RetireReason.SUPERSEDED
                    if body.get("reason") == "superseded"
                    else RetireReason.REQUESTED
                )
                gov.retire(reason)
                self._send(202, {"status": "retiring", "reason": reason.value})
            elif self.path == "/api/shutdown":
                gov.retire(RetireReason.SHUTDOWN, drain=False)
                self._send(200, {"status": "stopping"})
            else:
                self._work(gov, body)

        def _work(self, gov: Governor, body: dict[str, Any]) -> None:
            seconds = body.get("seconds", 1.0)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                self._send(400, {"error": "seconds must be a number"})
                return
            seconds = min(max(float(seconds), 0.0), MAX_WORK_S)
            try:
                with gov.work():
                    time.sleep(seconds)
            except Retiring:
                self._send(503, {"error": "retiring"})
                return
            self._send(200, {"status": "done", "seconds": seconds})

    return Handler


def run(
    family: Family,
    root: Path,
    version: str,
    acquire_wait: float = 0.0,
    startup_hook: StartupHook | None = None,
) -> int:
    """Serve as the family's holder until retirement; returns the process exit code."""
    try:
        root = ensure_root(root)
        ports = config.ports(family)
        config.timing(family.idle_s)  # refuse bad timing before binding anything
    except RootError as exc:
        _log(str(exc))
        return EXIT_ROOT
    except ConfigError as exc:
        _log(str(exc))
        return EXIT_CONFIG
    LOG.path = log_path(root, family.name)
    holder: list[Daemon] = []
    server = bind_first_free(ports, make_handler(lambda: holder[0]))
    if server is None:
        _log(f"no free port in {ports.start}-{ports.stop - 1}")
        return EXIT_NO_PORT
    daemon = Daemon(family, root, version, server)
    holder.append(daemon)
    gov = daemon.governor

    def waiting(decision: object) -> None:
        _log(f"waiting up to {acquire_wait:.1f}s for the lease: {decision}")

    try:
        record = gov.acquire(wait_s=acquire_wait, on_wait=waiting)
        write_token(root, family.name, gov.me.pid, daemon.token)
    except (LeaseHeld, LeaseUnreadable) as exc:
        _log(str(exc))
        server.server_close()
        return EXIT_HELD
    except (RootError, OSError) as exc:
        _log(f"cannot take the lease: {exc}")
        server.server_close()
        if gov.epoch:
            gov.retire(RetireReason.FAULT, drain=False)
            gov.wait_retired(gov.timing.drain_s + 5)
        return EXIT_ROOT
    gov.start()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: gov.retire(RetireReason.SHUTDOWN, drain=False))
    if startup_hook is not None:
        threading.Thread(target=_run_hook, args=(startup_hook, daemon), daemon=True).start()
    else:
        daemon.reaper_status = "none"
    _log(
        f"holding {family.name} lease epoch {record.epoch} "
        f"on {LOOPBACK}:{daemon.port} as version {version}"
    )
    server.serve_forever(poll_interval=0.05)
    reason = gov.wait_retired(timeout=gov.timing.drain_s + 5)
    server.server_close()
    with contextlib.suppress(OSError):
        token_path(root, family.name, gov.me.pid).unlink()
    _log(f"exited: {reason.value if reason else 'unknown'}")
    return 0


def _run_hook(hook: StartupHook, daemon: Daemon) -> None:
    try:
        hook(daemon)
    except Exception as exc:
        daemon.reaper_status = "failed"
        _log(f"startup reaper failed: {type(exc).__name__}: {exc}")
        return
    daemon.reaper_status = "done"


def default_startup_hook(family: Family) -> StartupHook:
    """The startup reaper: clean `safe_auto` daemons of this family only; spawn nothing."""

    def hook(daemon: Daemon) -> None:
        from tenure.adapters.reaper import reap  # noqa: PLC0415
        from tenure.runtime.survey import legacy_root, survey  # noqa: PLC0415  (off the start-up path)

        found = survey(family, daemon.root, legacy_root())
        result = reap(found.records, family, daemon.root, allow_operator=False)
        daemon.reaper_result = result.to_json()
        _log(
            f"startup reaper for {family.name}: {len(found.records)} listeners, "
            f"swept {len(result.swept)}, skipped {len(result.skipped)}, failed {len(result.failed)}"
        )

    return hook


def main(argv: list[str] | None = None) -> int:
    """Entry point of the daemon process."""
    parser = argparse.ArgumentParser(prog="tenure-daemon")
    parser.add_argument("--tenure-root", required=True)
    parser.add_argument("--tenure-family", required=True)
    parser.add_argument("--acquire-wait", type=float, default=0.0)
    args = parser.parse_args(argv)
    family = family_named(args.tenure_family)
    try:
        version = checked_version()
    except ConfigError as exc:
        _log(str(exc))
        return EXIT_CONFIG
    return run(
        family,
        Path(args.tenure_root),
        version,
        args.acquire_wait,
        default_startup_hook(family),
    )


if __name__ == "__main__":
    sys.exit(main())
