"""Real ``conveyor worker`` processes killed and stopped mid-job, on both backends."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.model import Job, JobState
from conveyor.store import Store, open_store

from .helpers import WorkerProcess, kill_group, ok, process_gone, wait_until

# attempt 1 hangs (until its worker is killed), later attempts finish at once
HANG_ON_FIRST_ATTEMPT = (
    'if [ "$CONVEYOR_ATTEMPT" = 1 ]; then sleep 30; fi; echo finished attempt $CONVEYOR_ATTEMPT'
)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    try:
        yield opened
    finally:
        opened.close()


def job_of(store: Store, job_id: int) -> Job:
    job = store.job_get(job_id)
    assert job is not None
    return job


def wait_state(store: Store, job_id: int, state: JobState, timeout: float = 20.0) -> Job:
    try:
        wait_until(f"job {job_id} {state.value}", lambda: job_of(store, job_id).state is state, timeout)
    except AssertionError as exc:
        job = job_of(store, job_id)
        raise AssertionError(f"{exc}; it is {job.state.value}: {job.status_reason}") from None
    return job_of(store, job_id)


def submit(db: str, cwd: Path, *args: str) -> int:
    out = ok("submit", "--json", *args, db=db, cwd=cwd)
    job_id: int = json.loads(out)["id"]
    return job_id


def test_killed_worker_attempt_fails_with_worker_lost_and_a_second_worker_finishes_the_job(
    db_url: str, tmp_path: Path, store: Store
) -> None:
    job_id = submit(
        db_url,
        tmp_path,
        "--retry",
        '{"attempts": 2, "delay_seconds": 0}',
        "--",
        "sh",
        "-c",
        HANG_ON_FIRST_ATTEMPT,
    )
    orphan: int | None = None
    try:
        with WorkerProcess(db_url, tmp_path, "--lease-seconds", "3", name="first") as first:
            wait_state(store, job_id, JobState.RUNNING)
            wait_until("the child's pid", lambda: store.job_attempts(job_id)[0].pid is not None, 5)
            orphan = store.job_attempts(job_id)[0].pid
            first.send(signal.SIGKILL)
            assert first.wait(5) == -signal.SIGKILL
        assert job_of(store, job_id).state is JobState.RUNNING, "nobody noticed the loss yet"
        with WorkerProcess(db_url, tmp_path, "--lease-seconds", "3", name="second") as second:
            job = wait_state(store, job_id, JobState.SUCCEEDED, timeout=20)
            # the second worker, on the same host, killed what the dead one left running
            assert orphan is not None
            wait_until("the orphaned attempt is killed", lambda: process_gone(orphan), 5)
            second.send(signal.SIGTERM)
            assert second.wait(10) == 0, second.output()
        assert job.attempt == 2 and job.attempts_counted == 2
        lost, retried = store.job_attempts(job_id)
        assert lost.reason == "worker lost" and lost.counted
        assert f"-{first.pid}-" in lost.worker_id
        assert retried.reason == "succeeded" and retried.exit_code == 0
        assert f"-{second.pid}-" in retried.worker_id
        log = b"".join(d for _, _, d in store.log_read(job_id, 2)).decode()
        assert "finished attempt 2" in log
    finally:
        kill_group(orphan)


def test_sigterm_lets_a_short_job_finish_and_the_worker_exits_0(
    db_url: str, tmp_path: Path, store: Store
) -> None:
    job_id = submit(db_url, tmp_path, "--", "sh", "-c", "sleep 1; echo finished")
    with WorkerProcess(db_url, tmp_path, "--lease-seconds", "3", "--grace", "5") as worker:
        wait_state(store, job_id, JobState.RUNNING)
        worker.send(signal.SIGTERM)
        assert worker.wait(10) == 0, worker.output()
    job = job_of(store, job_id)
    assert job.state is JobState.SUCCEEDED, job.status_reason
    assert "SIGTERM: stopping" in worker.output()
    assert "1 succeeded" in worker.output()
    assert b"finished" in b"".join(d for _, _, d in store.log_read(job_id))
    assert store.worker_list(job.updated_at) == [], "the worker recorded its stop"


def test_sigterm_requeues_a_job_longer_than_the_grace_and_the_worker_exits_0(
    db_url: str, tmp_path: Path, store: Store
) -> None:
    job_id = submit(db_url, tmp_path, "--", "sleep", "30")
    with WorkerProcess(db_url, tmp_path, "--lease-seconds", "3", "--grace", "0.5") as worker:
        wait_state(store, job_id, JobState.RUNNING)
        worker.send(signal.SIGTERM)
        assert worker.wait(10) == 0, worker.output()
    job = job_of(store, job_id)
    assert job.state is JobState.RUNNABLE, job.status_reason
    assert job.attempts_counted == 0
    [attempt] = store.job_attempts(job_id)
    assert not attempt.counted
    assert attempt.pid is not None
    pid = attempt.pid
    wait_until("the job's child to be stopped", lambda: process_gone(pid), 5)


def test_sigterm_with_an_inline_job_that_ignores_it_requeues_and_the_worker_still_exits(
    db_url: str, tmp_path: Path, store: Store
) -> None:
    # a sync Python function cannot be interrupted; the worker must not wait for it forever
    job_id = submit(
        db_url,
        tmp_path,
        "--function",
        "tests.integration.jobs_fixtures:sync_sleep",
        "--param",
        "seconds=1000",
    )
    with WorkerProcess(db_url, tmp_path, "--lease-seconds", "3", "--grace", "0.5") as worker:
        wait_state(store, job_id, JobState.RUNNING)
        worker.send(signal.SIGTERM)
        assert worker.wait(10) == 0, worker.output()
        assert "did not stop" in worker.output()
    job = job_of(store, job_id)
    assert job.state is JobState.RUNNABLE and job.attempts_counted == 0, job.status_reason
