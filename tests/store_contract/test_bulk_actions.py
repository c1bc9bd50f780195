"""Bulk user actions: cancel, terminate and retry of many jobs in one transaction, and the
id listing that feeds them. Each job gets what the single action would give it; a job the
action cannot take is reported and left unwritten."""

from __future__ import annotations

from datetime import timedelta

from conveyor.clock import FrozenClock
from conveyor.model import JobState, OutcomeKind
from conveyor.store import Store

from .helpers import claim, claim_one, finish, get, insert_one, new, state


def _events(store: Store, job_id: int) -> int:
    return len(store.events_list(entity="job", entity_id=str(job_id), limit=10_000))


def _running(store: Store, clock: FrozenClock) -> int:
    """A job claimed by a worker (active), inserted and claimed before any other is runnable."""
    job = insert_one(store, clock.now())
    assert claim_one(store, clock.now()).id == job.id
    return job.id


def test_stop_many_cancels_the_waiting_and_reports_the_rest(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    running = _running(store, clock)
    runnable = insert_one(store, now)
    delayed = insert_one(store, now, new(run_at=now + timedelta(hours=1)))
    dependant = insert_one(store, now, new(deps=(delayed.id,)))
    done = insert_one(store, now)
    store.job_cancel(done.id, "", now)
    seen_running = _events(store, running)
    out = store.job_stop_many([runnable.id, delayed.id, running, done.id, 999_999], "cleanup", now, False)
    now_state = state(store, running)
    assert now_state.active
    assert out == [
        (runnable.id, True, ""),
        (delayed.id, True, ""),
        (running, False, f"job {running} is {now_state.value}; use terminate to stop a running job"),
        (done.id, False, ""),
        (999_999, False, "job 999999 does not exist"),
    ]
    for job_id in (runnable.id, delayed.id):
        job = get(store, job_id)
        assert job.state is JobState.CANCELLED and job.status_reason == "cleanup"
        assert job.finished_at == now
    # the dependant of a cancelled job fails naming it, as after a single cancel
    failed = get(store, dependant.id)
    assert failed.state is JobState.FAILED and str(delayed.id) in failed.status_reason
    assert _events(store, running) == seen_running  # left alone: not written
    assert get(store, done.id).status_reason == "cancelled by user"


def test_stop_many_without_a_reason_says_who(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now())
    assert store.job_stop_many([job.id], "", clock.now(), False) == [(job.id, True, "")]
    assert get(store, job.id).status_reason == "cancelled by user"
    other = insert_one(store, clock.now())
    store.job_stop_many([other.id], "", clock.now(), True)
    failed = get(store, other.id)
    assert failed.state is JobState.FAILED and failed.status_reason == "terminated by user"


def test_stop_many_cancels_an_array_job_and_a_dependency_with_its_dependant(
    store: Store, clock: FrozenClock
) -> None:
    now = clock.now()
    array = insert_one(store, now, new(array_size=3))
    children = store.job_ids(array_parent_id=array.id, limit=10)
    first = insert_one(store, now, new(run_at=now + timedelta(hours=1)))
    second = insert_one(store, now, new(deps=(first.id,)))
    out = store.job_stop_many([array.id, first.id, second.id], "", now, False)
    assert out == [(array.id, True, ""), (first.id, True, ""), (second.id, True, "")]
    assert state(store, array.id).terminal
    assert {state(store, c) for c in children} == {JobState.CANCELLED}
    # both asked for: the dependant is cancelled, not failed by its dependency
    assert (state(store, first.id), state(store, second.id)) == (JobState.CANCELLED, JobState.CANCELLED)
    assert _events(store, second.id) == 2  # PENDING, CANCELLED: one change each


def test_terminate_many_fails_the_waiting_and_flags_the_running(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    running = _running(store, clock)
    waiting = insert_one(store, now)
    out = store.job_stop_many([waiting.id, running], "deploy", now, True)
    assert out == [(waiting.id, True, ""), (running, True, "")]
    failed = get(store, waiting.id)
    assert failed.state is JobState.FAILED and failed.status_reason == "terminated: deploy"
    flagged = get(store, running)
    assert flagged.state.active and flagged.terminate_requested
    assert flagged.status_reason == "terminate requested: deploy"
    # asked twice: nothing more to do
    assert store.job_stop_many([running], "deploy", now, True) == [(running, False, "")]


def test_retry_many_reruns_failed_and_cancelled_and_reports_the_rest(
    store: Store, clock: FrozenClock
) -> None:
    now = clock.now()
    failed = get(store, _running(store, clock))
    assert finish(store, now, failed, OutcomeKind.FAILED)
    assert state(store, failed.id) is JobState.FAILED
    cancelled = insert_one(store, now)
    store.job_cancel(cancelled.id, "", now)
    waiting = insert_one(store, now)
    seen_waiting = _events(store, waiting.id)
    out = store.job_retry_many([failed.id, cancelled.id, waiting.id, 777_777], now)
    assert out == [
        (failed.id, True, ""),
        (cancelled.id, True, ""),
        (waiting.id, False, f"job {waiting.id} is RUNNABLE; only FAILED or CANCELLED jobs can be retried"),
        (777_777, False, "job 777777 does not exist"),
    ]
    for job_id, was in ((failed.id, "FAILED"), (cancelled.id, "CANCELLED")):
        again = get(store, job_id)
        assert again.state is JobState.RUNNABLE and again.status_reason == "retried by user"
        assert again.attempts_counted == 0 and again.finished_at is None
        [event] = [
            e
            for e in store.events_list(entity="job", entity_id=str(job_id), limit=100)
            if e.data.get("reason") == "retried by user"
        ]
        assert event.data == {"from": was, "to": "RUNNABLE", "reason": "retried by user"}
    assert _events(store, waiting.id) == seen_waiting
    # retried jobs run again
    assert {j.id for j in claim(store, now, limit=10)} >= {failed.id, cancelled.id}


def test_retry_many_reruns_an_array_jobs_failed_children(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    array = insert_one(store, now, new(array_size=2))
    store.job_cancel(array.id, "", now)
    assert store.job_retry_many([array.id], now) == [(array.id, True, "")]
    children = store.job_ids(array_parent_id=array.id, limit=10)
    assert state(store, array.id) is JobState.PENDING
    assert {state(store, c) for c in children} == {JobState.RUNNABLE}
    store.job_cancel(array.id, "", now)
    [(_, changed, why)] = store.job_retry_many([children[0]], now)
    assert not changed and why == f"job {children[0]} is a child of array job {array.id}; retry the array job"


def test_retry_many_leaves_a_job_whose_unique_key_was_taken_unwritten(
    store: Store, clock: FrozenClock
) -> None:
    now = clock.now()
    first = insert_one(store, now, new(unique_key="sync:7"))
    store.job_cancel(first.id, "", now)
    holder = insert_one(store, now, new(unique_key="sync:7"))
    [(job_id, changed, why)] = store.job_retry_many([first.id], now)
    assert job_id == first.id and not changed and f"job {holder.id}" in why
    assert state(store, first.id) is JobState.CANCELLED
    # the holder finishes: the key is free, and the retry takes it
    store.job_cancel(holder.id, "", now)
    assert store.job_retry_many([first.id], now) == [(first.id, True, "")]
    assert state(store, first.id) is JobState.RUNNABLE
    # held again by the retried job: a new submission with the key finds it
    [again] = store.job_insert_many([new(unique_key="sync:7")], now)
    assert again.existing and again.job.id == first.id


def test_a_skipped_job_does_not_undo_the_others_in_its_transaction(store: Store, clock: FrozenClock) -> None:
    """A Conflict inside the shared transaction is caught per job: the jobs before and after
    it are still changed, on both backends (PostgreSQL would abort the whole transaction if
    the refusal were an SQL error)."""
    now = clock.now()
    running = _running(store, clock)
    a = insert_one(store, now)
    array = insert_one(store, now, new(array_size=2))  # taken one by one, after the refusal
    out = store.job_stop_many([a.id, running, array.id], "", now, False)
    assert [changed for _, changed, _ in out] == [True, False, True]
    assert state(store, a.id) is JobState.CANCELLED and state(store, array.id).terminal


def test_job_ids_filters_and_pages_like_job_list(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    made = [insert_one(store, now, new(tags=("nightly",) if i % 2 else ())).id for i in range(7)]
    other = insert_one(store, now, new(queue="default")).id
    store.job_cancel(made[0], "", now)
    runnable = store.job_ids(states=(JobState.RUNNABLE,), limit=100)
    assert runnable == sorted([*made[1:], other], reverse=True)
    assert store.job_ids(tag="nightly", limit=100) == sorted(made[1::2], reverse=True)
    first = store.job_ids(states=(JobState.RUNNABLE,), limit=3)
    second = store.job_ids(states=(JobState.RUNNABLE,), before_id=first[-1], limit=3)
    assert first + second == runnable[:6]
    listed = [j.id for j in store.job_list(states=(JobState.RUNNABLE,), limit=100)]
    assert listed == runnable
    assert store.job_queues([made[1], 123_456]) == {made[1]: "default"}
    assert store.job_queues([]) == {}
