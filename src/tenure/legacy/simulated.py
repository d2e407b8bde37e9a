"""Stand-ins for pre-lease spec-kitty 3.2.x daemons and other listeners (tests, demo, benchmarks).

The legacy stand-in has the real process shape (`python -c "<script calling
run_sync_daemon(<port>, '<token>')>" --spec-kitty-daemon-root=<root>
--spec-kitty-daemon-exec=<py>`),
answers GET /api/health with the per-version fields from the guide (including the leaked raw
token), honours POST /api/shutdown with its token, and shuts down cleanly on SIGTERM.
Modes (env STANDIN_MODE): normal, wedged (accepts TCP, never answers), ignore_term,
exec_on_term (on SIGTERM it execs another program under the same pid),
listen_elsewhere=<port> (argv names one port, it listens on another).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tenure.adapters.ports import open_ports
from tenure.adapters.waiting import wait_until
from tenure.core.hints import Protocol


class Spawner(Protocol):
    """Anything that starts a process and remembers it for cleanup (see tenure.testing)."""

    def spawn(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start `argv`."""
        ...


def _wait(predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    if wait_until(predicate, timeout) is None:
        raise TimeoutError(f"timed out waiting for {what}")


SCRIPT = r"""
import json, os, signal, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

def run_sync_daemon(port, token):
    version = os.environ.get("SPEC_KITTY_CLI_VERSION", "3.2.4")
    mode = os.environ.get("STANDIN_MODE", "normal")
    marker = "--spec-kitty-daemon-root="
    root = next((a[len(marker):] for a in sys.argv if a.startswith(marker)), None)
    listen_port = int(mode.split("=", 1)[1]) if mode.startswith("listen_elsewhere=") else port
    if mode == "wedged":
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", listen_port)); s.listen(64)
        while True:
            time.sleep(3600)
    home = root or os.path.expanduser("~/.spec-kitty")
    owner_file = os.path.join(home, "sync", "daemon", "owner.json")
    if version == "3.2.4" or not os.path.exists(owner_file):
        os.makedirs(os.path.dirname(owner_file), exist_ok=True)
        with open(owner_file, "w") as fh:
            json.dump({"pid": os.getpid(), "port": port, "package_version": version}, fh)

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass
        def _send(self, code, doc):
            body = json.dumps(doc).encode()
            self.send_response(code); self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
        def do_GET(self):
            if self.path != "/api/health":
                return self._send(404, {"error": "not found"})
            doc = {"status": "ok", "protocol_version": 1, "package_version": version,
                   "token": token,
                   "sync": {"running": True, "last_sync": None, "consecutive_failures": 0},
                   "websocket_status": "disconnected"}
            try:
                with open(owner_file) as fh:
                    doc["owner"] = json.load(fh)
            except (OSError, ValueError):
                pass
            if version == "3.2.4":
                doc["daemon_family"] = "sync"
                doc["singleton_scope_id"] = root
            self._send(200, doc)
        def do_POST(self):
            if self.path != "/api/shutdown":
                return self._send(404, {"error": "not found"})
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if body.get("token") != token:
                return self._send(403, {"error": "forbidden"})
            self._send(200, {"status": "stopping"})
            threading.Thread(target=server.shutdown).start()

    server = ThreadingHTTPServer(("127.0.0.1", listen_port), H)
    if mode == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif mode == "exec_on_term":
        # Becomes another program under the same pid: its identity changes mid-escalation.
        loop = "import time\nwhile True: time.sleep(3600)"
        become = lambda *a: os.execv(sys.executable, [sys.executable, "-c", loop])
        signal.signal(signal.SIGTERM, become)
    else:
        signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
    server.serve_forever(poll_interval=0.05)

run_sync_daemon(__PORT__, '__TOKEN__')
"""


def spawn_legacy(
    reg: Spawner,
    port: int,
    legacy_root: Path,
    version: str = "3.2.4",
    *,
    mode: str = "normal",
    marker: bool = True,
    python: str = sys.executable,
    user: int | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a legacy sync daemon stand-in and wait until its port accepts connections."""
    token = secrets.token_urlsafe(24)
    script = SCRIPT.replace("__PORT__", str(port)).replace("__TOKEN__", token)
    argv = [python, "-c", script]
    if marker:
        argv.append(f"--spec-kitty-daemon-root={legacy_root.resolve()}")
    argv.append(f"--spec-kitty-daemon-exec={python}")
    env = {**os.environ, "SPEC_KITTY_CLI_VERSION": version, "STANDIN_MODE": mode}
    extra: dict[str, object] = {} if user is None else {"user": user, "group": user, "cwd": "/"}
    proc = reg.spawn(
        argv,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **extra,
    )
    listen = int(mode.split("=", 1)[1]) if mode.startswith("listen_elsewhere=") else port
    _wait(lambda: open_ports([listen]) or proc.poll() is not None, f"legacy stand-in on {listen}")
    if proc.poll() is not None:
        raise RuntimeError(f"legacy stand-in on {listen} exited with {proc.returncode}")
    return proc, token


def spawn_singleton(
    reg: Spawner, port: int, legacy_root: Path, version: str = "3.2.4"
) -> subprocess.Popen[bytes]:
    """A legacy daemon named by the legacy root's state file: the recorded singleton."""
    proc, token = spawn_legacy(reg, port, legacy_root, version)
    write_state_file(legacy_root, port, token, proc.pid)
    return proc


def write_state_file(legacy_root: Path, port: int, token: str | None, pid: int | None) -> None:
    """The legacy root's `sync-daemon` state file naming the recorded singleton."""
    legacy_root.mkdir(parents=True, exist_ok=True)
    lines = [f"http://127.0.0.1:{port}", str(port)]
    if token is not None:
        lines.append(token)
    if pid is not None:
        lines.append(str(pid))
    (legacy_root / "sync-daemon").write_text("\n".join(lines) + "\n")


OTHER_SCRIPTS = {
    # A third-party HTTP server: answers, but not with a daemon's health.
    "third_party_http": (
        "import http.server,sys\n"
        "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])),"
        " http.server.SimpleHTTPRequestHandler).serve_forever()\n"
    ),
    # A raw TCP listener that never speaks.
    "raw_tcp": (
        "import socket,sys,time\ns=socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind(('127.0.0.1', int(sys.argv[1])))\n"
        "s.listen(8)\nwhile True: time.sleep(3600)\n"
    ),
    # A legacy spec-kitty dashboard: health with project_path and status.
    "legacy_dashboard": (
        "import http.server,json,sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def log_message(self,*a): pass\n"
        "    def do_GET(self):\n"
        "        b=json.dumps({'status':'running','project_path':'/home/u/proj'}).encode()\n"
        "        self.send_response(200); self.send_header('Content-Length',str(len(b)));"
        " self.end_headers(); self.wfile.write(b)\n"
        "http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n"
    ),
}


def spawn_other(reg: Spawner, kind: str, port: int) -> subprocess.Popen[bytes]:
    """Start a non-legacy listener of `kind` on `port` and wait until it accepts."""
    proc = reg.spawn(
        [sys.executable, "-c", OTHER_SCRIPTS[kind], str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tempfile.gettempdir(),
    )
    _wait(lambda: open_ports([port]) or proc.poll() is not None, f"{kind} on {port}")
    if proc.poll() is not None:
        raise RuntimeError(f"{kind} on {port} exited with {proc.returncode}")
    return proc
