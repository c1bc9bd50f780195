"""A draining worker's steady batches: successes reported and slots refilled while the store
clock barely moves (no promotion due), the case a backend may do in one statement. The
outcome must be exactly the transactional one: results, attempts, events in order, and jobs
with something to settle (unique keys, dependants, terminate requests) or not held any more
handled as ``job_finish_many`` would."""

from __future__ import annotations

import threading
from datetime import timedelta

from conveyor.clock import FrozenClock
from conveyor.model import ClaimRequest, Finish, JobState, OutcomeKind, Queue
from conveyor.store import Store, open_store

from .helpers import claim, get, insert, insert_one, job_states_seen, new


def _req(limit: int, worker: str = "w1", queues: tuple[str, ...] | None = None) -> ClaimRequest:
    return ClaimRequest(worker, "default", queues, limit, 30.0, host="h", pid=7)


def _drain(store: Store, clock: FrozenClock, limit: int) -> list[int]:
    """Claim, then finish and claim in steady batches (the clock 10 ms on each time) until
    nothing is left; the ids claimed, in order."""
    running = claim(store, clock.now(), limit=limit)
    seen = [j.id for j in running]
    while running:
        clock.advance(0.01)
        applied, running = store.job_finish_and_claim(
            [Finish(j.id, j.attempt, "w1", OutcomeKind.SUCCEEDED) for j in running], _req(limit), clock.now()
        )
        assert all(applied)
        seen += [j.id for j in running]
    return seen


def test_steady_batches_finish_with_results_and_claim_in_line_order(store: Store, clock: FrozenClock) -> None:
    jobs = insert(store, clock.now(), *(new(priority=1 if i == 5 else 0) for i in range(8)))
    seen = store.events_list()[-1].id
    first = claim(store, clock.now(), limit=3)
    assert [j.id for j in first] == [jobs[5].id, jobs[0].id, jobs[1].id]
    clock.advance(0.01)
    applied, second = store.job_finish_and_claim(
        [Finish(j.id, j.attempt, "w1", OutcomeKind.SUCCEEDED, result={"i": j.id}) for j in reversed(first)],
        _req(4),
        clock.now(),
    )
    assert applied == [True, True, True]
    assert [j.id for j in second] == [jobs[2].id, jobs[3].id, jobs[4].id, jobs[6].id]
    for job in first:
        done = get(store, job.id)
        assert done.state is JobState.SUCCEEDED and done.result == {"i": job.id}
        assert done.finished_at == clock.now() and done.status_reason == "succeeded"
        [attempt] = store.job_attempts(job.id)
        assert attempt.stopped_at == clock.now() and attempt.exit_code == 0 and attempt.reason == "succeeded"
        assert attempt.worker_id == "w1" and attempt.started_at == job.started_at
    for job in second:
        assert job == get(store, job.id)
        assert job.state is JobState.RUNNING and job.worker_id == "w1" and job.attempt == 1
    got = [(e.entity_id, e.data) for e in store.events_list(after_id=seen)]
    started = [
        (str(j.id), {"from": "RUNNABLE", "to": "RUNNING", "attempt": 1, "worker": "w1"}) for j in first
    ]
    ended = [(str(j.id), {"from": "RUNNING", "to": "SUCCEEDED", "attempt": 1}) for j in reversed(first)]
    restarted = [
        (str(j.id), {"from": "RUNNABLE", "to": "RUNNING", "attempt": 1, "worker": "w1"}) for j in second
    ]
    assert got == started + ended + restarted
    # the last batch: one job left in line
    clock.advance(0.01)
    applied, third = store.job_finish_and_claim(
        [Finish(j.id, j.attempt, "w1", OutcomeKind.SUCCEEDED) for j in second], _req(4), clock.now()
    )
    assert applied == [True] * 4 and [j.id for j in third] == [jobs[7].id]
    assert all(get(store, j.id).state is JobState.SUCCEEDED for j in second)


