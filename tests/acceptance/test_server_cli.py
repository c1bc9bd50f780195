"""``conveyor server`` as a real process: first-start hint, a token from ``conveyor tokens
create``, a job submitted over HTTP and run by the embedded worker, which hands the job
CONVEYOR_URL and a job token; SIGTERM stops it cleanly."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.helpers import argv, child_env, conveyor


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _call(port: int, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw and resp.getheader("content-type", "").endswith(
            "json"
        ) else raw
    finally:
        conn.close()


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited {proc.returncode}: {log.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the server did not get ready: {log.read_text()}")


def test_server_runs_http_submissions_on_its_embedded_worker(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'conveyor.db'}"
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv(["server", "--port", str(port), "--concurrency", "2", "--log-level", "WARNING"], db),
            cwd=tmp_path,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(port, proc, log)
        assert "conveyor tokens create --scope admin" in log.read_text()
        made = conveyor("tokens", "create", "--scope", "admin", "--name", "first", db=db, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        assert token.startswith("cvy_")
        script = "import os; print(os.environ['CONVEYOR_URL'], os.environ['CONVEYOR_TOKEN'][:4])"
        status, body = _call(port, "POST", "/v1/jobs", token, {"command": [sys.executable, "-c", script]})
        assert status == 201, body
        job_id = body["job"]["id"]
        deadline = time.monotonic() + 20
        while True:
            status, job = _call(port, "GET", f"/v1/jobs/{job_id}", token)
            if job["state"] in ("SUCCEEDED", "FAILED") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert job["state"] == "SUCCEEDED", job
        _, logs = _call(port, "GET", f"/v1/jobs/{job_id}/logs", token)
        assert logs == f"http://127.0.0.1:{port} cvy_\n".encode()
        listed = conveyor("tokens", "list", "--json", db=db, cwd=tmp_path)
        assert [t["name"] for t in json.loads(listed.stdout)] == ["first"]
        assert conveyor("tokens", "revoke", "1", db=db, cwd=tmp_path).returncode == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()
