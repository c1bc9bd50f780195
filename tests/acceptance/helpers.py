"""Running the real ``conveyor`` command: one-shot commands and long-running workers."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.integration.helpers import process_gone

REPO = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """The environment of ``conveyor`` subprocesses: the test job modules importable, no ambient URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def with_options(args: Sequence[str], *options: str) -> list[str]:
    """``args`` with ``options`` added before the ``--`` that starts a job's command, if any."""
    items = list(args)
    at = items.index("--") if "--" in items else len(items)
    items[at:at] = options
    return items


def argv(args: Sequence[str], db: str | None) -> list[str]:
    """``python -m conveyor ARGS [--database DB]``."""
    items = with_options(args, "--database", db) if db is not None else list(args)
    return [sys.executable, "-m", "conveyor", *items]


def conveyor(
    *args: str, db: str | None, cwd: Path, stdin: str | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv(args, db),
        cwd=cwd,
        env=child_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(*args: str, db: str | None, cwd: Path) -> str:
    """Run a command that must succeed; its stdout."""
    done = conveyor(*args, db=db, cwd=cwd)
    assert done.returncode == 0, f"conveyor {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done.stdout


def python_c(code: str, *args: str, cwd: Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    """``python -c CODE ARGS`` with the environment of ``conveyor`` subprocesses."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def ok_json(*args: str, db: str | None, cwd: Path) -> Any:
    return json.loads(ok(*with_options(args, "--json"), db=db, cwd=cwd))


class WorkerProcess:
    """``conveyor worker`` as a real child process; killed on exit if still running."""

    def __init__(self, db: str, cwd: Path, *options: str, name: str = "worker") -> None:
        self.log_path = cwd / f"{name}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            argv(["worker", "--concurrency", "1", "--log-level", "DEBUG", *options], db),
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker {self.pid} still running after {timeout} s; its output:\n{self.output()}"
            ) from None

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def kill_group(pgid: int | None) -> None:
    """Best-effort cleanup of a job's process group left behind by a killed worker."""
    if pgid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


__all__ = ["process_gone"]


# -- a real `conveyor server` ------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def call(port: int, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    """One HTTP request: (status, JSON body, or the raw bytes when it is not JSON)."""
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


def stop_server(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL after 20 s; the exit code (0 when it stopped gracefully)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def start_server(tmp_path: Path, db: str, *options: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    """``conveyor server --port FREE OPTIONS`` in ``tmp_path``, ready (``/readyz`` answers 200):
    (process, port, log file)."""
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv(["server", "--port", str(port), *options], db),
            cwd=tmp_path,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited {proc.returncode}: {log.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc, port, log
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    proc.wait(10)
    pytest.fail(f"the server did not get ready: {log.read_text()}")
