"""``conveyor server --http-processes 2``: forked HTTP processes share the port, answer
submissions, and stop with the server (SIGTERM: exit 0, no process left behind)."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.acceptance.helpers import call, conveyor, start_server

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="--http-processes needs fork")


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def test_http_processes_share_the_port_and_stop_with_the_server(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'conveyor.db'}"
    proc, port, log = start_server(tmp_path, db, "--http-processes", "2", "--no-worker", "--no-scheduler")
    try:
        assert "2 HTTP processes" in log.read_text()
        children = _children(proc.pid)
        if Path("/proc").exists():
            assert len(children) == 1, children
        made = conveyor("tokens", "create", "--scope", "admin", db=db, cwd=tmp_path)
        token = made.stdout.strip()

        def submit(i: int) -> tuple[int, object]:
            return call(port, "POST", "/v1/jobs", token, {"command": ["true"], "tags": [f"n{i}"]})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(submit, range(40)))
        assert all(status == 201 for status, _ in answers), answers
        ids = {body["job"]["id"] for _, body in answers}  # type: ignore[index]
        assert len(ids) == 40
        status, page = call(port, "GET", "/v1/jobs?limit=100", token)
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


@pytest.mark.parametrize("count", ["0", "-1", "65"])
def test_an_impossible_number_of_http_processes_exits_2_naming_the_flag(tmp_path: Path, count: str) -> None:
    db = f"sqlite:///{tmp_path / 'conveyor.db'}"
    made = conveyor("server", "--port", "1", "--http-processes", count, db=db, cwd=tmp_path)
    assert made.returncode == 2, made.stderr
    assert "http-processes" in made.stderr and "1-64" in made.stderr
