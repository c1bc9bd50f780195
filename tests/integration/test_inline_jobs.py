"""Inline function jobs on a real worker: results, failures, outcomes, timeouts."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

import conveyor
from conveyor.app import App
from conveyor.engine.jobs import SubmitRequest
from conveyor.model import JobState

from . import jobs_fixtures as fx
from .helpers import WorkerThread, config, log_text, run_burst, wait_for_state


def submit(app: App, name: str, **kw: object) -> int:
    return app.jobs.submit(SubmitRequest(function=fx.path(name), **kw)).job.id  # type: ignore[arg-type]


def test_sync_function_result_is_stored(app: App) -> None:
    job_id = submit(app, "add", payload={"args": [2, 3]})
    stats = run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED, job.status_reason
    assert job.result == 5
    assert (stats.claimed, stats.succeeded) == (1, 1)


def test_async_function_result_is_stored(app: App) -> None:
    job_id = submit(app, "async_add", payload={"kwargs": {"a": 20, "b": 22}})
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED, job.status_reason
    assert job.result == 42


@pytest.mark.parametrize("name", ["whoami", "async_whoami"])
def test_a_function_knows_its_job_attempt_queue_and_array_index_from_current_job(app: App, name: str) -> None:
    app.catalog.put_queue("reports")
    parent_id = submit(app, name, queue="reports", array_size=3)
    single_id = submit(app, name, queue="reports")
    run_burst(app, queues=("reports",), concurrency=2)
    children = sorted(app.store.job_list(array_parent_id=parent_id), key=lambda j: j.array_index or 0)
    assert [c.array_index for c in children] == [0, 1, 2]
    for job_id in [c.id for c in children] + [single_id]:
        job = app.jobs.get(job_id)
        assert job.state is JobState.SUCCEEDED, job.status_reason
        [attempt] = app.jobs.attempts(job_id)
        assert job.result == {
            "job_id": job_id,
            "attempt": 1,
            "queue": "reports",
            "array_index": job.array_index,
            "array_parent_id": parent_id if job.array_index is not None else None,
            "worker_id": attempt.worker_id,
        }
    assert conveyor.current_job() is None  # outside a job (this test runs none itself)


def test_exception_fails_the_job_with_type_and_message_and_logs_the_traceback(app: App) -> None:
    job_id = submit(app, "fail", parameters={"message": "the input is bad"})
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.status_reason == "ValueError: the input is bad"
    [attempt] = app.jobs.attempts(job_id)
    assert attempt.reason == "ValueError: the input is bad"
    log = log_text(app, job_id)
    assert "Traceback (most recent call last)" in log
    assert "raise ValueError(message)" in log
    assert "ValueError: the input is bad" in log


@pytest.mark.parametrize("how", ["raise", "return"])
def test_retry_outcome_runs_the_job_again_and_counts_an_attempt(app: App, how: str) -> None:
    job_id = submit(app, "first_attempt_outcome", parameters={"outcome": "retry", "how": how}, retry=3)
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED, job.status_reason
    assert job.result == "done on attempt 2"
    assert job.attempts_counted == 2
    first, second = app.jobs.attempts(job_id)
    assert first.reason == "retry requested by the job" and first.counted
    assert second.reason == "succeeded"


@pytest.mark.parametrize("how", ["raise", "return"])
def test_retry_outcome_with_a_delay_schedules_the_next_attempt_after_it(app: App, how: str) -> None:
    job_id = submit(
        app,
        "first_attempt_outcome",
        parameters={"outcome": "retry", "how": how, "delay": "60"},
        retry=3,
    )
    before = app.clock.now()
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.SUBMITTED, job.status_reason
    assert job.status_reason.startswith("attempt 1 failed: retry requested by the job; retry 2 of 3")
    assert job.run_at is not None
    assert before + timedelta(seconds=59) < job.run_at < app.clock.now() + timedelta(seconds=61)


def test_retry_outcome_without_attempts_left_fails_the_job(app: App) -> None:
    job_id = submit(app, "first_attempt_outcome", parameters={"outcome": "retry", "how": "raise"})
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.status_reason == "retry requested by the job"


@pytest.mark.parametrize("how", ["raise", "return"])
def test_cancel_outcome_ends_the_job_cancelled_with_its_reason_and_no_retry(app: App, how: str) -> None:
    job_id = submit(app, "first_attempt_outcome", parameters={"outcome": "cancel", "how": how}, retry=3)
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.CANCELLED
    assert job.status_reason == "not needed any more"
    assert len(app.jobs.attempts(job_id)) == 1


@pytest.mark.parametrize("how", ["raise", "return"])
def test_snooze_outcome_runs_again_later_without_consuming_an_attempt(app: App, how: str) -> None:
    # one attempt in all: the second run is only possible because the snooze did not count
    job_id = submit(
        app, "first_attempt_outcome", parameters={"outcome": "snooze", "how": how, "delay": "0.3"}
    )
    with WorkerThread(app, config(burst=False)):
        job = wait_for_state(app, job_id, JobState.SUCCEEDED, JobState.FAILED)
    assert job.state is JobState.SUCCEEDED, job.status_reason
    assert job.result == "done on attempt 2"
    assert (job.attempt, job.attempts_counted) == (2, 1)
    first, second = app.jobs.attempts(job_id)
    assert not first.counted and first.reason == "snoozed for 0.3 s"
    assert second.counted
    assert first.stopped_at is not None
    assert second.started_at >= first.stopped_at + timedelta(seconds=0.3)


def test_snoozed_job_waits_submitted_until_its_time(app: App) -> None:
    job_id = submit(
        app, "first_attempt_outcome", parameters={"outcome": "snooze", "how": "return", "delay": "60"}
    )
    before = app.clock.now()
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.SUBMITTED, job.status_reason
    assert job.status_reason == "snoozed for 60 s"
    assert job.attempts_counted == 0
    assert job.run_at is not None and job.run_at >= before + timedelta(seconds=60)


def test_async_function_past_its_timeout_is_cancelled_with_reason_timed_out(app: App) -> None:
    job_id = submit(app, "async_sleep", parameters={"seconds": "30"}, timeout_seconds=0.4)
    stats = run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.status_reason == "timed out after 0.4 s"
    assert stats.failed == 1


def test_sync_function_past_its_timeout_is_reported_timed_out(app: App) -> None:
    job_id = submit(app, "sync_sleep", parameters={"seconds": "1.5"}, timeout_seconds=0.3)
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.status_reason == "timed out after 0.3 s"


def test_a_busy_sync_function_past_its_timeout_is_interrupted_and_frees_its_slot(
    app: App, tmp_path: Path
) -> None:
    """Before, the thread ran on for the function's 30 s, holding the worker's only slot."""
    marker = tmp_path / "ended"
    slow = submit(app, "spin", parameters={"seconds": "30", "marker": str(marker)}, timeout_seconds=0.3)
    quick = submit(app, "add", payload={"args": [1, 2]})
    started = time.monotonic()
    with WorkerThread(app, config(burst=False, concurrency=1)):
        wait_for_state(app, quick, JobState.SUCCEEDED, timeout=10)
    assert time.monotonic() - started < 10
    job = app.jobs.get(slow)
    assert (job.state, job.status_reason) == (JobState.FAILED, "timed out after 0.3 s")
    assert marker.read_text() == "Interrupted"


def test_a_burst_worker_whose_slots_a_timed_out_function_holds_waits_for_it_then_drains(app: App) -> None:
    """A function blocked in C code (time.sleep) sees the interruption only when it returns:
    its thread keeps the only slot meanwhile. The burst worker exited then, saying it had
    drained, and left the next job RUNNABLE."""
    slow = submit(app, "sync_sleep", parameters={"seconds": "1.5"}, timeout_seconds=0.3)
    quick = submit(app, "add", payload={"args": [1, 2]})
    stats = run_burst(app, concurrency=1)
    assert app.jobs.get(slow).status_reason == "timed out after 0.3 s"
    assert app.jobs.get(quick).state is JobState.SUCCEEDED
    assert (stats.succeeded, stats.failed) == (1, 1)


def test_an_except_exception_in_the_function_does_not_hide_its_timeout(app: App) -> None:
    slow = submit(app, "spin_swallowing", parameters={"seconds": "30"}, timeout_seconds=0.3)
    quick = submit(app, "add", payload={"args": [1, 2]})
    with WorkerThread(app, config(burst=False, concurrency=1)):
        wait_for_state(app, quick, JobState.SUCCEEDED, timeout=10)
    assert app.jobs.get(slow).status_reason == "timed out after 0.3 s"


def test_terminate_interrupts_a_busy_sync_function(app: App, tmp_path: Path) -> None:
    marker = tmp_path / "ended"
    job_id = submit(app, "spin", parameters={"seconds": "30", "marker": str(marker)})
    with WorkerThread(app, config(burst=False, concurrency=1)):
        wait_for_state(app, job_id, JobState.RUNNING)
        app.jobs.terminate(job_id, "no longer needed")
        job = wait_for_state(app, job_id, JobState.FAILED, timeout=10)
        after = submit(app, "add", payload={"args": [1, 2]})
        wait_for_state(app, after, JobState.SUCCEEDED, timeout=10)
    assert job.status_reason.startswith("terminated"), job.status_reason
    assert marker.read_text() == "Interrupted"


def test_an_interruption_near_the_deadline_never_reaches_the_next_job(app: App) -> None:
    """Timeouts about as long as the work (the worker acts 50 ms after a deadline; here about a
    quarter time out): the interruption lands inside the function, just after it returned, or
    not at all; never in the worker or in the thread's next job."""
    ids = [
        submit(app, "near_deadline", parameters={"seconds": f"{0.08 + i * 0.006:.3f}"}, timeout_seconds=0.06)
        for i in range(20)
    ]
    after = [submit(app, "add", payload={"args": [i, 1]}) for i in range(40)]
    run_burst(app, concurrency=2)
    for job_id in ids:
        job = app.jobs.get(job_id)
        assert job.state is JobState.SUCCEEDED or job.status_reason == "timed out after 0.06 s", job
    for i, job_id in enumerate(after):
        job = app.jobs.get(job_id)
        assert (job.state, job.result) == (JobState.SUCCEEDED, i + 1), job.status_reason


