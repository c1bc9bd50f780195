"""``JobService.submit`` has a path of its own (no batch lists): it must answer, store and
refuse exactly as ``submit_many`` of one does."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from conveyor import errors
from conveyor.app import App
from conveyor.engine.jobs import JobService, Limits, SubmitRequest
from conveyor.model import Job, JobState


def _comparable(job: Job) -> dict[str, object]:
    fields = {f.name: getattr(job, f.name) for f in dataclasses.fields(job)}
    for name in ("id", "created_at", "updated_at", "run_at"):
        del fields[name]
    if job.state is JobState.SUBMITTED:  # "scheduled for <run_at>"
        fields["status_reason"] = str(fields["status_reason"]).split(" 20", 1)[0]
    return fields


@pytest.mark.parametrize(
    "req",
    [
        SubmitRequest(function="m:f", payload={"args": [1]}),
        SubmitRequest(
            command=["echo", "{x}"], parameters={"x": 1}, payload=[1, "é"], priority=-4, tags=["a"]
        ),
        SubmitRequest(function="m:f", name="later", delay_seconds=60, retry=3, vcpus=0.5, timeout_seconds=9),
        SubmitRequest(function="m:f", unique_key="k-{x}", parameters={"x": "1"}),
    ],
)
def test_a_single_submission_answers_and_stores_what_a_batch_of_one_does(
    app: App, req: SubmitRequest
) -> None:
    single = app.jobs.submit(req)
    assert app.jobs.get(single.job.id) == single.job
    if req.unique_key:  # the batch would meet the key the single submission holds
        app.jobs.cancel(single.job.id)
        req = dataclasses.replace(req, unique_key="k2-{x}")
    [batch] = app.jobs.submit_many([req])
    assert (single.existing, batch.existing) == (False, False)
    expected = _comparable(batch.job)
    if req.unique_key:
        expected["unique_key"] = "k-1"
    assert _comparable(single.job) == expected
    if req.delay_seconds:
        assert single.job.state is JobState.SUBMITTED and single.job.run_at is not None
        assert single.job.run_at - single.job.created_at == pytest.approx(
            timedelta(seconds=60), abs=timedelta(seconds=1)
        )


def test_a_single_submission_names_fields_without_a_batch_index(app: App) -> None:
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(SubmitRequest(function="m:f", priority=10**9))
    assert info.value.field == "priority"
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(SubmitRequest(queue="nope", function="m:f"))
    assert (info.value.field, info.value.reason) == ("queue", "queue 'nope' does not exist")
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.submit(SubmitRequest(function="m:f", payload={"x": float("nan")}))
    assert info.value.field == "payload"


def test_a_batch_limit_below_one_refuses_single_submissions_too(app: App) -> None:
    jobs = JobService(app.store, app.clock, app.blobs, Limits(max_batch=0))
    with pytest.raises(errors.ValidationError, match="1 jobs in one batch"):
        jobs.submit(SubmitRequest(function="m:f"))
    assert app.store.queue_counts().get("default", {}) == {}
