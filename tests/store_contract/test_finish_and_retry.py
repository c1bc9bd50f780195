"""Finishing attempts: outcomes, the retry strategy, stale finishes."""

from __future__ import annotations

from datetime import timedelta

from conveyor.clock import FrozenClock
from conveyor.model import (
    DefinitionSpec,
    Finish,
    JobState,
    OutcomeKind,
    RetryAction,
    RetryRule,
    RetryStrategy,
)
from conveyor.store import Store

from .helpers import CMD, claim, claim_one, finish, get, insert, insert_one, new, retrying


def test_succeeded_finish_stores_the_result_and_ends_the_attempt(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now())
    job = claim_one(store, clock.now())
    clock.advance(3)
    assert finish(store, clock.now(), job, result={"rows": 3})
    done = get(store, job.id)
    assert done.state is JobState.SUCCEEDED
    assert done.result == {"rows": 3}
    assert done.finished_at == clock.now()
    assert done.lease_expires_at is None
    [attempt] = store.job_attempts(job.id)
    assert attempt.stopped_at == clock.now() and attempt.exit_code == 0


def test_command_job_may_succeed_straight_from_starting(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=CMD))
    job = claim_one(store, clock.now())
    assert job.state is JobState.STARTING
    assert finish(store, clock.now(), job)
    assert get(store, job.id).state is JobState.SUCCEEDED


def test_failure_without_retries_left_ends_failed(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now())
    job = claim_one(store, clock.now())
    assert finish(store, clock.now(), job, OutcomeKind.FAILED, reason="boom", exit_code=2)
    done = get(store, job.id)
    assert done.state is JobState.FAILED and "boom" in done.status_reason
    assert done.finished_at == clock.now()
    [attempt] = store.job_attempts(job.id)
    assert attempt.exit_code == 2 and attempt.reason == "boom"


def test_failure_with_attempts_left_is_scheduled_again_with_a_reason(
    store: Store, clock: FrozenClock
) -> None:
    insert_one(store, clock.now(), new(spec=retrying(3, delay=10)))
    job = claim_one(store, clock.now())
    assert finish(store, clock.now(), job, OutcomeKind.FAILED, reason="boom", exit_code=1)
    again = get(store, job.id)
    assert again.state is JobState.SUBMITTED
    assert again.run_at is not None and again.run_at > clock.now()
    assert again.status_reason.startswith("attempt 1 failed: boom; retry 2 of 3")
    assert again.finished_at is None and again.lease_expires_at is None
    assert claim(store, clock.now()) == []
    clock.advance(10)
    second = claim_one(store, clock.now())
    assert second.id == job.id and second.attempt == 2


def test_failure_with_zero_delay_goes_straight_back_to_runnable(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=retrying(3, delay=0)))
    job = claim_one(store, clock.now())
    finish(store, clock.now(), job, OutcomeKind.FAILED, reason="boom")
    again = get(store, job.id)
    assert again.state is JobState.RUNNABLE
    assert "attempt 1 failed" in again.status_reason


def test_job_fails_for_good_after_its_last_attempt(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=retrying(3, delay=0)))
    for number in (1, 2, 3):
        job = claim_one(store, clock.now())
        assert job.attempt == number and job.attempts_counted == number
        assert finish(store, clock.now(), job, OutcomeKind.FAILED, reason=f"boom {number}")
    done = get(store, job.id)
    assert done.state is JobState.FAILED
    assert "boom 3" in done.status_reason and "3 of 3" in done.status_reason
    assert [a.reason for a in store.job_attempts(job.id)] == ["boom 1", "boom 2", "boom 3"]
    assert claim(store, clock.now()) == []


def test_exponential_backoff_grows_between_attempts(store: Store, clock: FrozenClock) -> None:
    spec = DefinitionSpec(
        function="tasks:work", retry=RetryStrategy(attempts=4, delay_seconds=10, jitter=False)
    )
    insert_one(store, clock.now(), new(spec=spec))
    delays = []
    for _ in range(3):
        job = claim_one(store, clock.now())
        finish(store, clock.now(), job, OutcomeKind.FAILED, reason="boom")
        run_at = get(store, job.id).run_at
        assert run_at is not None
        delays.append((run_at - clock.now()).total_seconds())
        clock.set(run_at)
    assert delays == [10, 20, 40]


def test_exit_code_rule_exit_stops_retrying(store: Store, clock: FrozenClock) -> None:
    rules = (RetryRule(RetryAction.EXIT, on_exit_code="1"),)
    insert_one(store, clock.now(), new(spec=retrying(3, evaluate_on_exit=rules)))
    job = claim_one(store, clock.now())
    finish(store, clock.now(), job, OutcomeKind.FAILED, reason="bad input", exit_code=1)
    done = get(store, job.id)
    assert done.state is JobState.FAILED and "EXIT" in done.status_reason


def test_exit_code_rule_does_not_apply_to_other_codes(store: Store, clock: FrozenClock) -> None:
    rules = (RetryRule(RetryAction.EXIT, on_exit_code="1"),)
    insert_one(store, clock.now(), new(spec=retrying(3, evaluate_on_exit=rules)))
    job = claim_one(store, clock.now())
    finish(store, clock.now(), job, OutcomeKind.FAILED, reason="flaky", exit_code=137)
    assert get(store, job.id).state is JobState.RUNNABLE


