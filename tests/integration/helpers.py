"""Running real workers in-process: fast configurations, a worker thread, bounded waits."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Any

from conveyor.app import App
from conveyor.model import Job, JobState
from conveyor.worker.executors import ExecutorConfig
from conveyor.worker.loop import RunStats, WorkerConfig

FAST_EXECUTOR = ExecutorConfig(kill_grace_seconds=0.5, log_flush_seconds=0.1)


def config(**changes: Any) -> WorkerConfig:
    """A worker configuration for tests: short leases, short waits, burst by default."""
    base = WorkerConfig(
        concurrency=2,
        lease_seconds=2.0,
        burst=True,
        grace_seconds=2.0,
        max_idle_wait=0.1,
        executor=FAST_EXECUTOR,
    )
    return replace(base, **changes)


def run_burst(app: App, **changes: Any) -> RunStats:
    """Run a burst worker until nothing is runnable (bounded: fails after 30 s)."""
    with WorkerThread(app, config(burst=True, **changes)) as wt:
        wt.join(30.0)
    assert wt.stats is not None
    return wt.stats


class WorkerThread:
    """A real ``Worker`` running in a thread; stopped (immediately) on exit."""

    def __init__(self, app: App, cfg: WorkerConfig) -> None:
        self.worker = app.worker(cfg)
        self.stats: RunStats | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="test-worker", daemon=True)

    def _run(self) -> None:
        try:
            self.stats = self.worker.run()
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> WorkerThread:
        self.thread.start()
        return self

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the worker did not return within {timeout} s"
        if self.error is not None:
            raise self.error

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.thread.is_alive():
            self.worker.request_stop(immediate=True)
            self.thread.join(10.0)
        if exc is None:
            assert not self.thread.is_alive(), "the worker did not stop"
            if self.error is not None:
                raise self.error


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.03)


def wait_for_state(app: App, job_id: int, *states: JobState, timeout: float = 15.0) -> Job:
    def reached() -> bool:
        return app.jobs.get(job_id).state in states

    try:
        wait_for(f"job {job_id} to be {'/'.join(s.value for s in states)}", reached, timeout)
    except AssertionError as exc:
        job = app.jobs.get(job_id)
        raise AssertionError(f"{exc}; it is {job.state.value}: {job.status_reason}") from None
    return app.jobs.get(job_id)


def log_text(app: App, job_id: int, attempt: int | None = None) -> str:
    return b"".join(data for _, _, data in app.store.log_read(job_id, attempt)).decode(errors="replace")


def python(code: str, *args: str) -> list[str]:
    """argv running ``code`` in this interpreter."""
    return [sys.executable, "-c", code, *args]


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (exited, or a zombie waiting to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True
