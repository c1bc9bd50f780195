"""Opening a PostgreSQL store: a one-shot command fails at the first refused connection, with
libpq's reason; a long-running process (worker, server, scheduler, run-job) waits out its
connect timeout for a server that starts beside it. Real server, real sockets: the "server
that comes up late" is a TCP port that starts listening after a while and then forwards to
the real PostgreSQL."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conveyor import errors
from conveyor.store.postgres import PostgresStore

from ..acceptance.helpers import conveyor

pytestmark = pytest.mark.postgres


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class LateServer:
    """Refuses connections on ``port`` (nothing listens) until ``open()``, then forwards each
    connection to ``target`` (host, port)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.port = _free_port()
        self.target = target
        self._sock: socket.socket | None = None
        self._stop = False

    def open(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(16)
        sock.settimeout(0.2)
        self._sock = sock
        threading.Thread(target=self._serve, daemon=True).start()

    def open_after(self, seconds: float) -> None:
        timer = threading.Timer(seconds, self.open)
        timer.daemon = True
        timer.start()

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self._stop = True
        if self._sock is not None:
            self._sock.close()


@pytest.fixture
def late(pg_url: str) -> Iterator[tuple[LateServer, str]]:
    parts = urlsplit(pg_url)
    server = LateServer((parts.hostname or "127.0.0.1", parts.port or 5432))
    try:
        yield server, pg_url.replace(parts.netloc, f"{parts.hostname}:{server.port}", 1)
    finally:
        server.close()


def test_a_refused_connection_fails_at_once_with_the_reason(late: tuple[LateServer, str]) -> None:
    _, url = late
    started = time.monotonic()
    with pytest.raises(errors.StoreUnavailable) as caught:
        PostgresStore(url, connect_timeout=60)
    # the old pool waited out the whole connect timeout before it said anything
    assert time.monotonic() - started < 20
    assert f"cannot reach PostgreSQL at {url}: " in str(caught.value)
    assert "Connection refused" in str(caught.value)


def test_an_unknown_database_fails_at_once_with_the_servers_words(pg_url: str) -> None:
    url = pg_url.rpartition("/")[0] + "/conveyor_no_such_database"
    started = time.monotonic()
    with pytest.raises(errors.StoreUnavailable, match='database "conveyor_no_such_database" does not exist'):
        PostgresStore(url, connect_timeout=60)
    assert time.monotonic() - started < 20


def test_waiting_for_the_server_uses_it_once_it_listens(late: tuple[LateServer, str]) -> None:
    server, url = late
    server.open_after(1.0)
    started = time.monotonic()
    store = PostgresStore(url, connect_timeout=60, wait_for_server=True)
    try:
        assert time.monotonic() - started >= 0.9  # it was refused, and waited
        current, latest = store.schema_status()
        assert current == latest
    finally:
        store.close()


def test_waiting_for_a_server_that_never_comes_gives_up_at_the_timeout(late: tuple[LateServer, str]) -> None:
    _, url = late
    started = time.monotonic()
    with pytest.raises(errors.StoreUnavailable, match="Connection refused"):
        PostgresStore(url, connect_timeout=1.5, wait_for_server=True)
    assert time.monotonic() - started >= 1.4


def test_a_worker_started_before_its_database_waits_for_it(
    late: tuple[LateServer, str], tmp_path: Path
) -> None:
    server, url = late
    server.open_after(1.5)
    done = conveyor("worker", "--burst", db=url, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Connection refused" in done.stderr  # the pool's warning while it waited


def test_a_one_shot_command_does_not_wait(late: tuple[LateServer, str], tmp_path: Path) -> None:
    server, url = late
    server.open_after(1.5)
    done = conveyor("queues", "list", db=url, cwd=tmp_path, timeout=60)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        f"conveyor: cannot reach PostgreSQL at {url}: connection failed: connection to server at"
        f' "127.0.0.1", port {server.port} failed: Connection refused'
    ]
