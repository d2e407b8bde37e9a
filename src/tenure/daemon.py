"""Daemon runtime: a governed loopback control plane (stdlib only; no typer, no rich).

Run as `python -m tenure.daemon --tenure-root=<root> --tenure-family=<family>`; the two argv
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

from tenure.errors import LeaseHeld, LeaseUnreadable, Retiring, RootError
from tenure.families import EXIT_HELD, EXIT_NO_PORT, EXIT_ROOT, Family, family_named
from tenure.governor import Governor, RetireReason
from tenure.httpc import LOOPBACK
from tenure.record import PROTOCOL
from tenure.store import ensure_root, token_path, write_token
from tenure.timing import Timing
from tenure.version import current_version

MAX_WORK_S = 30.0  # bound on the demo workload's in-flight slot
MAX_BODY = 4096

StartupHook = Callable[["Daemon"], None]


def _log(msg: str) -> None:
    # stdout/stderr of a detached daemon go to its log file in the root.
    print(
        f"{time.strftime('%Y-%m-%dT%H:%M:%S')} tenure[{os.getpid()}] {msg}",
        file=sys.stderr,
        flush=True,
    )


def bind_first_free(
    ports: range, handler: type[BaseHTTPRequestHandler]
) -> ThreadingHTTPServer | None:
    """Bind 127.0.0.1 on the first free port of `ports`."""
    for port in ports:
        try:
            server = ThreadingHTTPServer((LOOPBACK, port), handler)
        except OSError:
            continue
        server.daemon_threads = True
        return server
    return None


class Daemon:
    """One governed daemon: its server, governor, token and startup-reaper status."""

    def __init__(
        self, family: Family, root: Path, version: str, server: ThreadingHTTPServer
    ) -> None:
        self.family = family
        self.root = root
        self.version = version
        self.server = server
        self.port: int = server.server_address[1]
        self.token = secrets.token_urlsafe(32)
        self.reaper_status = "pending"
        self.governor = Governor(
            root,
            family.name,
            version,
            port=self.port,
            timing=Timing.from_env(family.idle_s),
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

        def _body(self) -> dict[str, Any]:
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
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
            status = daemon.authorized(self.headers.get("Authorization"))
            if status != 200:
                self._send(status, {"error": "unauthorized" if status == 401 else "forbidden"})
                return
            body = self._body()
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
    except RootError as exc:
        _log(str(exc))
        return EXIT_ROOT
    holder: list[Daemon] = []
    server = bind_first_free(family.ports(os.environ), make_handler(lambda: holder[0]))
    if server is None:
        _log(f"no free port in {family.ports(os.environ)}")
        return EXIT_NO_PORT
    daemon = Daemon(family, root, version, server)
    holder.append(daemon)
    gov = daemon.governor

    def waiting(decision: object) -> None:
        _log(f"waiting up to {acquire_wait:.1f}s for the lease: {decision}")

    try:
        record = gov.acquire(wait_s=acquire_wait, on_wait=waiting)
    except (LeaseHeld, LeaseUnreadable) as exc:
        _log(str(exc))
        server.server_close()
        return EXIT_HELD
    except RootError as exc:
        _log(str(exc))
        server.server_close()
        return EXIT_ROOT
    write_token(root, family.name, gov.me.pid, daemon.token)
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
        from tenure.engine import legacy_root, survey  # noqa: PLC0415  (off the start-up path)
        from tenure.reaper import reap  # noqa: PLC0415

        found = survey(family, daemon.root, legacy_root())
        result = reap(found.records, family, daemon.root, allow_operator=False)
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
    return run(
        family,
        Path(args.tenure_root),
        current_version(),
        args.acquire_wait,
        default_startup_hook(family),
    )


if __name__ == "__main__":
    sys.exit(main())
