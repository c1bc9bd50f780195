"""``conveyor server`` as a real process: first-start hint, a token from ``conveyor tokens
create``, a job submitted over HTTP and run by the embedded worker, which hands the job
CONVEYOR_URL and a job token; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.acceptance.helpers import call, conveyor, start_server, stop_server


def test_server_runs_http_submissions_on_its_embedded_worker(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'conveyor.db'}"
    proc, port, log = start_server(tmp_path, db, "--concurrency", "2", "--log-level", "WARNING")
    try:
        assert "conveyor tokens create --scope admin" in log.read_text()
        made = conveyor("tokens", "create", "--scope", "admin", "--name", "first", db=db, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        assert token.startswith("cvy_")
        script = "import os; print(os.environ['CONVEYOR_URL'], os.environ['CONVEYOR_TOKEN'][:4])"
        status, body = call(port, "POST", "/v1/jobs", token, {"command": [sys.executable, "-c", script]})
        assert status == 201, body
        job_id = body["job"]["id"]
        deadline = time.monotonic() + 20
        while True:
            status, job = call(port, "GET", f"/v1/jobs/{job_id}", token)
            if job["state"] in ("SUCCEEDED", "FAILED") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert job["state"] == "SUCCEEDED", job
        _, logs = call(port, "GET", f"/v1/jobs/{job_id}/logs", token)
        assert logs == f"http://127.0.0.1:{port} cvy_\n".encode()
        listed = conveyor("tokens", "list", "--json", db=db, cwd=tmp_path)
        assert [t["name"] for t in json.loads(listed.stdout)] == ["first"]
        assert conveyor("tokens", "revoke", "1", db=db, cwd=tmp_path).returncode == 0
    finally:
        stop_server(proc)
    assert proc.returncode == 0, log.read_text()
