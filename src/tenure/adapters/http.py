"""Tiny loopback HTTP client (adapter): JSON in, JSON out, bounded time and body size."""

from __future__ import annotations

import json
import time

from tenure.core.hints import TYPE_CHECKING
from tenure.core.values import frozen

if TYPE_CHECKING:
    from typing import Any

LOOPBACK = "127.0.0.1"
BODY_CAP = 64 * 1024
HEALTH_TIMEOUT_S = 0.5


@frozen
class Reply:
    """An HTTP answer: status and parsed JSON body (None when not a JSON object)."""

    status: int
    body: dict[str, Any] | None


def request(
    port: int,
    method: str,
    path: str,
    *,
    token: str | None = None,
    payload: dict[str, Any] | None = None,
    timeout: float = 0.5,
) -> Reply | None:
    """One request to 127.0.0.1:`port`; None on connection failure or timeout."""
    import http.client  # noqa: PLC0415  (only control calls need it; health does not)

    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    headers = {"Connection": "close"}
    data = None
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read(BODY_CAP)
        status = resp.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    return Reply(status, body if isinstance(body, dict) else None)


def health(
    port: int, timeout: float = HEALTH_TIMEOUT_S, path: str = "/api/health"
) -> dict[str, Any] | None:
    """GET `path` (health) within `timeout` overall and BODY_CAP bytes; the JSON object or None.

    A raw HTTP/1.0 exchange on a plain socket: bounded in total time (a slow-drip server
    cannot stretch it) and cheap to import on the CLI's hot path.
    """
    import socket  # noqa: PLC0415  (~4 ms: `tenure.ensure` reusing a daemon asks no health)

    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            sock.sendall(
                f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            while size <= BODY_CAP + 8192:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                sock.settimeout(left)
                chunk = sock.recv(16384)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
    except OSError:
        return None
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or status_line[1] != b"200":
        return None
    try:
        doc = json.loads(body[:BODY_CAP])
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None
