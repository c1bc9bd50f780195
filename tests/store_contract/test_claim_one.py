"""``job_claim_one``: run-job claims one named job, whatever the queue's capacity says."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor import errors
from conveyor.clock import FrozenClock
from conveyor.model import DefinitionSpec, JobState, NewJob
from conveyor.store import Store

SPEC = DefinitionSpec(command=("true",))


def _claim(store: Store, job_id: int, clock: FrozenClock) -> object:
    return store.job_claim_one(
        job_id, worker_id="run-job-1", environment=None, lease_seconds=30, host="h", pid=7, now=clock.now()
    )


def test_a_runnable_job_is_claimed_with_a_lease_an_attempt_and_an_event(
    store: Store, clock: FrozenClock
) -> None:
    [res] = store.job_insert_many([NewJob(queue="default", spec=SPEC)], clock.now())
    job = store.job_claim_one(
        res.job.id,
        worker_id="run-job-1",
        environment=None,
        lease_seconds=30,
        host="h",
        pid=7,
        now=clock.now(),
    )
    assert job.state is JobState.STARTING and job.attempt == 1 and job.worker_id == "run-job-1"
    assert job.compute_environment == "default"
    assert job.lease_expires_at == clock.now() + timedelta(seconds=30)
    [attempt] = store.job_attempts(job.id)
    assert (attempt.worker_id, attempt.host, attempt.pid) == ("run-job-1", "h", 7)
    moves = [
        (e.data.get("from"), e.data["to"]) for e in store.events_list(entity="job", entity_id=str(job.id))
    ]
    assert moves == [(None, "RUNNABLE"), ("RUNNABLE", "STARTING")]


def test_a_job_not_yet_due_is_started_now_and_the_promotion_is_recorded(
    store: Store, clock: FrozenClock
) -> None:
    later = clock.now() + timedelta(hours=1)
    [res] = store.job_insert_many([NewJob(queue="default", spec=SPEC, run_at=later)], clock.now())
    assert res.job.state is JobState.SUBMITTED
    _claim(store, res.job.id, clock)
    moves = [
        (e.data.get("from"), e.data["to"]) for e in store.events_list(entity="job", entity_id=str(res.job.id))
    ]
    assert moves == [(None, "SUBMITTED"), ("SUBMITTED", "RUNNABLE"), ("RUNNABLE", "STARTING")]


def test_a_started_finished_or_unknown_job_is_refused_and_nothing_changes(
    store: Store, clock: FrozenClock
) -> None:
    [res] = store.job_insert_many([NewJob(queue="default", spec=SPEC)], clock.now())
    _claim(store, res.job.id, clock)
    with pytest.raises(errors.Conflict, match="is STARTING; only a RUNNABLE or SUBMITTED job can be run"):
        _claim(store, res.job.id, clock)
    assert len(store.job_attempts(res.job.id)) == 1
    with pytest.raises(errors.UnknownJob):
        _claim(store, 999_999, clock)


def test_an_array_parent_is_refused(store: Store, clock: FrozenClock) -> None:
    [res] = store.job_insert_many([NewJob(queue="default", spec=SPEC, array_size=2)], clock.now())
    with pytest.raises(errors.Conflict, match="is an array job"):
        _claim(store, res.job.id, clock)
