"""Submission: initial states, atomic batches, events, bulk size, id order."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor import errors
from conveyor.clock import FrozenClock
from conveyor.model import JobState, OutcomeKind
from conveyor.store import Store

from .helpers import claim_one, finish, get, insert, insert_one, job_states_seen, new


def test_job_without_run_at_or_dependencies_is_runnable(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now())
    assert job.state is JobState.RUNNABLE
    assert job.attempt == 0 and job.attempts_counted == 0
    assert job.created_at == clock.now()
    assert get(store, job.id) == job


def test_job_with_future_run_at_is_submitted(store: Store, clock: FrozenClock) -> None:
    later = clock.now() + timedelta(minutes=5)
    job = insert_one(store, clock.now(), new(run_at=later))
    assert job.state is JobState.SUBMITTED
    assert job.run_at == later


def test_job_with_past_run_at_is_runnable(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now(), new(run_at=clock.now() - timedelta(seconds=1)))
    assert job.state is JobState.RUNNABLE


def test_job_with_unfinished_dependency_is_pending(store: Store, clock: FrozenClock) -> None:
    a = insert_one(store, clock.now())
    b = insert_one(store, clock.now(), new(deps=(a.id,)))
    assert b.state is JobState.PENDING
    assert b.depends_on == (a.id,)
    assert str(a.id) in b.status_reason


def test_job_with_succeeded_dependency_is_runnable(store: Store, clock: FrozenClock) -> None:
    a = insert_one(store, clock.now())
    finish(store, clock.now(), claim_one(store, clock.now()))
    b = insert_one(store, clock.now(), new(deps=(a.id,)))
    assert b.state is JobState.RUNNABLE


@pytest.mark.parametrize("how", ["failed", "cancelled"])
def test_job_with_failed_or_cancelled_dependency_is_failed_naming_it(
    store: Store, clock: FrozenClock, how: str
) -> None:
    a = insert_one(store, clock.now())
    if how == "failed":
        finish(store, clock.now(), claim_one(store, clock.now()), OutcomeKind.FAILED, reason="boom")
    else:
        store.job_cancel(a.id, "", clock.now())
    b = insert_one(store, clock.now(), new(deps=(a.id,)))
    assert b.state is JobState.FAILED
    assert b.status_reason == f"dependency job {a.id} ended {how.upper()}"
    assert b.finished_at == clock.now()


def test_unknown_dependency_is_rejected_and_nothing_of_the_batch_is_inserted(
    store: Store, clock: FrozenClock
) -> None:
    before = store.job_list(limit=1000)
    events_before = store.events_list(entity="job")
    with pytest.raises(errors.ValidationError) as info:
        store.job_insert_many([new(), new(name="second"), new(deps=(999_999,))], clock.now())
    assert info.value.field == "depends_on"
    assert "999999" in info.value.reason
    assert store.job_list(limit=1000) == before
    assert store.events_list(entity="job") == events_before


def test_every_inserted_job_gets_one_state_event(store: Store, clock: FrozenClock) -> None:
    a, b, c = insert(store, clock.now(), new(), new(run_at=clock.now() + timedelta(hours=1)), new())
    d = insert_one(store, clock.now(), new(deps=(a.id,)))
    for job, expected in ((a, "RUNNABLE"), (b, "SUBMITTED"), (c, "RUNNABLE"), (d, "PENDING")):
        assert job_states_seen(store, job.id) == [expected]


def test_insert_keeps_fields(store: Store, clock: FrozenClock) -> None:
    job = insert_one(
        store,
        clock.now(),
        new(
            name="report",
            payload={"client": 7, "list": [1, 2]},
            priority=5,
            tags=("a", "b"),
            payload_ref="blob://x",
        ),
    )
    assert job.name == "report"
    assert job.payload == {"client": 7, "list": [1, 2]}
    assert job.priority == 5
    assert job.tags == ("a", "b")
    assert job.payload_ref == "blob://x"
    assert job.spec.function == "tasks:work"


def test_bulk_insert_of_5000_jobs_in_one_call(store: Store, clock: FrozenClock) -> None:
    results = store.job_insert_many([new(payload={"i": i}) for i in range(5000)], clock.now())
    assert len(results) == 5000
    assert all(r.job.state is JobState.RUNNABLE and not r.existing for r in results)
    assert [r.job.payload["i"] for r in results] == list(range(5000))
    assert len({r.job.id for r in results}) == 5000
    assert store.queue_counts()["default"]["RUNNABLE"] == 5000


def test_ids_increase_within_a_batch_and_across_batches(store: Store, clock: FrozenClock) -> None:
    first = [j.id for j in insert(store, clock.now(), new(), new(), new())]
    second = [j.id for j in insert(store, clock.now(), new(), new())]
    ids = first + second
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
