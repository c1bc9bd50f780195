"""What a worker must survive from the jobs it runs: results and outcomes the store cannot
hold, BaseExceptions, a store that refuses one finish. Each of these wedged a worker (its
batch of finishes retried forever, or a job thread gone) with its jobs left RUNNING."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.app import App
from conveyor.engine.jobs import SubmitRequest
from conveyor.model import JobState

from . import jobs_fixtures as fx
from .helpers import log_text, run_burst


def submit(app: App, name: str, **kw: Any) -> int:
    return app.jobs.submit(SubmitRequest(function=fx.path(name), **kw)).job.id


def ok_job(app: App) -> int:
    return submit(app, "add", payload={"args": [1, 2]})


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "own"])
def test_a_base_exception_fails_the_attempt_and_the_worker_goes_on(app: App, kind: str) -> None:
    bad = submit(app, "raise_base", parameters={"kind": kind})
    good = ok_job(app)
    stats = run_burst(app, concurrency=1)  # one job thread: it must survive the first job
    job = app.jobs.get(bad)
    assert job.state is JobState.FAILED
    name = "_OwnBaseException" if kind == "own" else kind
    assert job.status_reason.startswith(name), job.status_reason
    assert "Traceback" in log_text(app, bad)
    assert app.jobs.get(good).state is JobState.SUCCEEDED
    assert (stats.succeeded, stats.failed) == (1, 1)


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("bigint", "result is not JSON-serialisable: Exceeds the limit (4300 digits)"),
        ("nul", "result holds a NUL or a lone surrogate"),
        ("deep", "result is nested too deeply to store"),
        ("huge", "result is 16,777,219 bytes of JSON, more than 16,777,216"),
    ],
)
def test_a_result_the_store_cannot_hold_fails_the_attempt(app: App, kind: str, reason: str) -> None:
    bad = submit(app, "bad_result", parameters={"kind": kind})
    good = ok_job(app)
    run_burst(app)
    job = app.jobs.get(bad)
    assert (job.state, job.result) == (JobState.FAILED, None)
    assert job.status_reason.startswith(reason), job.status_reason
    assert app.jobs.get(good).state is JobState.SUCCEEDED


def test_a_result_nested_hundreds_deep_is_stored_and_read_back(app: App) -> None:
    job_id = submit(app, "deep_result", parameters={"depth": "500"})
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED, job.status_reason
    depth, v = 0, job.result
    while v:
        v, depth = v[0], depth + 1
    assert depth == 500


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("snooze-negative", "ValueError: Snooze delay -5 is out of range (0..31622400 s)"),
        ("snooze-inf", "ValueError: Snooze delay inf is out of range (0..31622400 s)"),
        ("retry-huge", "ValueError: Retry delay 1e+300 is out of range (0..31622400 s)"),
        ("changed", "ValueError: Retry delay nan is out of range (0..31622400 s)"),
    ],
)
def test_an_outcome_whose_delay_cannot_be_stored_fails_the_attempt(app: App, kind: str, reason: str) -> None:
    """A negative Snooze re-ran the job at once, 30,000 times in 12 s; an infinite one or a
    Retry of 1e300 s could not be stored, and the worker retried its report forever."""
    bad = submit(app, "bad_outcome", parameters={"kind": kind})
    good = ok_job(app)
    run_burst(app)
    job = app.jobs.get(bad)
    assert (job.state, job.status_reason) == (JobState.FAILED, reason)
    assert job.attempt == 1
    assert app.jobs.get(good).state is JobState.SUCCEEDED


def test_a_reason_with_a_nul_or_a_lone_surrogate_is_stored_escaped(app: App) -> None:
    """PostgreSQL refuses a NUL in text: the exception's message made the report fail."""
    job_id = submit(app, "fail_with_nul")
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.status_reason == "ValueError: bad\\x00byte \\ud800"


def test_a_call_payload_with_args_that_are_no_list_is_refused_at_submit(app: App) -> None:
    """``{"args": "abc"}`` was called as fn("a", "b", "c")."""
    from conveyor import errors

    for payload, field in (({"args": "abc"}, "payload.args"), ({"kwargs": [1]}, "payload.kwargs")):
        for _ in range(2):  # the second takes the lean path of a submission like the first
            with pytest.raises(errors.ValidationError) as exc:
                submit(app, "add", payload=payload)
            assert exc.value.field == field
        ok_job(app)  # makes the next one lean
    assert app.jobs.submit(SubmitRequest(command=["true"], payload={"args": "abc"})).job.id


def test_a_finish_the_store_refuses_fails_that_attempt_alone(app: App) -> None:
    """Fault injection: the store refuses to record one job's success (as it refused an int
    it could not print). The batch is reported one finish at a time, that job's attempt as a
    failure saying why, and the worker goes on."""
    bad, good = ok_job(app), ok_job(app)
    store = app.store
    real_many, real_claim = store.job_finish_many, store.job_finish_and_claim

    def refuse(batch: Any) -> None:
        if any(f.job_id == bad and f.kind.value == "SUCCEEDED" for f in batch):
            raise ValueError("cannot encode this")

    def finish_many(batch: Any, now: Any) -> Any:
        refuse(batch)
        return real_many(batch, now)

    def finish_and_claim(batch: Any, req: Any, now: Any) -> Any:
        refuse(batch)
        return real_claim(batch, req, now)

    store.job_finish_many = finish_many  # type: ignore[method-assign, assignment]
    store.job_finish_and_claim = finish_and_claim  # type: ignore[method-assign, assignment]
    try:
        run_burst(app)
    finally:
        store.job_finish_many = real_many  # type: ignore[method-assign]
        store.job_finish_and_claim = real_claim  # type: ignore[method-assign]
    job = app.jobs.get(bad)
    assert (job.state, job.status_reason) == (
        JobState.FAILED,
        "worker error: the outcome could not be recorded: ValueError: cannot encode this",
    )
    assert app.jobs.get(good).state is JobState.SUCCEEDED
