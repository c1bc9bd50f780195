"""The SDK's HTTP client on a kept-alive connection the server drops: a POST that went out is
never sent twice (it may have been applied); a GET is retried once on a fresh connection."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conveyor import errors
from conveyor.client.backends import HttpBackend


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[str] = []
        self.drop_next = False  # drop the connection on the next request, without answering


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.seen.append(f"{self.command} {self.path}")
        if self.server.drop_next:
            self.server.drop_next = False
            self.close_connection = True
            return  # no answer: the client sees the connection close after sending
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_post_the_server_dropped_is_not_sent_again(server: _Server) -> None:
    client = HttpBackend(f"http://127.0.0.1:{server.server_port}", "token", timeout=5)
    assert client.request("GET", "/v1/x") == {"ok": True}  # the connection is now kept alive
    server.drop_next = True
    with pytest.raises(errors.StoreUnavailable, match="may or may not have been applied"):
        client.request("POST", "/v1/jobs", {"command": ["true"]})
    assert server.seen == ["GET /v1/x", "POST /v1/jobs"]  # once, never twice
    assert client.request("POST", "/v1/jobs", {"command": ["true"]}) == {"ok": True}  # a new connection


def test_a_get_the_server_dropped_is_retried_once(server: _Server) -> None:
    client = HttpBackend(f"http://127.0.0.1:{server.server_port}", "token", timeout=5)
    assert client.request("GET", "/v1/a") == {"ok": True}
    server.drop_next = True
    assert client.request("GET", "/v1/b") == {"ok": True}
    assert server.seen == ["GET /v1/a", "GET /v1/b", "GET /v1/b"]