def test_steady_batch_settles_what_needs_it_and_claims_the_released(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now())
    keyed = insert_one(store, clock.now(), new(unique_key="k"))
    plain = insert_one(store, clock.now())
    stopped = insert_one(store, clock.now())
    child = insert_one(store, clock.now(), new(deps=(parent.id,)))
    running = claim(store, clock.now(), limit=4)
    assert [j.id for j in running] == [parent.id, keyed.id, plain.id, stopped.id]
    store.job_terminate(stopped.id, "stop", clock.now())
    stale = Finish(child.id + 1000, 1, "w1", OutcomeKind.SUCCEEDED)  # no such job
    clock.advance(0.01)
    applied, jobs = store.job_finish_and_claim(
        [stale, *(Finish(j.id, j.attempt, "w1", OutcomeKind.SUCCEEDED) for j in running)],
        _req(4),
        clock.now(),
    )
    assert applied == [False, True, True, True, True]
    assert [j.id for j in jobs] == [child.id]  # released by its parent, claimed in the same call
    assert get(store, parent.id).state is JobState.SUCCEEDED
    assert get(store, plain.id).state is JobState.SUCCEEDED
    done = get(store, stopped.id)
    assert done.state is JobState.FAILED and done.status_reason.startswith("terminated")
    assert get(store, keyed.id).state is JobState.SUCCEEDED
    again = insert_one(store, clock.now(), new(unique_key="k"))  # the key was released
    assert again.id != keyed.id and again.state is JobState.RUNNABLE
    assert job_states_seen(store, child.id) == ["PENDING", "RUNNABLE", "RUNNING"]


def test_steady_batch_of_another_worker_is_not_applied(store: Store, clock: FrozenClock) -> None:
    a, b = insert(store, clock.now(), new(), new())
    [ja] = claim(store, clock.now(), limit=1)
    clock.advance(0.01)
    applied, jobs = store.job_finish_and_claim(
        [Finish(ja.id, ja.attempt, "w2", OutcomeKind.SUCCEEDED)], _req(1, "w2"), clock.now()
    )
    assert applied == [False] and [j.id for j in jobs] == [b.id]
    assert get(store, a.id).state is JobState.RUNNING and get(store, b.id).worker_id == "w2"


def test_steady_batch_claims_only_from_enabled_queues_it_serves(store: Store, clock: FrozenClock) -> None:
    store.queue_put(Queue("other"), clock.now())
    store.queue_put(Queue("off", enabled=False), clock.now())
    store.queue_put(Queue("urgent", priority=5), clock.now())
    done, in_other, in_off = insert(store, clock.now(), new(), new("other"), new("off"))
    [running] = claim(store, clock.now(), limit=1)
    assert running.id == done.id
    clock.advance(0.01)
    applied, jobs = store.job_finish_and_claim(
        [Finish(running.id, running.attempt, "w1", OutcomeKind.SUCCEEDED)],
        _req(5, queues=("default", "off")),
        clock.now(),
    )
    assert applied == [True] and jobs == []
    assert (
        get(store, in_other.id).state is JobState.RUNNABLE
        and get(store, in_off.id).state is JobState.RUNNABLE
    )
    # queues of different priorities: the higher one first
    urgent = insert_one(store, clock.now(), new("urgent"))
    [running] = claim(store, clock.now(), limit=1)
    assert running.id == urgent.id
    applied, jobs = store.job_finish_and_claim(
        [Finish(running.id, running.attempt, "w1", OutcomeKind.SUCCEEDED)], _req(5), clock.now()
    )
    assert applied == [True] and [j.id for j in jobs] == [in_other.id]
    store.queue_put(Queue("other", enabled=False), clock.now())
    applied, jobs = store.job_finish_and_claim(
        [Finish(jobs[0].id, 1, "w1", OutcomeKind.SUCCEEDED)], _req(5), clock.now()
    )
    assert applied == [True] and jobs == []


