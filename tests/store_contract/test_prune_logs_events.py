"""Logs, events and retention."""

from __future__ import annotations

import itertools
from datetime import timedelta

from conveyor.clock import FrozenClock
from conveyor.model import DefinitionSpec, JobState, OutcomeKind
from conveyor.store import Store

from .helpers import CMD, claim, claim_one, finish, get, insert, insert_one, job_states_seen, new, retrying


def test_log_read_returns_chunks_in_order(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now())
    store.log_append(job.id, 1, [(2, b"c"), (0, b"a")])
    store.log_append(job.id, 1, [(1, b"b")])
    store.log_append(job.id, 2, [(0, b"second attempt")])
    assert store.log_read(job.id) == [(1, 0, b"a"), (1, 1, b"b"), (1, 2, b"c"), (2, 0, b"second attempt")]
    assert store.log_read(job.id, attempt=1) == [(1, 0, b"a"), (1, 1, b"b"), (1, 2, b"c")]
    assert store.log_read(job.id, attempt=2) == [(2, 0, b"second attempt")]


def test_log_read_after_a_cursor_returns_only_newer_chunks(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now())
    store.log_append(job.id, 1, [(0, b"a"), (1, b"b")])
    store.log_append(job.id, 2, [(0, b"x")])
    assert store.log_read(job.id, after=(1, 0)) == [(1, 1, b"b"), (2, 0, b"x")]
    assert store.log_read(job.id, after=(1, 1)) == [(2, 0, b"x")]
    assert store.log_read(job.id, after=(2, 0)) == []
    assert store.log_read(job.id, attempt=1, after=(1, 0)) == [(1, 1, b"b")]
    store.log_append(job.id, 2, [(1, b"y")])
    assert store.log_read(job.id, after=(2, 0)) == [(2, 1, b"y")]


def test_log_append_ignores_a_duplicate_seq(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now())
    store.log_append(job.id, 1, [(0, b"first")])
    store.log_append(job.id, 1, [(0, b"resent"), (1, b"next")])
    store.log_append(job.id, 1, [])
    assert store.log_read(job.id) == [(1, 0, b"first"), (1, 1, b"next")]


def test_log_keeps_binary_data_intact(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now())
    data = bytes(range(256)) * 4
    store.log_append(job.id, 1, [(0, data)])
    assert store.log_read(job.id) == [(1, 0, data)]


def test_events_list_gives_every_state_change_of_a_job_in_order(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now())
    clock.advance(1)
    claimed = claim_one(store, clock.now())
    clock.advance(1)
    finish(store, clock.now(), claimed)
    events = [e for e in store.events_list(entity="job", entity_id=str(job.id)) if e.type == "job.state"]
    assert [e.data["to"] for e in events] == ["RUNNABLE", "RUNNING", "SUCCEEDED"]
    assert [e.at for e in events] == [
        clock.now() - timedelta(seconds=2),
        clock.now() - timedelta(seconds=1),
        clock.now(),
    ]
    assert [e.id for e in events] == sorted(e.id for e in events)


def test_events_of_a_command_job_with_a_retry(store: Store, clock: FrozenClock) -> None:
    spec = DefinitionSpec(command=CMD.command, retry=retrying(2, delay=5).retry)
    job = insert_one(store, clock.now(), new(spec=spec))
    first = claim_one(store, clock.now())
    store.job_mark_running([(first.id, first.attempt, 1)], clock.now())
    finish(store, clock.now(), first, OutcomeKind.FAILED, reason="boom")
    clock.advance(5)
    second = claim_one(store, clock.now())
    finish(store, clock.now(), second)
    assert job_states_seen(store, job.id) == [
        "RUNNABLE",
        "STARTING",
        "RUNNING",
        "SUBMITTED",
        "RUNNABLE",
        "STARTING",
        "SUCCEEDED",
    ]
    events = [e for e in store.events_list(entity="job", entity_id=str(job.id)) if e.type == "job.state"]
    for before, after in itertools.pairwise(events):
        if "from" in after.data:
            assert after.data["from"] == before.data["to"], after


def test_events_list_pages_with_after_id_and_limit(store: Store, clock: FrozenClock) -> None:
    insert(store, clock.now(), *[new() for _ in range(5)])
    everything = store.events_list(entity="job")
    assert len(everything) == 5
    page = store.events_list(entity="job", limit=2)
    rest = store.events_list(entity="job", after_id=page[-1].id)
    assert page + rest == everything


def test_prune_deletes_old_finished_jobs_with_their_attempts_and_logs(
    store: Store, clock: FrozenClock
) -> None:
    old_done, old_running, old_waiting = insert(store, clock.now(), new(), new(), new())
    finish(store, clock.now(), claim_one(store, clock.now()))
    store.log_append(old_done.id, 1, [(0, b"log")])
    assert claim_one(store, clock.now(), "w2").id == old_running.id
    clock.advance(3600)
    recent = insert_one(store, clock.now(), new(run_at=clock.now() + timedelta(hours=1)))
    store.job_cancel(recent.id, "", clock.now())
    clock.advance(10)
    counts = store.prune(clock.now() - timedelta(minutes=30), clock.now())
    assert counts["jobs"] == 1
    assert store.job_get(old_done.id) is None
    assert store.job_attempts(old_done.id) == []
    assert store.log_read(old_done.id) == []
    assert get(store, old_running.id).state is JobState.RUNNING
    assert get(store, old_waiting.id).state is JobState.RUNNABLE
    assert get(store, recent.id).state is JobState.CANCELLED
    assert counts["events"] > 0
    assert store.events_list(entity="job", entity_id=str(recent.id)) != []


def test_prune_keeps_children_of_an_unfinished_array(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=2))
    a, _ = claim(store, clock.now())
    finish(store, clock.now(), a)
    clock.advance(3600)
    assert store.prune(clock.now(), clock.now())["jobs"] == 0
    assert get(store, a.id).state is JobState.SUCCEEDED
    assert get(store, parent.id).state is JobState.PENDING


def test_prune_works_in_batches(store: Store, clock: FrozenClock) -> None:
    jobs = insert(store, clock.now(), *[new() for _ in range(25)])
    for job in jobs:
        store.job_cancel(job.id, "", clock.now())
    clock.advance(60)
    assert store.prune(clock.now(), clock.now(), batch=10)["jobs"] == 25
    assert store.job_list(limit=100) == []
