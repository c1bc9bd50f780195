"""A job's history on both backends: its events in order, paged by id, and every state change
after the job's creation saying which state it left ("from")."""

from __future__ import annotations

import itertools
from datetime import timedelta

from conveyor.clock import FrozenClock
from conveyor.model import JobState, OutcomeKind
from conveyor.scheduling import Overlap
from conveyor.store import Store

from .helpers import claim_one, finish, get, insert, insert_one, new, retrying
from .test_schedules import MIN, create


def _changes(store: Store, job_id: int) -> list[dict[str, object]]:
    return [
        e.data
        for e in store.events_list(entity="job", entity_id=str(job_id), limit=10_000)
        if e.type == "job.state"
    ]


def assert_history_chains(store: Store, *job_ids: int) -> None:
    """The first event creates the job (no "from"); each later one leaves the state the one
    before it entered."""
    for job_id in job_ids:
        changes = _changes(store, job_id)
        assert changes and "from" not in changes[0], (job_id, changes)
        for before, after in itertools.pairwise(changes):
            assert after.get("from") == before["to"], (job_id, changes)


def test_one_jobs_events_page_by_id_among_other_jobs(store: Store, clock: FrozenClock) -> None:
    job, other = insert(store, clock.now(), new(), new())
    for _ in range(3):  # the other job's events interleave with this one's
        clock.advance(1)
        store.job_cancel(job.id, "", clock.now())
        store.job_cancel(other.id, "", clock.now())
        store.job_retry(job.id, clock.now())
        store.job_retry(other.id, clock.now())
    everything = store.events_list(entity="job", entity_id=str(job.id))
    assert [e.entity_id for e in everything] == [str(job.id)] * 7
    assert [e.id for e in everything] == sorted(e.id for e in everything)
    assert [e.at for e in everything] == sorted(e.at for e in everything)
    pages = []
    after = 0
    while page := store.events_list(after, 3, entity="job", entity_id=str(job.id)):
        pages.append(page)
        after = page[-1].id
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e for p in pages for e in p] == everything
    assert store.events_list(entity="job", entity_id="999999") == []


def test_cancel_terminate_and_retry_by_a_user_record_the_state_they_leave(
    store: Store, clock: FrozenClock
) -> None:
    now = clock.now()
    waiting, delayed, running, terminated = insert(
        store, now, new(), new(run_at=now + timedelta(hours=1)), new(), new()
    )
    store.job_cancel(waiting.id, "", now)
    store.job_terminate(delayed.id, "", now)
    assert claim_one(store, now).id == running.id
    store.job_terminate(running.id, "", now)
    finish(store, now, get(store, running.id), OutcomeKind.FAILED, reason="killed")
    store.job_stop_many([terminated.id], "", now, True)
    assert _changes(store, waiting.id)[-1] == {
        "from": "RUNNABLE",
        "to": "CANCELLED",
        "reason": "cancelled by user",
    }
    assert _changes(store, delayed.id)[-1] == {
        "from": "SUBMITTED",
        "to": "FAILED",
        "reason": "terminated by user",
    }
    for job in (waiting, delayed, running, terminated):
        store.job_retry(job.id, now)
    store.job_stop_many([waiting.id, delayed.id], "bulk", now, False)
    store.job_retry_many([waiting.id, delayed.id], now)
    assert_history_chains(store, waiting.id, delayed.id, running.id, terminated.id)
    assert get(store, delayed.id).state is JobState.RUNNABLE


def test_dependants_and_array_children_record_the_state_they_leave(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    dep = insert_one(store, now)
    dependant = insert_one(store, now, new(deps=(dep.id,)))
    array = insert_one(store, now, new(array_size=2))
    children = [j.id for j in store.job_list(array_parent_id=array.id, limit=10)]
    store.job_cancel(dep.id, "", now)  # the dependant fails naming it
    store.job_cancel(array.id, "", now)  # the children are cancelled, then the parent
    assert get(store, array.id).state is JobState.CANCELLED
    store.job_retry(array.id, now)  # the children run again
    assert_history_chains(store, dep.id, dependant.id, array.id, *children)
    assert _changes(store, children[0])[-1]["from"] == "CANCELLED"


def test_a_released_job_records_the_state_it_leaves(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now(), new(spec=retrying(2)))
    claimed = claim_one(store, clock.now())
    store.job_mark_running([(claimed.id, claimed.attempt, 1)], clock.now())
    assert store.job_release("w1", [(job.id, claimed.attempt)], "shutting down", clock.now()) == [job.id]
    assert _changes(store, job.id)[-1] == {
        "from": "RUNNING",
        "to": "RUNNABLE",
        "reason": "requeued: shutting down",
    }
    assert_history_chains(store, job.id)


def test_a_schedule_replacing_its_previous_fire_records_the_state_it_leaves(
    store: Store, clock: FrozenClock
) -> None:
    create(store, clock.now(), overlap=Overlap.REPLACE)
    clock.advance(MIN)
    store.schedule_fire_due(clock.now())
    [first] = store.job_list(limit=10)
    clock.advance(MIN)
    assert store.schedule_fire_due(clock.now()).jobs == 1
    assert _changes(store, first.id)[-1]["from"] == "RUNNABLE"
    assert_history_chains(store, first.id)
