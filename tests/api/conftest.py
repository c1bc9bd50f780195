"""A real uvicorn server on 127.0.0.1 (a free port, in a thread) over a real database.

``live`` serves the API for an ``App`` on ``db_url`` (both backends) with an admin token;
``live.worker()`` adds an in-process worker that hands jobs CONVEYOR_URL and job tokens.
Requests go over real HTTP (``http.client``).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from conveyor.api import ApiConfig, create_api
from conveyor.app import App
from conveyor.client import Client
from conveyor.worker.executors import ExecutorConfig
from conveyor.worker.loop import Worker, WorkerConfig


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Live:
    app: App
    url: str
    port: int
    admin: str
    workers: list[tuple[Worker, threading.Thread]] = field(default_factory=list)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "admin",
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            sent = dict(headers or {})
            if token is not None:
                sent["Authorization"] = f"Bearer {self.admin if token == 'admin' else token}"
            data = raw if raw is not None else None if body is None else json.dumps(body).encode()
            if data is not None:
                sent.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=sent)
            resp = conn.getresponse()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def token(self, *scopes: str, name: str = "t") -> str:
        _, secret = self.app.tokens.create(name, scopes)
        return secret

    def worker(self, **changes: Any) -> Worker:
        """Start an in-process worker (stopped at teardown)."""
        cfg = WorkerConfig(
            concurrency=4,
            lease_seconds=5.0,
            grace_seconds=2.0,
            max_idle_wait=0.05,
            executor=ExecutorConfig(
                kill_grace_seconds=0.5,
                log_flush_seconds=0.1,
                api_url=self.url,
                job_token=self.app.tokens.mint_job_token,
            ),
            **changes,
        )
        worker = self.app.worker(cfg)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        self.workers.append((worker, thread))
        return worker


def serve(app: App, config: ApiConfig) -> tuple[uvicorn.Server, threading.Thread, int]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_api(app, config), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    return server, thread, port


@pytest.fixture
def api_config() -> ApiConfig:
    return ApiConfig(rate_per_second=0, log_poll_seconds=0.05)


@pytest.fixture
def live(db_url: str, tmp_path: Path, api_config: ApiConfig) -> Iterator[Live]:
    app = App.open(db_url, blob_dir=tmp_path / "blobs")
    server, thread, port = serve(app, api_config)
    _, admin = app.tokens.create("admin", ["admin"])
    handle = Live(app, f"http://127.0.0.1:{port}", port, admin)
    try:
        yield handle
    finally:
        for worker, _ in handle.workers:
            worker.request_stop(immediate=True)
        for _, wt in handle.workers:
            wt.join(10)
        server.should_exit = True
        thread.join(10)
        app.close()


def wait_state(live: Live, job_id: int, *states: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = live.call("GET", f"/v1/jobs/{job_id}").json
        if job["state"] in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} is {job['state']} ({job['status_reason']}), not {states}")
        time.sleep(0.03)


@pytest.fixture
def both(live: Live) -> Iterator[tuple[Client, Client]]:
    """The SDK over HTTP and on the database, on the same store."""
    live.app.catalog.put_environment("spot")
    over_http, on_database = Client(live.url, live.admin), Client.from_database(live.app.url)
    try:
        yield over_http, on_database
    finally:
        over_http.close()
        on_database.close()


@pytest.fixture(params=["http", "database"])
def client(request: pytest.FixtureRequest, live: Live) -> Iterator[Client]:
    """The SDK over HTTP and straight on the database: tests run against both."""
    made = Client(live.url, live.admin) if request.param == "http" else Client.from_database(live.app.url)
    try:
        yield made
    finally:
        made.close()
