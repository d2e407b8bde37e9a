"""Tiny loopback HTTP client (adapter): JSON in, JSON out, bounded time and body size."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

LOOPBACK = "127.0.0.1"
BODY_CAP = 64 * 1024


@dataclass(frozen=True, slots=True)
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


def health(port: int, timeout: float = 0.5) -> dict[str, Any] | None:
    """GET /api/health as a dict, or None when nothing answers with JSON 200."""
    reply = request(port, "GET", "/api/health", timeout=timeout)
    if reply is None or reply.status != 200:
        return None
    return reply.body
