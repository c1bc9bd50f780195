"""``conveyor server --http-processes 2``: forked HTTP processes share the port, answer
submissions, and stop with the server (SIGTERM: exit 0, no process left behind)."""

from __future__ import annotations

import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.acceptance.helpers import argv, child_env, conveyor
from tests.acceptance.test_server_cli import _call, _free_port, _wait_ready

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="--http-processes needs fork")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def test_http_processes_share_the_port_and_stop_with_the_server(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'conveyor.db'}"
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv(
                ["server", "--port", str(port), "--http-processes", "2", "--no-worker", "--no-scheduler"], db
            ),
            cwd=tmp_path,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(port, proc, log)
        assert "2 HTTP processes" in log.read_text()
        children = _children(proc.pid)
        if Path("/proc").exists():
            assert len(children) == 1, children
        made = conveyor("tokens", "create", "--scope", "admin", db=db, cwd=tmp_path)
        token = made.stdout.strip()

        def submit(i: int) -> tuple[int, object]:
            return _call(port, "POST", "/v1/jobs", token, {"command": ["true"], "tags": [f"n{i}"]})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(submit, range(40)))
        assert all(status == 201 for status, _ in answers), answers
        ids = {body["job"]["id"] for _, body in answers}  # type: ignore[index]
        assert len(ids) == 40
        status, page = _call(port, "GET", "/v1/jobs?limit=100", token)
        assert status == 200 and {j["id"] for j in page["jobs"]} == ids
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
        for child in children:
            with pytest.raises(ProcessLookupError):
                os.kill(child, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
