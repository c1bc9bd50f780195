"""A worker's batch in one transaction: finishes exactly as ``job_finish_many``, then a claim
exactly as ``job_claim``. Also: a new job is returned exactly as the store keeps it, and
due jobs are promoted as soon as the store clock passes their run time."""

from __future__ import annotations

from datetime import timedelta, timezone

from conveyor.clock import FrozenClock
from conveyor.model import (
    ClaimRequest,
    ComputeEnvironment,
    DefinitionSpec,
    Finish,
    JobState,
    OutcomeKind,
    Queue,
)
from conveyor.store import Store, open_store

from .helpers import CMD, FN, claim, claim_one, get, insert, insert_one, job_states_seen, new, retrying


def _req(limit: int, worker: str = "w1", env: str = "default") -> ClaimRequest:
    return ClaimRequest(worker, env, None, limit, 30.0)


def test_finish_and_claim_applies_finishes_then_claims(store: Store, clock: FrozenClock) -> None:
    a, b, c = insert(store, clock.now(), new(), new(spec=retrying(3)), new())
    ja, jb = claim(store, clock.now(), limit=2)
    clock.advance(2)
    stale = Finish(c.id, 1, "w1", OutcomeKind.SUCCEEDED)  # never claimed: not applied
    applied, jobs = store.job_finish_and_claim(
        [
            Finish(ja.id, ja.attempt, "w1", OutcomeKind.SUCCEEDED, result={"n": 1}),
            Finish(jb.id, jb.attempt, "w1", OutcomeKind.FAILED, "boom", exit_code=1),
            stale,
        ],
        _req(5),
        clock.now(),
    )
    assert applied == [True, True, False]
    done = get(store, a.id)
    assert done.state is JobState.SUCCEEDED and done.result == {"n": 1} and done.finished_at == clock.now()
    # b was retried at once (delay 0): the claim in the same transaction sees it, after c (FIFO)
    assert [j.id for j in jobs] == [b.id, c.id]
    assert [j.attempt for j in jobs] == [2, 1]
    assert all(j.state is JobState.RUNNING and j.worker_id == "w1" for j in jobs)
    assert job_states_seen(store, a.id) == ["RUNNABLE", "RUNNING", "SUCCEEDED"]
    assert job_states_seen(store, b.id) == ["RUNNABLE", "RUNNING", "RUNNABLE", "RUNNING"]
    assert [at.number for at in store.job_attempts(b.id)] == [1, 2]


def test_finish_and_claim_claims_capacity_the_finishes_freed(store: Store, clock: FrozenClock) -> None:
    store.environment_put(ComputeEnvironment("small", 1.0, None), clock.now())
    store.queue_put(Queue("q", environments=("small",)), clock.now())
    first, second = insert(store, clock.now(), new("q"), new("q"))
    [running] = claim(store, clock.now(), env="small", limit=5)
    assert running.id == first.id  # one vCPU: one job at a time
    applied, jobs = store.job_finish_and_claim(
        [Finish(running.id, running.attempt, "w1", OutcomeKind.SUCCEEDED)], _req(5, env="small"), clock.now()
    )
    assert applied == [True]
    assert [j.id for j in jobs] == [second.id]


def test_finish_and_claim_releases_dependants_and_claims_them(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now())
    child = insert_one(store, clock.now(), new(deps=(parent.id,)))
    job = claim_one(store, clock.now())
    applied, jobs = store.job_finish_and_claim(
        [Finish(job.id, job.attempt, "w1", OutcomeKind.SUCCEEDED)], _req(1), clock.now()
    )
    assert applied == [True]
    assert [j.id for j in jobs] == [child.id]


def test_finish_and_claim_with_nothing_to_claim_only_finishes(store: Store, clock: FrozenClock) -> None:
    insert(store, clock.now(), new(), new())
    job = claim_one(store, clock.now())
    applied, jobs = store.job_finish_and_claim(
        [Finish(job.id, job.attempt, "w1", OutcomeKind.SUCCEEDED)], _req(0), clock.now()
    )
    assert applied == [True] and jobs == []
    assert get(store, job.id).state is JobState.SUCCEEDED
    assert len(claim(store, clock.now(), limit=5)) == 1