def test_result_that_is_not_json_fails_the_job(app: App) -> None:
    job_id = submit(app, "not_json")
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.status_reason.startswith("result is not JSON-serialisable")
    assert job.result is None


def test_terminate_cancels_a_running_async_function(app: App) -> None:
    job_id = submit(app, "async_sleep", parameters={"seconds": "30"})
    with WorkerThread(app, config(burst=False)):
        wait_for_state(app, job_id, JobState.RUNNING)
        app.jobs.terminate(job_id, "no longer needed")
        job = wait_for_state(app, job_id, JobState.FAILED, timeout=10)
    assert job.status_reason.startswith("terminated"), job.status_reason
    [attempt] = app.jobs.attempts(job_id)
    assert attempt.reason.startswith("terminated")


def test_print_in_a_function_job_goes_to_its_log(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    """It went to the worker's own output, interleaved across jobs, and `jobs logs` was empty."""
    ids = [submit(app, "printer", parameters={"text": f"job {i}"}) for i in range(3)]
    run_burst(app)
    for i, job_id in enumerate(ids):
        assert app.jobs.get(job_id).state is JobState.SUCCEEDED
        assert log_text(app, job_id) == f"out: job {i}\nerr: job {i}\n"
    outside = capsys.readouterr()
    assert "job 0" not in outside.out + outside.err
    print("the test's own output")  # the worker has put sys.stdout back
    assert capsys.readouterr().out == "the test's own output\n"