def test_steady_batches_follow_queue_changes_at_once(store: Store, clock: FrozenClock, db_url: str) -> None:
    jobs = insert(store, clock.now(), *(new() for _ in range(6)))
    other = open_store(db_url)  # a change made by another process
    try:
        running = claim(store, clock.now(), limit=1)
        clock.advance(0.01)

        def batch(limit: int = 1) -> list[int]:
            nonlocal running
            applied, running = store.job_finish_and_claim(
                [Finish(j.id, j.attempt, "w1", OutcomeKind.SUCCEEDED) for j in running],
                _req(limit),
                clock.now(),
            )
            assert all(applied)
            return [j.id for j in running]

        assert batch() == [jobs[1].id]
        other.queue_put(Queue("default", enabled=False), clock.now())
        assert batch() == []
        running = []
        other.queue_put(Queue("default"), clock.now())
        store.queue_put(Queue("side"), clock.now())
        [side] = insert(store, clock.now(), new("side"))
        running = claim(store, clock.now(), limit=1)
        assert [j.id for j in running] == [jobs[2].id]
        assert batch(5) == [jobs[3].id, jobs[4].id, jobs[5].id, side.id]
        assert batch() == []
        assert all(get(store, j.id).state is JobState.SUCCEEDED for j in [*jobs, side])
    finally:
        other.close()


def test_steady_batches_over_queues_of_two_priorities_take_the_higher_first(
    store: Store, clock: FrozenClock
) -> None:
    store.queue_put(Queue("urgent", priority=5), clock.now())
    low = insert(store, clock.now(), *(new() for _ in range(4)))
    high = insert(store, clock.now(), *(new("urgent") for _ in range(3)))
    assert _drain(store, clock, 2) == [j.id for j in high + low]
    assert all(get(store, j.id).state is JobState.SUCCEEDED for j in high + low)


def test_workers_draining_in_steady_batches_run_each_job_once(
    store: Store, clock: FrozenClock, db_url: str
) -> None:
    jobs = insert(store, clock.now(), *(new() for _ in range(240)))
    stores = [store, open_store(db_url), open_store(db_url)]
    ran: list[list[int]] = [[] for _ in stores]

    def drain(i: int) -> None:
        s, worker = stores[i], f"w{i}"
        running = s.job_claim(_req(8, worker), clock.now())
        while running:
            ran[i].extend(j.id for j in running)
            applied, running = s.job_finish_and_claim(
                [Finish(j.id, j.attempt, worker, OutcomeKind.SUCCEEDED, result=j.id) for j in running],
                _req(8, worker),
                clock.now(),
            )
            assert all(applied)

    try:
        threads = [threading.Thread(target=drain, args=(i,)) for i in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        for s in stores[1:]:
            s.close()
    every = sorted(i for r in ran for i in r)
    assert every == [j.id for j in jobs]  # each claimed once, none left behind
    for job in jobs[::17]:
        done = get(store, job.id)
        assert done.state is JobState.SUCCEEDED and done.result == job.id and done.attempt == 1
        assert [a.number for a in store.job_attempts(job.id)] == [1]


def test_a_job_that_becomes_due_during_steady_batches_is_promoted_and_claimed_once(
    store: Store, clock: FrozenClock, db_url: str
) -> None:
    """A delayed job (here submitted through another store object, so this one has no hint of
    it) becomes due while a worker drains in steady batches: it is promoted (with its event)
    and claimed soon — the batches may not skip the promotion for longer than it would wait —
    and exactly once; the batches around it finish and claim as before."""
    plain = insert(store, clock.now(), *(new() for _ in range(40)))
    other = open_store(db_url)
    try:
        [delayed] = insert(other, clock.now(), new(run_at=clock.now() + timedelta(seconds=0.05)))
    finally:
        other.close()
    seen = _drain(store, clock, 4)
    assert sorted(seen) == sorted([j.id for j in plain] + [delayed.id])  # each once, none left
    # due after 5 batches: claimed within the promotion's interval (0.1 s: 10 batches) after that
    assert seen.index(delayed.id) < 4 * 16
    assert job_states_seen(store, delayed.id) == ["SUBMITTED", "RUNNABLE", "RUNNING", "SUCCEEDED"]
    [attempt] = store.job_attempts(delayed.id)
    assert attempt.reason == "succeeded" and attempt.worker_id == "w1"