def test_finish_and_claim_leaves_a_terminate_request_to_the_slow_path(
    store: Store, clock: FrozenClock
) -> None:
    insert_one(store, clock.now())
    job = claim_one(store, clock.now())
    store.job_terminate(job.id, "stop", clock.now())
    applied, _ = store.job_finish_and_claim(
        [Finish(job.id, job.attempt, "w1", OutcomeKind.SUCCEEDED)], _req(1), clock.now()
    )
    assert applied == [True]
    done = get(store, job.id)
    assert done.state is JobState.FAILED and done.status_reason.startswith("terminated")


def test_inserted_jobs_equal_what_the_store_gives_back(store: Store, clock: FrozenClock) -> None:
    spec = DefinitionSpec(
        function="tasks:work", vcpus=2, memory_mb=64, parameters={"x": "1"}, timeout_seconds=5
    )
    later = (clock.now() + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=2)))
    parent = insert_one(store, clock.now())
    jobs = insert(
        store,
        clock.now(),
        new(),
        new("default", spec, payload={"a": (1, 2), "b": {"c": 1.5}}, tags=("x", "y"), priority=3),
        new(run_at=later, name="later", parent_id=parent.id),
        new(payload="text", payload_ref=None),
    )  # no keys, dependencies or arrays: a backend may take a fast path
    jobs += insert(
        store,
        clock.now(),
        new(deps=(parent.id,), payload=[1, "two", None]),
        new(unique_key="k", unique_ttl_seconds=60.0, idempotency_key="i"),
        new(spec=spec, payload={"a": (1, 2)}, tags=("z",), run_at=later),
    )
    for job in [parent, *jobs]:
        assert job == get(store, job.id)
    assert jobs[2].state is JobState.SUBMITTED and jobs[4].state is JobState.PENDING


def test_due_job_is_promoted_as_soon_as_the_clock_passes_it(store: Store, clock: FrozenClock) -> None:
    assert claim(store, clock.now()) == []  # a promotion ran just now
    job = insert_one(store, clock.now(), new(run_at=clock.now() + timedelta(milliseconds=20)))
    assert claim(store, clock.now()) == []
    clock.advance(0.02)
    [got] = claim(store, clock.now())
    assert got.id == job.id


def test_due_job_from_another_store_is_promoted_soon(store: Store, clock: FrozenClock, db_url: str) -> None:
    other = open_store(db_url)
    try:
        assert claim(store, clock.now()) == []
        job = insert_one(other, clock.now(), new(run_at=clock.now() + timedelta(seconds=1)))
        clock.advance(1)
        [got] = claim(store, clock.now())
        assert got.id == job.id
    finally:
        other.close()


def test_finish_and_claim_reports_finishes_of_any_kind_like_finish_many(
    store: Store, clock: FrozenClock
) -> None:
    a, b = insert(store, clock.now(), new(spec=FN), new(spec=FN))
    ja, jb = claim(store, clock.now(), limit=2)
    applied, jobs = store.job_finish_and_claim(
        [
            Finish(ja.id, ja.attempt, "w1", OutcomeKind.CANCEL, "no longer needed"),
            Finish(jb.id, jb.attempt, "w1", OutcomeKind.SNOOZE, delay_seconds=60),
        ],
        _req(5),
        clock.now(),
    )
    assert applied == [True, True] and jobs == []
    assert get(store, a.id).state is JobState.CANCELLED
    assert get(store, b.id).state is JobState.SUBMITTED
    clock.advance(60)
    assert [j.id for j in claim(store, clock.now())] == [b.id]


