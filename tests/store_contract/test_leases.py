"""Leases: renewal, expiry, the built-in reaper."""

from __future__ import annotations

from datetime import timedelta

from conveyor.clock import FrozenClock
from conveyor.model import JobState, OutcomeKind
from conveyor.store import Store

from .helpers import claim, claim_one, finish, get, insert, insert_one, new, retrying, worker


def test_lease_renew_extends_the_leases_the_worker_owns(store: Store, clock: FrozenClock) -> None:
    insert(store, clock.now(), new(), new(), new())
    mine = claim(store, clock.now(), "w1", limit=2)
    [theirs] = claim(store, clock.now(), "w2")
    clock.advance(20)
    status = store.lease_renew("w1", 60, clock.now())
    assert status.owned == {j.id for j in mine}
    assert status.terminate == frozenset()
    for j in mine:
        assert get(store, j.id).lease_expires_at == clock.now() + timedelta(seconds=60)
    assert get(store, theirs.id).lease_expires_at == theirs.lease_expires_at


def test_lease_renew_of_a_worker_without_jobs_owns_nothing(store: Store, clock: FrozenClock) -> None:
    status = store.lease_renew("idle", 30, clock.now())
    assert status.owned == frozenset() and status.terminate == frozenset()


def test_lease_renew_no_longer_lists_finished_jobs(store: Store, clock: FrozenClock) -> None:
    insert(store, clock.now(), new(), new())
    a, b = claim(store, clock.now())
    finish(store, clock.now(), a)
    assert store.lease_renew("w1", 30, clock.now()).owned == {b.id}


def test_lease_renew_is_the_worker_heartbeat(store: Store, clock: FrozenClock) -> None:
    store.worker_register(worker("w1", "default", clock.now()))
    clock.advance(120)
    assert store.worker_list(clock.now()) == []
    store.lease_renew("w1", 30, clock.now())
    [info] = store.worker_list(clock.now())
    assert info.id == "w1" and info.heartbeat_at == clock.now()


def test_expired_lease_is_retried_with_reason_worker_lost(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=retrying(3, delay=5)))
    job = claim_one(store, clock.now(), lease=30)
    clock.advance(29)
    assert store.job_rescue_expired(clock.now()) == []
    clock.advance(2)
    assert store.job_rescue_expired(clock.now()) == [job.id]
    rescued = get(store, job.id)
    assert rescued.state is JobState.SUBMITTED
    assert rescued.status_reason.startswith("attempt 1 failed: worker lost; retry 2 of 3")
    assert rescued.lease_expires_at is None
    [attempt] = store.job_attempts(job.id)
    assert attempt.reason == "worker lost" and attempt.stopped_at == clock.now()
    assert store.job_rescue_expired(clock.now()) == []  # idempotent


def test_expired_lease_without_attempts_left_fails_with_worker_lost(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now())
    job = claim_one(store, clock.now(), lease=10)
    clock.advance(11)
    assert store.job_rescue_expired(clock.now()) == [job.id]
    done = get(store, job.id)
    assert done.state is JobState.FAILED and "worker lost" in done.status_reason


def test_a_lost_worker_cannot_finish_the_rescued_attempt(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=retrying(3)))
    job = claim_one(store, clock.now(), lease=10)
    clock.advance(11)
    store.job_rescue_expired(clock.now())
    before = get(store, job.id)
    assert not finish(store, clock.now(), job)
    assert get(store, job.id) == before


def test_a_renewed_lease_is_never_rescued_however_long_the_job_runs(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now())
    job = claim_one(store, clock.now(), lease=30)
    for _ in range(20):  # ten minutes of a healthy worker renewing every 30 s
        clock.advance(30)
        assert store.lease_renew("w1", 30, clock.now()).owned == {job.id}
        assert store.job_rescue_expired(clock.now()) == []
    assert get(store, job.id).state is JobState.RUNNING
    assert finish(store, clock.now(), job)


def test_rescue_only_takes_the_expired_leases(store: Store, clock: FrozenClock) -> None:
    insert(store, clock.now(), new(), new())
    [short] = claim(store, clock.now(), "w1", limit=1, lease=10)
    [long] = claim(store, clock.now(), "w2", limit=1, lease=100)
    clock.advance(50)
    assert store.job_rescue_expired(clock.now()) == [short.id]
    assert get(store, long.id).state is JobState.RUNNING


def test_rescue_respects_its_limit(store: Store, clock: FrozenClock) -> None:
    insert(store, clock.now(), *[new() for _ in range(5)])
    claim(store, clock.now(), lease=1)
    clock.advance(2)
    first = store.job_rescue_expired(clock.now(), limit=3)
    assert len(first) == 3
    assert len(store.job_rescue_expired(clock.now(), limit=3)) == 2


def test_an_expired_lease_of_a_job_asked_to_terminate_fails_without_retry(
    store: Store, clock: FrozenClock
) -> None:
    insert_one(store, clock.now(), new(spec=retrying(3)))
    job = claim_one(store, clock.now(), lease=10)
    store.job_terminate(job.id, "", clock.now())
    clock.advance(11)
    assert store.job_rescue_expired(clock.now()) == [job.id]
    done = get(store, job.id)
    assert done.state is JobState.FAILED and done.status_reason.startswith("terminated")
    assert not finish(store, clock.now(), job, OutcomeKind.FAILED)
