"""User actions: cancel, terminate, retry, release (graceful shutdown)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor import errors
from conveyor.clock import FrozenClock
from conveyor.model import JobState, OutcomeKind
from conveyor.store import Store

from .helpers import (
    CMD,
    claim,
    claim_one,
    finish,
    get,
    insert,
    insert_one,
    job_states_seen,
    new,
    retrying,
    state,
    states,
)


def _waiting_jobs(store: Store, clock: FrozenClock) -> dict[str, int]:
    blocker = insert_one(store, clock.now(), new(run_at=clock.now() + timedelta(hours=1)))
    runnable = insert_one(store, clock.now())
    pending = insert_one(store, clock.now(), new(deps=(blocker.id,)))
    return {"SUBMITTED": blocker.id, "RUNNABLE": runnable.id, "PENDING": pending.id}


@pytest.mark.parametrize("waiting", ["SUBMITTED", "RUNNABLE", "PENDING"])
def test_cancel_of_a_waiting_job_cancels_it_once(store: Store, clock: FrozenClock, waiting: str) -> None:
    job_id = _waiting_jobs(store, clock)[waiting]
    assert state(store, job_id).value == waiting
    job, changed = store.job_cancel(job_id, "not needed", clock.now())
    assert changed and job.state is JobState.CANCELLED
    assert job.status_reason == "not needed" and job.finished_at == clock.now()
    again, changed_again = store.job_cancel(job_id, "again", clock.now())
    assert not changed_again and again == job
    assert job_states_seen(store, job_id)[-1] == "CANCELLED"


def test_cancel_without_reason_says_who_cancelled(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now())
    cancelled, _ = store.job_cancel(job.id, "", clock.now())
    assert cancelled.status_reason == "cancelled by user"


def test_cancel_of_an_unknown_job_is_not_found(store: Store, clock: FrozenClock) -> None:
    with pytest.raises(errors.NotFound):
        store.job_cancel(424242, "", clock.now())


@pytest.mark.parametrize("spec", ["function", "command"])
def test_cancel_of_a_running_job_is_a_conflict(store: Store, clock: FrozenClock, spec: str) -> None:
    insert_one(store, clock.now(), new(spec=CMD) if spec == "command" else new())
    job = claim_one(store, clock.now())
    with pytest.raises(errors.Conflict):
        store.job_cancel(job.id, "", clock.now())
    assert get(store, job.id) == job


def test_cancelled_job_is_never_claimed(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now())
    store.job_cancel(job.id, "", clock.now())
    assert claim(store, clock.now()) == []


def test_terminate_of_a_running_job_flags_it_for_its_worker(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=retrying(3)))
    job = claim_one(store, clock.now())
    flagged, changed = store.job_terminate(job.id, "too slow", clock.now())
    assert changed and flagged.state is JobState.RUNNING and flagged.terminate_requested
    assert not store.job_terminate(job.id, "again", clock.now())[1]
    status = store.lease_renew("w1", 30, clock.now())
    assert status.owned == {job.id} and status.terminate == {job.id}


def test_any_finish_of_a_terminated_job_ends_failed_terminated(store: Store, clock: FrozenClock) -> None:
    kinds = list(OutcomeKind)
    insert(store, clock.now(), *[new(spec=retrying(3)) for _ in kinds])
    running = claim(store, clock.now(), limit=len(kinds))
    for job, kind in zip(running, kinds, strict=True):
        store.job_terminate(job.id, "too slow", clock.now())
        assert finish(store, clock.now(), job, kind, reason="killed", delay_seconds=5)
        done = get(store, job.id)
        assert done.state is JobState.FAILED, kind
        assert done.status_reason.startswith("terminated"), (kind, done.status_reason)
        assert not done.terminate_requested and done.lease_expires_at is None
    assert claim(store, clock.now() + timedelta(hours=1)) == []


@pytest.mark.parametrize("waiting", ["SUBMITTED", "RUNNABLE", "PENDING"])
def test_terminate_of_a_waiting_job_fails_it(store: Store, clock: FrozenClock, waiting: str) -> None:
    job_id = _waiting_jobs(store, clock)[waiting]
    job, changed = store.job_terminate(job_id, "stop", clock.now())
    assert changed and job.state is JobState.FAILED
    assert job.status_reason.startswith("terminated") and "stop" in job.status_reason


def test_terminate_of_a_finished_job_changes_nothing(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now())
    job = claim_one(store, clock.now())
    finish(store, clock.now(), job)
    done, changed = store.job_terminate(job.id, "", clock.now())
    assert not changed and done.state is JobState.SUCCEEDED and not done.terminate_requested


def test_finish_after_cancel_of_a_waiting_job_cannot_resurrect_it(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=retrying(3, delay=0)))
    job = claim_one(store, clock.now())
    finish(store, clock.now(), job, OutcomeKind.FAILED, reason="boom")  # back to RUNNABLE
    store.job_cancel(job.id, "", clock.now())
    for kind in OutcomeKind:
        assert not finish(store, clock.now(), job, kind)
    assert state(store, job.id) is JobState.CANCELLED
    assert claim(store, clock.now()) == []


def test_retry_of_a_failed_job_makes_it_runnable_with_fresh_attempts(
    store: Store, clock: FrozenClock
) -> None:
    insert_one(store, clock.now(), new(spec=retrying(2, delay=0)))
    for _ in range(2):
        job = claim_one(store, clock.now())
        finish(store, clock.now(), job, OutcomeKind.FAILED, reason="boom")
    assert state(store, job.id) is JobState.FAILED
    retried = store.job_retry(job.id, clock.now())
    assert retried.state is JobState.RUNNABLE
    assert retried.attempts_counted == 0 and retried.finished_at is None
    again = claim_one(store, clock.now())
    assert again.attempt == 3 and again.attempts_counted == 1
    finish(store, clock.now(), again, OutcomeKind.FAILED, reason="boom")
    assert state(store, job.id) is JobState.RUNNABLE  # a second attempt is left again


def test_retry_of_a_cancelled_job_makes_it_runnable(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now())
    store.job_cancel(job.id, "", clock.now())
    assert store.job_retry(job.id, clock.now()).state is JobState.RUNNABLE


def test_retry_of_a_succeeded_or_running_job_is_a_conflict(store: Store, clock: FrozenClock) -> None:
    insert(store, clock.now(), new(), new())
    a, b = claim(store, clock.now())
    finish(store, clock.now(), a)
    for job in (a, b):
        with pytest.raises(errors.Conflict):
            store.job_retry(job.id, clock.now())
    assert states(store, a.id, b.id) == [JobState.SUCCEEDED, JobState.RUNNING]


def test_retry_of_an_unknown_job_is_not_found(store: Store, clock: FrozenClock) -> None:
    with pytest.raises(errors.NotFound):
        store.job_retry(777, clock.now())


def test_release_puts_a_running_job_back_without_consuming_an_attempt(
    store: Store, clock: FrozenClock
) -> None:
    insert_one(store, clock.now())  # a single attempt: a counted release would lose the job
    job = claim_one(store, clock.now())
    assert store.job_release("w1", [(job.id, job.attempt)], "worker shutting down", clock.now()) == [job.id]
    back = get(store, job.id)
    assert back.state is JobState.RUNNABLE and back.attempts_counted == 0
    assert back.lease_expires_at is None and "worker shutting down" in back.status_reason
    [attempt] = store.job_attempts(job.id)
    assert not attempt.counted and attempt.stopped_at == clock.now()
    assert not finish(store, clock.now(), job)
    again = claim_one(store, clock.now(), "w2")
    assert again.attempt == 2 and again.attempts_counted == 1
    assert finish(store, clock.now(), again, OutcomeKind.FAILED)
    assert state(store, job.id) is JobState.FAILED


def test_release_by_another_worker_or_of_a_stale_attempt_does_nothing(
    store: Store, clock: FrozenClock
) -> None:
    insert_one(store, clock.now())
    job = claim_one(store, clock.now())
    assert store.job_release("w2", [(job.id, job.attempt)], "x", clock.now()) == []
    assert store.job_release("w1", [(job.id, job.attempt + 1)], "x", clock.now()) == []
    assert get(store, job.id) == job


def test_release_of_a_job_asked_to_terminate_terminates_it_instead_of_requeueing(
    store: Store, clock: FrozenClock
) -> None:
    insert_one(store, clock.now(), new(spec=retrying(3)))
    job = claim_one(store, clock.now())
    store.job_terminate(job.id, "stop", clock.now())
    assert store.job_release("w1", [(job.id, job.attempt)], "worker shutting down", clock.now()) == []
    done = get(store, job.id)
    assert done.state is JobState.FAILED and done.status_reason.startswith("terminated")
    assert not done.terminate_requested and done.lease_expires_at is None
    assert claim(store, clock.now()) == []


def test_retry_of_an_array_job_that_failed_before_having_children_is_a_conflict(
    store: Store, clock: FrozenClock
) -> None:
    dep = insert_one(store, clock.now())
    store.job_cancel(dep.id, "", clock.now())
    array = insert_one(store, clock.now(), new(array_size=3, deps=(dep.id,)))
    assert array.state is JobState.FAILED
    with pytest.raises(errors.Conflict):
        store.job_retry(array.id, clock.now())
    assert state(store, array.id) is JobState.FAILED  # not left PENDING with no child to finish it