def test_claimed_jobs_equal_what_the_store_gives_back(store: Store, clock: FrozenClock) -> None:
    spec = DefinitionSpec(function="tasks:work", parameters={"x": "1"}, timeout_seconds=5)
    parent = insert_one(store, clock.now(), new(priority=5))
    insert(
        store,
        clock.now(),
        new(payload={"a": [1, 2]}, tags=("x", "y"), priority=2, name="n", parent_id=parent.id),
        new(spec=spec, payload="text"),
        new(spec=retrying(3), deps=(parent.id,)),
        new(spec=CMD, unique_key="k", idempotency_key="i"),
        new(array_size=2),
    )
    clock.advance(1)
    first = claim(store, clock.now(), limit=1)
    assert first[0].id == parent.id and first == [get(store, parent.id)]
    clock.advance(1)
    # the parent succeeds with a result; the dependant is released and claimed in the same batch
    applied, jobs = store.job_finish_and_claim(
        [Finish(parent.id, 1, "w1", OutcomeKind.SUCCEEDED, result=[1])], _req(10), clock.now()
    )
    assert applied == [True] and len(jobs) == 6  # three plain jobs, the dependant, two array children
    assert [j.priority for j in jobs] == [2, 0, 0, 0, 0, 0]
    assert [j.id for j in jobs[1:]] == sorted(j.id for j in jobs[1:])
    for job in jobs:
        assert job == get(store, job.id)
    # a retried attempt keeps its first start; the claim's event names the attempt and worker
    dependant = next(j for j in jobs if j.depends_on)
    clock.advance(1)
    _, again = store.job_finish_and_claim(
        [Finish(dependant.id, 1, "w1", OutcomeKind.FAILED, "boom", exit_code=1)], _req(10, "w2"), clock.now()
    )
    assert [j.id for j in again] == [dependant.id]
    assert again[0] == get(store, dependant.id) and again[0].started_at == dependant.started_at
    events = [e.data for e in store.events_list(entity="job", entity_id=str(dependant.id))]
    assert events[-1] == {"from": "RUNNABLE", "to": "RUNNING", "attempt": 2, "worker": "w2"}


def test_a_batch_records_one_event_per_job_in_order(store: Store, clock: FrozenClock) -> None:
    jobs = insert(store, clock.now(), new(), new(), new(priority=1))
    seen = store.events_list()[-1].id
    claimed = claim(store, clock.now(), limit=3)
    assert [j.id for j in claimed] == [jobs[2].id, jobs[0].id, jobs[1].id]
    clock.advance(1)
    store.job_finish_and_claim(
        [Finish(j.id, 1, "w1", OutcomeKind.SUCCEEDED) for j in reversed(claimed)], _req(3), clock.now()
    )
    got = [(e.entity_id, e.data) for e in store.events_list(after_id=seen)]
    started = [
        (str(j.id), {"from": "RUNNABLE", "to": "RUNNING", "attempt": 1, "worker": "w1"}) for j in claimed
    ]
    ended = [(str(j.id), {"from": "RUNNING", "to": "SUCCEEDED", "attempt": 1}) for j in reversed(claimed)]
    assert got == started + ended
    for j in claimed:
        [attempt] = store.job_attempts(j.id)
        assert attempt.stopped_at == clock.now() and attempt.exit_code == 0 and attempt.reason == "succeeded"


def test_a_worker_loop_finishes_and_claims_in_line_run_after_run(store: Store, clock: FrozenClock) -> None:
    """The loop's finish+claim, run again and again on the same connection (on PostgreSQL its
    ``LISTEN`` connection, where the statements are prepared after a few runs and use generic
    plans, planned once): every run finishes exactly its batch and claims the next jobs in
    line (priority, then id), with 200 jobs queued, to the last one."""
    jobs = insert(store, clock.now(), *[new(priority=(i % 3)) for i in range(200)])
    line = sorted(jobs, key=lambda j: (-j.priority, j.id))
    store.wait_for_jobs(0.01)  # the loop waits first: on PostgreSQL, its LISTEN connection
    if store.d.name == "postgres":
        listener = store._local.listener  # type: ignore[attr-defined]
        assert listener.execute("SHOW plan_cache_mode").fetchone()[0] == "force_generic_plan"
    running = claim(store, clock.now(), limit=7)
    seen = [j.id for j in running]
    runs = 0
    while running:
        clock.advance(1)
        applied, running = store.job_finish_and_claim(
            [Finish(j.id, j.attempt, "w1", OutcomeKind.SUCCEEDED) for j in running], _req(7), clock.now()
        )
        assert all(applied)
        seen.extend(j.id for j in running)
        runs += 1
    assert seen == [j.id for j in line]
    assert runs == 29  # 200 jobs, 7 at a time: 28 full batches and the last 4, then none left
    assert {get(store, j.id).state for j in jobs} == {JobState.SUCCEEDED}
