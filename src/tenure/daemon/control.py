"""The reference daemons' loopback control plane: what each endpoint answers.

The transport (a bounded loopback server, one deadline per request) is adapters/server.py.

spec: docs/protocol/control.md#endpoints, control.md#limits
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tenure.adapters.http import LOOPBACK
from tenure.adapters.server import MAX_BODY, Answer, Request, Route, content_length
from tenure.core.health import AFTER_REAPER_PATH
from tenure.core.hints import TYPE_CHECKING, Protocol
from tenure.core.timing import REAPER_REPORT_WAIT_S
from tenure.errors import Retiring
from tenure.holder.governor import Governor, RetireReason

if TYPE_CHECKING:
    import threading
    from typing import Any

MAX_WORK_S = 30.0  # bound on the demo workload's in-flight slot


class Controlled(Protocol):
    """What the control plane serves: a health document, a token check, a governor."""

    governor: Governor
    reaper_finished: threading.Event  # set once the startup reaper is no longer pending

    def health(self) -> dict[str, Any]:
        """The /api/health document."""
        ...

    def authorized(self, header: str | None) -> int:
        """200, 401 or 403 for an Authorization header."""
        ...


def make_route(get_daemon: Callable[[], Controlled]) -> Route:
    """The control plane's answers, bound to the daemon (looked up lazily: the server exists
    before the daemon that serves on it)."""

    def route(req: Request) -> Answer:
        refused = _foreign(req)
        if refused is not None:
            return refused
        if req.method == "GET":
            if req.path == "/api/health":
                return 200, get_daemon().health()
            if req.path == AFTER_REAPER_PATH:
                daemon = get_daemon()
                daemon.reaper_finished.wait(REAPER_REPORT_WAIT_S)
                return 200, daemon.health()
            return 404, {"error": "not found"}
        if req.path not in ("/api/retire", "/api/shutdown", "/api/work"):
            return 404, {"error": "not found"}
        length = content_length(req.headers.get("content-length") or "0")
        # Size and shape first, before any auth (control.md#limits).
        if length is None:
            return 400, {"error": "bad Content-Length"}
        if length > MAX_BODY:
            return 413, {"error": f"body larger than {MAX_BODY} bytes"}
        daemon = get_daemon()
        status = daemon.authorized(req.headers.get("authorization"))
        if status != 200:
            return status, {"error": "unauthorized" if status == 401 else "forbidden"}
        body = _body(req.body[:length])
        gov = daemon.governor
        if req.path == "/api/retire":
            asked = body.get("reason") == "superseded"
            reason = RetireReason.SUPERSEDED if asked else RetireReason.REQUESTED
            gov.retire(reason)
            return 202, {"status": "retiring", "reason": reason.value}
        if req.path == "/api/shutdown":
            gov.retire(RetireReason.SHUTDOWN, drain=False)
            return 200, {"status": "stopping"}
        return _work(gov, body)

    return route


def _foreign(req: Request) -> Answer | None:
    """403 for a request naming another host, or from a web page of another origin (DNS
    rebinding); None when it may go on. spec: control.md#limits"""
    port = req.local_port
    hosts = {LOOPBACK, f"{LOOPBACK}:{port}", "localhost", f"localhost:{port}"}
    origin = req.headers.get("origin")
    if req.headers.get("host") not in hosts:
        return 403, {"error": "Host must be 127.0.0.1 or localhost"}
    if origin is not None and origin not in {f"http://{h}" for h in hosts if ":" in h}:
        return 403, {"error": "cross-origin requests are refused"}
    return None


def _body(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _work(gov: Governor, body: dict[str, Any]) -> Answer:
    """The demo workload: hold one unit of in-flight work for `seconds` (bounded)."""
    seconds = body.get("seconds", 1.0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return 400, {"error": "seconds must be a number"}
    seconds = min(max(float(seconds), 0.0), MAX_WORK_S)
    try:
        with gov.work():
            time.sleep(seconds)
    except Retiring:
        return 503, {"error": "retiring"}
    return 200, {"status": "done", "seconds": seconds}
