"""The control plane's HTTP parsing, the only parser facing other local users: `parse_request`
directly, and a real loopback server for what it answers (control.md#limits)."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from tenure.adapters.server import BoundedServer, Request, parse_request


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n", id="no-end-of-head"),
        pytest.param(b"GET /\r\n\r\n", id="no-version"),
        pytest.param(b"GET / SPDY/3\r\n\r\n", id="not-http-1"),
        pytest.param(b"GET / HTTP/1.1 extra\r\n\r\n", id="four-words"),
        pytest.param(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", id="header-without-colon"),
        pytest.param(b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", id="folded-header"),
        pytest.param(b"GET / HTTP/1.1\r\n: empty name\r\n\r\n", id="empty-header-name"),
    ],
)
def test_a_malformed_request_is_none(data: bytes) -> None:
    assert parse_request(data, 9400) is None


def test_a_request_is_parsed_with_lower_case_headers_the_first_one_winning() -> None:
    data = (
        b"POST /api/retire HTTP/1.1\r\nHost: 127.0.0.1:9400\r\nContent-Length: 2\r\n"
        b"content-length: 99\r\nAuthorization: Bearer t\r\n\r\n{}"
    )
    assert parse_request(data, 9400) == Request(
        "POST",
        "/api/retire",
        {"host": "127.0.0.1:9400", "content-length": "2", "authorization": "Bearer t"},
        b"{}",
        9400,
    )


def _exchange(port: int, raw: bytes) -> tuple[int, dict[str, object]]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_chunked_body_is_refused_not_read_as_empty() -> None:
    """A body the server would not read (chunked, no Content-Length) is answered 411, so a
    client never has its request run with an empty body; the route never sees it."""
    seen: list[Request] = []

    def route(req: Request) -> tuple[int, dict[str, object]]:
        seen.append(req)
        return 200, {"body": req.body.decode()}

    server = BoundedServer(("127.0.0.1", 0), route)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        chunked = (
            b"POST /api/work HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'd\r\n{"seconds": 5}\r\n0\r\n\r\n'
        )
        status, doc = _exchange(server.port, chunked)
        assert status == 411
        assert "Content-Length" in str(doc["error"])
        plain = b"POST /api/work HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}"
        assert _exchange(server.port, plain) == (200, {"body": "{}"})
        assert [r.body for r in seen] == [b"{}"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
