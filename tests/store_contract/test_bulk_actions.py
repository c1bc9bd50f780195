"""Bulk user actions: cancel, terminate and retry of many jobs in one transaction, and the
id listing that feeds them. Each job gets what the single action would give it; a job the
action cannot take is reported and left unwritten."""

from __future__ import annotations

from datetime import timedelta

from conveyor.clock import FrozenClock
from conveyor.model import JobState, OutcomeKind
from conveyor.store import Store

from .helpers import claim_one, finish, get, insert_one, new, state


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
    by_id = {job_id: (job, changed, why) for job_id, job, changed, why in out}
    assert [o[0] for o in out] == [runnable.id, delayed.id, running, done.id, 999_999]
    for job_id in (runnable.id, delayed.id):
        job, changed, why = by_id[job_id]
        assert changed and why == "" and job is not None
        assert job.state is JobState.CANCELLED and job.status_reason == "cleanup"
    # the dependant of a cancelled job fails naming it, as after a single cancel
    failed = get(store, dependant.id)
    assert failed.state is JobState.FAILED and str(delayed.id) in failed.status_reason
    job, changed, why = by_id[running]
    now_state = state(store, running)
    assert now_state.active
    assert (
        job is None
        and not changed
        and why == f"job {running} is {now_state.value}; use terminate to stop a running job"
    )
    assert _events(store, running) == seen_running  # left alone: not written
    job, changed, why = by_id[done.id]
    assert job is not None and not changed and why == "" and job.status_reason == "cancelled by user"
    assert by_id[999_999] == (None, False, "job 999999 does not exist")


def test_stop_many_without_a_reason_says_who(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now())
    [(_, cancelled, _, _)] = store.job_stop_many([job.id], "", clock.now(), False)
    assert cancelled is not None and cancelled.status_reason == "cancelled by user"
    other = insert_one(store, clock.now())
    [(_, failed, _, _)] = store.job_stop_many([other.id], "", clock.now(), True)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.status_reason == "terminated by user"


def test_terminate_many_fails_the_waiting_and_flags_the_running(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    running = _running(store, clock)
    waiting = insert_one(store, now)
    out = store.job_stop_many([waiting.id, running], "deploy", now, True)
    assert [(job_id, changed, why) for job_id, _, changed, why in out] == [
        (waiting.id, True, ""),
        (running, True, ""),
    ]
    assert get(store, waiting.id).state is JobState.FAILED
    flagged = get(store, running)
    assert flagged.state.active and flagged.terminate_requested
    # asked twice: nothing more to do
    [(_, _, changed, why)] = store.job_stop_many([running], "deploy", now, True)
    assert not changed and why == ""


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
    assert [(job_id, why) for job_id, _, why in out] == [
        (failed.id, ""),
        (cancelled.id, ""),
        (waiting.id, f"job {waiting.id} is RUNNABLE; only FAILED or CANCELLED jobs can be retried"),
        (777_777, "job 777777 does not exist"),
    ]
    for job_id in (failed.id, cancelled.id):
        again = get(store, job_id)
        assert again.state is JobState.RUNNABLE and again.status_reason == "retried by user"
        assert again.attempts_counted == 0
    assert _events(store, waiting.id) == seen_waiting


def test_retry_many_leaves_a_job_whose_unique_key_was_taken_unwritten(
    store: Store, clock: FrozenClock
) -> None:
    now = clock.now()
    first = insert_one(store, now, new(unique_key="sync:7"))
    store.job_cancel(first.id, "", now)
    holder = insert_one(store, now, new(unique_key="sync:7"))
    [(job_id, job, why)] = store.job_retry_many([first.id], now)
    assert job_id == first.id and job is None and f"job {holder.id}" in why
    assert state(store, first.id) is JobState.CANCELLED
    # the holder finishes: the key is free, and the retry takes it
    store.job_cancel(holder.id, "", now)
    [(_, job, why)] = store.job_retry_many([first.id], now)
    assert why == "" and job is not None and job.state is JobState.RUNNABLE


def test_a_skipped_job_does_not_undo_the_others_in_its_transaction(store: Store, clock: FrozenClock) -> None:
    """A Conflict inside the shared transaction is caught per job: the jobs before and after
    it are still changed, on both backends (PostgreSQL would abort the whole transaction if
    the refusal were an SQL error)."""
    now = clock.now()
    running = _running(store, clock)
    a, b = insert_one(store, now), insert_one(store, now)
    out = store.job_stop_many([a.id, running, b.id], "", now, False)
    assert [changed for _, _, changed, _ in out] == [True, False, True]
    assert (state(store, a.id), state(store, b.id)) == (JobState.CANCELLED, JobState.CANCELLED)


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
