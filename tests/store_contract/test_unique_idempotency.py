"""Unique keys ("one sync per client at a time") and idempotency keys ("this submission once")."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import errors
from conveyor.clock import FrozenClock
from conveyor.model import InsertResult, JobState, OutcomeKind
from conveyor.store import Store

from .helpers import claim, claim_one, finish, new, retrying


def _submit(store: Store, clock: FrozenClock, **kw: Any) -> InsertResult:
    [res] = store.job_insert_many([new(**kw)], clock.now())
    return res


def test_second_submission_with_a_held_unique_key_returns_the_existing_job(
    store: Store, clock: FrozenClock
) -> None:
    first = _submit(store, clock, unique_key="sync:7")
    assert not first.existing
    second = _submit(store, clock, unique_key="sync:7", payload={"other": True})
    assert second.existing and second.job.id == first.job.id
    assert "sync:7" in second.reason
    claim_one(store, clock.now())
    third = _submit(store, clock, unique_key="sync:7")
    assert third.existing and third.job.id == first.job.id and third.job.state is JobState.RUNNING
    assert len(store.job_list(limit=10)) == 1


def test_different_unique_keys_do_not_collide(store: Store, clock: FrozenClock) -> None:
    a = _submit(store, clock, unique_key="sync:1")
    b = _submit(store, clock, unique_key="sync:2")
    assert not b.existing and a.job.id != b.job.id


@pytest.mark.parametrize("outcome", ["SUCCEEDED", "FAILED", "CANCELLED", "CANCEL"])
def test_unique_key_is_free_once_the_holder_is_terminal(
    store: Store, clock: FrozenClock, outcome: str
) -> None:
    first = _submit(store, clock, unique_key="k")
    if outcome == "CANCELLED":
        store.job_cancel(first.job.id, "", clock.now())
    else:
        job = claim_one(store, clock.now())
        kind = OutcomeKind.CANCEL if outcome == "CANCEL" else OutcomeKind(outcome)
        finish(store, clock.now(), job, kind)
    second = _submit(store, clock, unique_key="k")
    assert not second.existing and second.job.id != first.job.id


def test_unique_key_is_kept_while_the_holder_waits_for_a_retry(store: Store, clock: FrozenClock) -> None:
    first = _submit(store, clock, unique_key="k", spec=retrying(3, delay=60))
    finish(store, clock.now(), claim_one(store, clock.now()), OutcomeKind.FAILED)
    again = _submit(store, clock, unique_key="k")
    assert again.existing and again.job.id == first.job.id and again.job.state is JobState.SUBMITTED


def test_unique_ttl_keeps_the_key_after_success_until_it_passes(store: Store, clock: FrozenClock) -> None:
    first = _submit(store, clock, unique_key="daily", unique_ttl_seconds=3600)
    finish(store, clock.now(), claim_one(store, clock.now()))
    clock.advance(3599)
    held = _submit(store, clock, unique_key="daily")
    assert held.existing and held.job.id == first.job.id and held.job.state is JobState.SUCCEEDED
    clock.advance(2)
    fresh = _submit(store, clock, unique_key="daily")
    assert not fresh.existing and fresh.job.id != first.job.id


def test_prune_keeps_a_job_whose_unique_key_is_still_held(store: Store, clock: FrozenClock) -> None:
    """Pruning the job released its key early: a TTL past the retention age (14 days by
    default) was cut to it."""
    first = _submit(store, clock, unique_key="daily", unique_ttl_seconds=3600)
    other = _submit(store, clock)
    for job in claim(store, clock.now()):
        finish(store, clock.now(), job)
    clock.advance(600)
    assert store.prune(clock.now(), clock.now())["jobs"] == 1  # the other one only
    assert store.job_get(other.job.id) is None
    held = _submit(store, clock, unique_key="daily")
    assert held.existing and held.job.id == first.job.id
    clock.advance(3001)
    assert store.prune(clock.now(), clock.now())["jobs"] == 1  # the key has expired
    assert not _submit(store, clock, unique_key="daily").existing


@pytest.mark.parametrize("how", ["failed", "cancelled"])
def test_unique_ttl_is_released_at_once_after_failure_or_cancel(
    store: Store, clock: FrozenClock, how: str
) -> None:
    first = _submit(store, clock, unique_key="daily", unique_ttl_seconds=3600)
    if how == "failed":
        finish(store, clock.now(), claim_one(store, clock.now()), OutcomeKind.FAILED)
    else:
        store.job_cancel(first.job.id, "", clock.now())
    again = _submit(store, clock, unique_key="daily")
    assert not again.existing


def test_same_unique_key_twice_in_one_batch_gives_one_job(store: Store, clock: FrozenClock) -> None:
    a, b, c = store.job_insert_many(
        [new(unique_key="k", name="a"), new(unique_key="k", name="b"), new(unique_key="other")], clock.now()
    )
    assert not a.existing and b.existing and not c.existing
    assert b.job.id == a.job.id and b.job.name == "a"
    assert len(store.job_list(limit=10)) == 2


def test_unique_key_of_a_job_that_failed_at_submission_is_not_held(store: Store, clock: FrozenClock) -> None:
    dep = _submit(store, clock)
    store.job_cancel(dep.job.id, "", clock.now())
    doomed = _submit(store, clock, unique_key="k", deps=(dep.job.id,))
    assert doomed.job.state is JobState.FAILED
    assert not _submit(store, clock, unique_key="k").existing


def test_unique_key_of_an_array_job_is_held_until_the_whole_array_ends(
    store: Store, clock: FrozenClock
) -> None:
    array = _submit(store, clock, unique_key="fan", array_size=2)
    a = claim_one(store, clock.now())
    finish(store, clock.now(), a)
    assert _submit(store, clock, unique_key="fan").existing
    finish(store, clock.now(), claim_one(store, clock.now()))
    assert store.job_get(array.job.id) is not None
    assert not _submit(store, clock, unique_key="fan").existing


def test_retry_of_a_job_whose_unique_key_was_taken_is_a_conflict(store: Store, clock: FrozenClock) -> None:
    first = _submit(store, clock, unique_key="k")
    store.job_cancel(first.job.id, "", clock.now())
    _submit(store, clock, unique_key="k")
    with pytest.raises(errors.Conflict):
        store.job_retry(first.job.id, clock.now())


def test_retried_job_holds_its_unique_key_again(store: Store, clock: FrozenClock) -> None:
    first = _submit(store, clock, unique_key="k")
    store.job_cancel(first.job.id, "", clock.now())
    store.job_retry(first.job.id, clock.now())
    again = _submit(store, clock, unique_key="k")
    assert again.existing and again.job.id == first.job.id


def test_idempotency_key_always_returns_the_same_job(store: Store, clock: FrozenClock) -> None:
    first = _submit(store, clock, idempotency_key="req-1")
    assert not first.existing
    assert _submit(store, clock, idempotency_key="req-1").job.id == first.job.id
    finish(store, clock.now(), claim_one(store, clock.now()))
    clock.advance(86_400)
    later = _submit(store, clock, idempotency_key="req-1", payload={"different": 1})
    assert later.existing and later.job.id == first.job.id and later.job.state is JobState.SUCCEEDED
    store.job_insert_many([new(idempotency_key="req-2")], clock.now())
    assert len(store.job_list(limit=10)) == 2


def test_idempotency_key_matches_failed_and_cancelled_jobs_too(store: Store, clock: FrozenClock) -> None:
    first = _submit(store, clock, idempotency_key="req")
    store.job_cancel(first.job.id, "", clock.now())
    again = _submit(store, clock, idempotency_key="req")
    assert again.existing and again.job.state is JobState.CANCELLED


def test_same_idempotency_key_twice_in_one_batch_gives_one_job(store: Store, clock: FrozenClock) -> None:
    a, b = store.job_insert_many([new(idempotency_key="r"), new(idempotency_key="r")], clock.now())
    assert not a.existing and b.existing and a.job.id == b.job.id
    assert b.job.state is JobState.RUNNABLE
    assert len(store.job_list(limit=10)) == 1