def test_reason_rule_retry_retries_a_lost_worker_and_exit_catches_the_rest(
    store: Store, clock: FrozenClock
) -> None:
    rules = (
        RetryRule(RetryAction.RETRY, on_reason="worker lost*"),
        RetryRule(RetryAction.EXIT, on_reason="*"),
    )
    lost, broken = insert(
        store,
        clock.now(),
        new(spec=retrying(3, evaluate_on_exit=rules)),
        new(spec=retrying(3, evaluate_on_exit=rules)),
    )
    a = claim_one(store, clock.now())
    b = claim_one(store, clock.now())
    clock.advance(31)
    assert sorted(store.job_rescue_expired(clock.now())) == sorted([a.id, b.id])
    assert get(store, lost.id).state is JobState.RUNNABLE
    a2 = claim_one(store, clock.now(), "w2")
    assert finish(store, clock.now(), a2, OutcomeKind.FAILED, reason="bug", exit_code=1)
    assert get(store, a2.id).state is JobState.FAILED
    assert get(store, broken.id).state is JobState.RUNNABLE


def test_retry_outcome_uses_the_requested_delay(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=retrying(3, delay=1)))
    job = claim_one(store, clock.now())
    finish(store, clock.now(), job, OutcomeKind.RETRY, reason="rate limited", delay_seconds=60)
    again = get(store, job.id)
    assert again.state is JobState.SUBMITTED
    assert again.run_at == clock.now() + timedelta(seconds=60)
    assert again.attempts_counted == 1
    assert store.job_attempts(job.id)[0].counted


def test_retry_outcome_without_attempts_left_fails(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now())
    job = claim_one(store, clock.now())
    finish(store, clock.now(), job, OutcomeKind.RETRY, reason="again please", delay_seconds=5)
    assert get(store, job.id).state is JobState.FAILED


def test_snooze_does_not_consume_an_attempt(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now())  # one attempt only: a counted snooze would end it
    job = claim_one(store, clock.now())
    assert finish(store, clock.now(), job, OutcomeKind.SNOOZE, delay_seconds=30)
    snoozed = get(store, job.id)
    assert snoozed.state is JobState.SUBMITTED
    assert snoozed.run_at == clock.now() + timedelta(seconds=30)
    assert snoozed.attempts_counted == 0 and snoozed.attempt == 1
    [attempt] = store.job_attempts(job.id)
    assert not attempt.counted
    clock.advance(30)
    again = claim_one(store, clock.now())
    assert again.attempt == 2 and again.attempts_counted == 1
    assert finish(store, clock.now(), again, OutcomeKind.FAILED, reason="boom")
    assert get(store, job.id).state is JobState.FAILED


def test_snooze_without_delay_is_runnable_at_once(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now())
    job = claim_one(store, clock.now())
    finish(store, clock.now(), job, OutcomeKind.SNOOZE, delay_seconds=0)
    assert get(store, job.id).state is JobState.RUNNABLE


def test_cancel_outcome_ends_cancelled_without_retry(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=retrying(5)))
    job = claim_one(store, clock.now())
    assert finish(store, clock.now(), job, OutcomeKind.CANCEL, reason="nothing to do")
    done = get(store, job.id)
    assert done.state is JobState.CANCELLED and done.status_reason == "nothing to do"
    assert done.finished_at == clock.now()


def test_finish_from_another_worker_is_refused_and_changes_nothing(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now())
    job = claim_one(store, clock.now(), "w1")
    for kind in OutcomeKind:
        assert not finish(store, clock.now(), job, kind, worker="intruder")
    assert get(store, job.id) == job


def test_finish_of_an_old_attempt_is_refused(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=retrying(3)))
    first = claim_one(store, clock.now(), "w1")
    clock.advance(31)
    store.job_rescue_expired(clock.now())
    clock.advance(10)
    second = claim_one(store, clock.now(), "w1")
    assert second.attempt == 2
    for kind in (OutcomeKind.SUCCEEDED, OutcomeKind.FAILED):
        assert not finish(store, clock.now(), first, kind)
    assert get(store, first.id) == second
    assert finish(store, clock.now(), second)


def test_finishing_twice_is_idempotent(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now())
    job = claim_one(store, clock.now())
    assert finish(store, clock.now(), job, result=1)
    done = get(store, job.id)
    events = store.events_list()
    clock.advance(5)
    assert not finish(store, clock.now(), job, result=2)
    assert not finish(store, clock.now(), job, OutcomeKind.FAILED)
    assert get(store, job.id) == done
    assert store.events_list() == events


def test_a_batch_of_finishes_reports_each_one(store: Store, clock: FrozenClock) -> None:
    insert(store, clock.now(), new(), new(), new())
    a, b, c = claim(store, clock.now())
    got = store.job_finish_many(
        [
            Finish(a.id, a.attempt, "w1", OutcomeKind.SUCCEEDED, result="a"),
            Finish(b.id, b.attempt, "w1", OutcomeKind.FAILED, reason="no"),
            Finish(c.id, c.attempt, "other", OutcomeKind.SUCCEEDED),
        ],
        clock.now(),
    )
    assert got == [True, True, False]
    assert [get(store, j.id).state for j in (a, b, c)] == [
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.RUNNING,
    ]
    assert get(store, a.id).result == "a"
