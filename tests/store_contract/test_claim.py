"""Claiming: order, limits, queue/environment rules, capacity, fallback, attempts."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from conveyor.clock import FrozenClock
from conveyor.model import ClaimRequest, ComputeEnvironment, DefinitionSpec, JobState, OutcomeKind, Queue
from conveyor.store import Store, lifecycle, open_store

from .helpers import CMD, FN, claim, claim_one, finish, get, insert, insert_one, new, worker


def _env(store: Store, clock: FrozenClock, name: str, vcpus: float | None, mem: int | None = None) -> None:
    store.environment_put(ComputeEnvironment(name, vcpus, mem), clock.now())


def _queue(store: Store, clock: FrozenClock, name: str, *envs: str, priority: int = 0) -> None:
    store.queue_put(Queue(name, priority=priority, environments=envs or ("default",)), clock.now())


def _spec(vcpus: float, memory_mb: int = 0) -> DefinitionSpec:
    return DefinitionSpec(function="tasks:work", vcpus=vcpus, memory_mb=memory_mb)


def state_is(store: Store, job_id: int, expected: JobState) -> bool:
    return get(store, job_id).state is expected


def test_claim_orders_by_queue_priority_then_job_priority_then_fifo(store: Store, clock: FrozenClock) -> None:
    _queue(store, clock, "urgent", priority=10)
    _queue(store, clock, "bulk", priority=0)
    low1, high, low2, urgent_low, urgent_high = insert(
        store,
        clock.now(),
        new("bulk"),
        new("bulk", priority=5),
        new("bulk"),
        new("urgent"),
        new("urgent", priority=1),
    )
    got = claim(store, clock.now(), limit=10)
    assert [j.id for j in got] == [urgent_high.id, urgent_low.id, high.id, low1.id, low2.id]


def test_queues_of_equal_priority_share_one_order_by_job_priority_then_fifo(
    store: Store, clock: FrozenClock
) -> None:
    _queue(store, clock, "a")
    _queue(store, clock, "b")
    a1, b1, a2, b_high = insert(store, clock.now(), new("a"), new("b"), new("a"), new("b", priority=3))
    got = claim(store, clock.now(), limit=10, queues=("a", "b"))
    assert [j.id for j in got] == [b_high.id, a1.id, b1.id, a2.id]


def test_claim_respects_the_limit(store: Store, clock: FrozenClock) -> None:
    jobs = insert(store, clock.now(), *[new() for _ in range(5)])
    first = claim(store, clock.now(), limit=2)
    assert [j.id for j in first] == [jobs[0].id, jobs[1].id]
    assert claim(store, clock.now(), limit=0) == []
    rest = claim(store, clock.now(), limit=10)
    assert [j.id for j in rest] == [j.id for j in jobs[2:]]
    assert claim(store, clock.now(), limit=10) == []


def test_disabled_queue_is_not_claimed(store: Store, clock: FrozenClock) -> None:
    store.queue_put(Queue("off", enabled=False), clock.now())
    off = insert_one(store, clock.now(), new("off"))
    assert claim(store, clock.now()) == []
    store.queue_put(Queue("off", enabled=True), clock.now())
    assert [j.id for j in claim(store, clock.now())] == [off.id]


def test_disabled_environment_claims_nothing(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now())
    store.environment_put(ComputeEnvironment("default", None, None, enabled=False), clock.now())
    assert claim(store, clock.now()) == []
    store.environment_put(ComputeEnvironment("default", None, None, enabled=True), clock.now())
    assert len(claim(store, clock.now())) == 1


def test_queue_filter_limits_the_claim_to_the_named_queues(store: Store, clock: FrozenClock) -> None:
    _queue(store, clock, "mine")
    _queue(store, clock, "other", priority=10)
    mine = insert_one(store, clock.now(), new("mine"))
    other = insert_one(store, clock.now(), new("other"))
    assert [j.id for j in claim(store, clock.now(), queues=("mine",))] == [mine.id]
    assert state_is(store, other.id, JobState.RUNNABLE)


def test_worker_only_claims_queues_served_by_its_environment(store: Store, clock: FrozenClock) -> None:
    _env(store, clock, "gpu", None)
    _queue(store, clock, "gpu-jobs", "gpu")
    gpu_job = insert_one(store, clock.now(), new("gpu-jobs"))
    cpu_job = insert_one(store, clock.now())
    assert [j.id for j in claim(store, clock.now(), "w-cpu")] == [cpu_job.id]
    assert [j.id for j in claim(store, clock.now(), "w-gpu", env="gpu")] == [gpu_job.id]
    assert claim(store, clock.now(), "w-unknown", env="nowhere") == []


def test_environment_vcpu_limit_holds_across_claims_and_workers(store: Store, clock: FrozenClock) -> None:
    _env(store, clock, "small", 4)
    _queue(store, clock, "q", "small")
    insert(store, clock.now(), *[new("q", _spec(1.5)) for _ in range(6)])
    total = 0.0
    for w in ("w1", "w2", "w3", "w1"):
        total += sum(j.spec.vcpus for j in claim(store, clock.now(), w, env="small", limit=10))
        assert total <= 4
    assert total == 3.0
    usage = store.environment_usage(clock.now())["small"]
    assert usage.used_vcpus == 3.0 and usage.running == 2


def test_environment_memory_limit_holds_across_claims(store: Store, clock: FrozenClock) -> None:
    _env(store, clock, "mem", None, 1000)
    _queue(store, clock, "q", "mem")
    insert(store, clock.now(), *[new("q", _spec(0.1, 300)) for _ in range(5)])
    got = claim(store, clock.now(), "w1", env="mem", limit=2)
    got += claim(store, clock.now(), "w2", env="mem", limit=10)
    assert len(got) == 3
    assert store.environment_usage(clock.now())["mem"].used_memory_mb == 900


def test_finished_jobs_free_their_capacity(store: Store, clock: FrozenClock) -> None:
    _env(store, clock, "small", 2)
    _queue(store, clock, "q", "small")
    insert(store, clock.now(), *[new("q", _spec(2)) for _ in range(2)])
    [first] = claim(store, clock.now(), env="small")
    assert claim(store, clock.now(), env="small") == []
    assert finish(store, clock.now(), first)
    assert len(claim(store, clock.now(), env="small")) == 1


def test_job_too_big_for_free_capacity_is_skipped_while_a_smaller_one_fits(
    store: Store, clock: FrozenClock
) -> None:
    _env(store, clock, "small", 4)
    _queue(store, clock, "q", "small")
    running = insert_one(store, clock.now(), new("q", _spec(3)))
    assert [j.id for j in claim(store, clock.now(), env="small")] == [running.id]
    big, small = insert(store, clock.now(), new("q", _spec(2)), new("q", _spec(1)))
    assert [j.id for j in claim(store, clock.now(), env="small")] == [small.id]
    assert state_is(store, big.id, JobState.RUNNABLE)


def _fallback_setup(store: Store, clock: FrozenClock, spot_vcpus: float | None = 2) -> None:
    _env(store, clock, "spot", spot_vcpus)
    _env(store, clock, "ondemand", None)
    _queue(store, clock, "q", "spot", "ondemand")


def test_fallback_environment_leaves_the_job_to_a_live_first_environment_with_room(
    store: Store, clock: FrozenClock
) -> None:
    _fallback_setup(store, clock)
    store.worker_register(worker("spot-1", "spot", clock.now()))
    store.lease_renew("spot-1", 30, clock.now())
    job = insert_one(store, clock.now(), new("q"))
    assert claim(store, clock.now(), "od-1", env="ondemand") == []
    got = claim_one(store, clock.now(), "spot-1", env="spot")
    assert got.id == job.id and got.compute_environment == "spot"


def test_fallback_environment_takes_the_job_when_the_first_is_full(store: Store, clock: FrozenClock) -> None:
    _fallback_setup(store, clock, spot_vcpus=1)
    store.worker_register(worker("spot-1", "spot", clock.now()))
    first, second = insert(store, clock.now(), new("q"), new("q"))
    assert [j.id for j in claim(store, clock.now(), "spot-1", env="spot")] == [first.id]
    got = claim_one(store, clock.now(), "od-1", env="ondemand")
    assert got.id == second.id and got.compute_environment == "ondemand"


def test_fallback_environment_takes_the_job_when_the_first_has_no_live_worker(
    store: Store, clock: FrozenClock
) -> None:
    _fallback_setup(store, clock)
    job = insert_one(store, clock.now(), new("q"))
    assert claim_one(store, clock.now(), "od-1", env="ondemand").id == job.id


def test_fallback_environment_takes_the_job_when_the_first_worker_went_silent(
    store: Store, clock: FrozenClock
) -> None:
    _fallback_setup(store, clock)
    store.worker_register(worker("spot-1", "spot", clock.now()))
    job = insert_one(store, clock.now(), new("q"))
    assert claim(store, clock.now(), "od-1", env="ondemand") == []
    # a worker beats every 5 s at most: three beats missed is still live, four is gone
    clock.advance(15)
    assert claim(store, clock.now(), "od-1", env="ondemand") == []
    clock.advance(5.5)
    assert claim_one(store, clock.now(), "od-1", env="ondemand").id == job.id


def test_fallback_environment_takes_the_job_when_the_first_worker_stopped(
    store: Store, clock: FrozenClock
) -> None:
    _fallback_setup(store, clock)
    store.worker_register(worker("spot-1", "spot", clock.now()))
    store.worker_stop("spot-1", clock.now())
    job = insert_one(store, clock.now(), new("q"))
    assert claim_one(store, clock.now(), "od-1", env="ondemand").id == job.id


def test_fallback_environment_takes_the_job_when_no_worker_of_the_first_serves_its_queue(
    store: Store, clock: FrozenClock
) -> None:
    """The spot worker serves another queue only: it would never take the job."""
    _fallback_setup(store, clock)
    _queue(store, clock, "other", "spot")
    store.worker_register(replace(worker("spot-1", "spot", clock.now()), queues=("other",)))
    job = insert_one(store, clock.now(), new("q"))
    assert claim_one(store, clock.now(), "od-1", env="ondemand").id == job.id


def test_fallback_environment_takes_the_job_when_the_first_workers_slots_are_all_taken(
    store: Store, clock: FrozenClock
) -> None:
    """Spot has vCPUs to spare, but its one worker runs as many jobs as it may (concurrency 1)."""
    _fallback_setup(store, clock, spot_vcpus=8)
    store.worker_register(replace(worker("spot-1", "spot", clock.now()), concurrency=1))
    first, second = insert(store, clock.now(), new("q"), new("q"))
    assert [j.id for j in claim(store, clock.now(), "spot-1", env="spot", limit=1)] == [first.id]
    got = claim_one(store, clock.now(), "od-1", env="ondemand")
    assert got.id == second.id and got.compute_environment == "ondemand"


def test_fractional_vcpus_fill_an_environment_exactly(store: Store, clock: FrozenClock) -> None:
    """0.3 - 0.1 - 0.1 is 0.09999999999999998 in floating point: the third job of 0.1 fits."""
    _env(store, clock, "tenths", 0.3)
    _queue(store, clock, "q", "tenths")
    jobs = insert(store, clock.now(), *(new("q", _spec(0.1)) for _ in range(4)))
    got = [j.id for j in claim(store, clock.now(), env="tenths", limit=2)]
    got += [j.id for j in claim(store, clock.now(), "w-2", env="tenths", limit=2)]
    assert got == [j.id for j in jobs[:3]]


def test_function_jobs_go_straight_to_running(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=FN))
    job = claim_one(store, clock.now())
    assert job.state is JobState.RUNNING
    assert job.worker_id == "w1" and job.attempt == 1 and job.attempts_counted == 1
    assert job.started_at == clock.now()
    assert job.lease_expires_at == clock.now() + timedelta(seconds=30)
    assert job.compute_environment == "default"


def test_command_jobs_start_and_mark_running_moves_them_to_running(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=CMD))
    job = claim_one(store, clock.now())
    assert job.state is JobState.STARTING
    store.job_mark_running([(job.id, job.attempt, 4321)], clock.now())
    assert state_is(store, job.id, JobState.RUNNING)
    assert store.job_attempts(job.id)[0].pid == 4321
    store.job_mark_running([(job.id, job.attempt, 9)], clock.now())  # again: nothing changes
    assert store.job_attempts(job.id)[0].pid == 4321


def test_mark_running_of_a_stale_attempt_changes_nothing(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now(), new(spec=CMD))
    job = claim_one(store, clock.now())
    store.job_mark_running([(job.id, job.attempt + 1, 1)], clock.now())
    assert state_is(store, job.id, JobState.STARTING)


def test_due_submitted_jobs_are_promoted_by_the_claim(store: Store, clock: FrozenClock) -> None:
    job = insert_one(store, clock.now(), new(run_at=clock.now() + timedelta(seconds=10)))
    assert claim(store, clock.now()) == []
    clock.advance(9)
    assert claim(store, clock.now()) == []
    assert state_is(store, job.id, JobState.SUBMITTED)
    clock.advance(1)
    assert claim_one(store, clock.now()).id == job.id


def test_due_jobs_are_found_through_the_due_index_among_many_delayed_ones(
    store: Store, clock: FrozenClock
) -> None:
    insert(store, clock.now(), *[new() for _ in range(50)])
    with store._write() as tx:  # statistics from before the delayed jobs, as a planner may have
        tx.q("ANALYZE")
    later = [new(run_at=clock.now() + timedelta(hours=1 + i)) for i in range(2000)]
    soon = insert(store, clock.now(), *later, new(run_at=clock.now() + timedelta(seconds=5)))[-1]
    d = store.d
    queries: list[tuple[str, tuple[object, ...]]] = [
        (lifecycle.NEXT_DUE.format(due_index=d.due_index), ()),
        (lifecycle.DUE_JOBS.format(due_index=d.due_index), (d.ts(clock.now()), 10)),
    ]
    if d.name == "postgres":  # the idle claim's guard (postgres._CLAIM_FAST)
        queries.append(
            ("SELECT EXISTS (SELECT 1 FROM jobs WHERE state = 'SUBMITTED' AND run_at <= ?)", (clock.now(),))
        )
    plans = []
    with store._read() as tx:
        for sql, params in queries:
            explain = "EXPLAIN QUERY PLAN " if d.name == "sqlite" else "EXPLAIN "
            plans.append(" ".join(str(v) for row in tx.q(explain + sql, params) for v in dict(row).values()))
    # not every SUBMITTED row through jobs_state_id
    assert all("jobs_due" in plan for plan in plans), plans
    assert all("jobs_state_id" not in plan for plan in plans), plans
    for _ in range(50):
        claim(store, clock.now(), limit=1)
    assert claim(store, clock.now()) == []
    clock.advance(5)
    assert claim_one(store, clock.now()).id == soon.id
    assert claim(store, clock.now()) == []


def test_each_claim_records_an_attempt(store: Store, clock: FrozenClock) -> None:
    insert_one(store, clock.now())
    job = claim_one(store, clock.now(), "w7")
    [attempt] = store.job_attempts(job.id)
    assert attempt.number == 1 and attempt.worker_id == "w7"
    assert attempt.started_at == clock.now() and attempt.stopped_at is None
    assert attempt.compute_environment == "default" and attempt.counted


def test_a_running_attempt_is_read_from_its_job_until_it_ends_with_one_row(
    store: Store, clock: FrozenClock
) -> None:
    insert_one(store, clock.now(), new(spec=CMD))
    started = clock.now()
    [job] = store.job_claim(ClaimRequest("w3", "default", None, 1, 30.0, "host-9", 77), started)
    [running] = store.job_attempts(job.id)
    assert (running.number, running.worker_id, running.host, running.pid) == (1, "w3", "host-9", 77)
    assert running.started_at == started and running.stopped_at is None and running.exit_code is None
    store.job_mark_running([(job.id, job.attempt, 4321)], clock.now())
    assert store.job_attempts(job.id)[0].pid == 4321
    clock.advance(5)
    assert finish(store, clock.now(), job, OutcomeKind.FAILED, exit_code=3)
    [ended] = store.job_attempts(job.id)
    assert (ended.number, ended.worker_id, ended.host, ended.pid) == (1, "w3", "host-9", 4321)
    assert ended.started_at == started and ended.stopped_at == clock.now() and ended.exit_code == 3


def test_an_attempt_opened_before_migration_8_is_completed_not_duplicated(
    store: Store, clock: FrozenClock
) -> None:
    insert(store, clock.now(), new(), new())
    jobs = claim(store, clock.now(), limit=2)
    d = store.d
    with store._write() as tx:
        # what a claim wrote before 0008: an open attempts row, no attempt columns on the job
        for job in jobs:
            tx.x(
                "INSERT INTO attempts (job_id, number, worker_id, host, pid, started_at, compute_environment)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.attempt, "w1", "old-host", 5, d.ts(clock.now()), "default"),
            )
            tx.x(
                "UPDATE jobs SET attempt_host = NULL, attempt_pid = NULL, attempt_started_at = NULL WHERE id = ?",
                (job.id,),
            )
    clock.advance(2)
    assert finish(store, clock.now(), jobs[0])
    assert finish(store, clock.now(), jobs[1], OutcomeKind.FAILED)
    for job, code in zip(jobs, (0, None), strict=True):
        [attempt] = store.job_attempts(job.id)
        assert attempt.host == "old-host" and attempt.stopped_at == clock.now() and attempt.exit_code == code


def test_expired_attempts_are_found_by_the_host_that_ran_them(store: Store, clock: FrozenClock) -> None:
    insert(store, clock.now(), new(), new())
    [a] = store.job_claim(ClaimRequest("w1", "default", None, 1, 30.0, "host-a", 1), clock.now())
    [b] = store.job_claim(ClaimRequest("w2", "default", None, 1, 30.0, "host-b", 2), clock.now())
    assert store.job_expired_attempts("host-a", clock.now()) == []
    clock.advance(31)
    assert store.job_expired_attempts("host-a", clock.now()) == [(a.id, 1, "w1")]
    assert store.job_expired_attempts("host-b", clock.now()) == [(b.id, 1, "w2")]


def test_claimed_jobs_are_not_claimed_again(store: Store, clock: FrozenClock) -> None:
    insert(store, clock.now(), new(), new())
    first = claim(store, clock.now(), "w1", limit=1)
    second = claim(store, clock.now(), "w2", limit=5)
    assert len(first) == 1 and len(second) == 1 and first[0].id != second[0].id


def test_many_jobs_too_big_ahead_do_not_hide_a_small_one_that_fits(store: Store, clock: FrozenClock) -> None:
    _env(store, clock, "small", 4)
    _queue(store, clock, "q", "small")
    insert_one(store, clock.now(), new("q", _spec(3)))
    assert len(claim(store, clock.now(), env="small")) == 1  # 1 vCPU left
    insert(store, clock.now(), *[new("q", _spec(2)) for _ in range(100)])
    small = insert_one(store, clock.now(), new("q", _spec(1)))
    assert [j.id for j in claim(store, clock.now(), env="small", limit=1)] == [small.id]


def test_a_claim_follows_queues_and_environments_changed_since_the_last_claim(
    store: Store, clock: FrozenClock
) -> None:
    # PostgreSQL plans an idle worker's claim from the configuration once (_claim_fast): a
    # change must reach the very next claim
    first = insert_one(store, clock.now())
    assert claim_one(store, clock.now()).id == first.id
    _queue(store, clock, "urgent", priority=10)
    plain, urgent = insert(store, clock.now(), new(), new("urgent"))
    assert claim_one(store, clock.now()).id == urgent.id
    _env(store, clock, "default", 0.5)
    assert claim(store, clock.now()) == []
    _env(store, clock, "default", None)
    store.queue_put(Queue("default", enabled=False), clock.now())
    assert claim(store, clock.now()) == []
    store.queue_put(Queue("default"), clock.now())
    assert claim_one(store, clock.now()).id == plain.id


def test_a_delayed_job_from_another_store_is_promoted_by_a_claim_once_due(
    store: Store, clock: FrozenClock, db_url: str
) -> None:
    # this store object never saw its due time: only the claim's own check finds it
    other = open_store(db_url)
    try:
        assert claim(store, clock.now()) == []
        job = insert_one(other, clock.now(), new(run_at=clock.now() + timedelta(seconds=5)))
        assert claim(store, clock.now()) == []
        clock.advance(5)
        got = claim(store, clock.now())
        assert [j.id for j in got] == [job.id]
        assert state_is(store, job.id, JobState.RUNNING)
    finally:
        other.close()


def test_a_claim_tells_when_the_next_delayed_job_of_another_store_falls_due(
    store: Store, clock: FrozenClock, db_url: str
) -> None:
    # an idle worker waits no longer than Store.next_due: a delayed job submitted elsewhere
    # (a retry's backoff, a snooze) then starts on time, not at the next idle claim
    other = open_store(db_url)
    try:
        assert claim(store, clock.now()) == []
        assert store.next_due() is None
        run_at = clock.now() + timedelta(seconds=30)
        job = insert_one(other, clock.now(), new(run_at=run_at))
        clock.advance(1)  # past the promotion interval, so every backend reads the due time
        assert claim(store, clock.now()) == []
        due = store.next_due()
        assert due is not None and abs((due - run_at).total_seconds()) < 0.001, due
        clock.advance(29)
        assert [j.id for j in claim(store, clock.now())] == [job.id]
        assert store.next_due() is None
    finally:
        other.close()


def test_jobs_left_to_the_first_environment_do_not_hide_one_only_the_fallback_takes(
    store: Store, clock: FrozenClock
) -> None:
    """40 jobs of a queue that spot (with room and a live worker) should take are ahead in
    line of a job of a queue only on-demand serves: on-demand reads past them and takes it."""
    _env(store, clock, "spot", 100)
    _env(store, clock, "ondemand", 4)
    _queue(store, clock, "fb", "spot", "ondemand")
    _queue(store, clock, "od", "ondemand")
    store.worker_register(worker("spot-1", "spot", clock.now()))
    insert(store, clock.now(), *(new("fb") for _ in range(40)))
    mine = insert_one(store, clock.now(), new("od"))
    assert [j.id for j in claim(store, clock.now(), "od-1", env="ondemand", limit=1)] == [mine.id]


def test_a_job_waiting_for_capacity_is_not_overtaken_by_jobs_of_lower_priority(
    store: Store, clock: FrozenClock
) -> None:
    """A 2-vCPU job of a higher-priority queue waits for both vCPUs of its environment: as one
    frees, a 1-vCPU job of a lower-priority queue does not take it (it would, again and again,
    with a steady stream of small jobs); the big job starts once both are free. A job of the
    same priority still fits into what is free."""
    _env(store, clock, "e", 2)
    _queue(store, clock, "lo", "e")
    _queue(store, clock, "hi", "e", priority=10)
    first, second, *more = insert(store, clock.now(), *(new("lo", _spec(1)) for _ in range(5)))
    running = claim(store, clock.now(), env="e", limit=2)
    assert [j.id for j in running] == [first.id, second.id]
    first, second = running
    big = insert_one(store, clock.now(), new("hi", _spec(2)))
    finish(store, clock.now(), first)
    assert claim(store, clock.now(), env="e", limit=2) == []  # one vCPU free: kept for the big job
    finish(store, clock.now(), second)
    [started] = claim(store, clock.now(), env="e", limit=2)
    assert started.id == big.id
    # within one line (queues of equal priority): job priority; the same priority fills in
    _queue(store, clock, "one", "e")
    finish(store, clock.now(), started)
    filler = insert_one(store, clock.now(), new("one", _spec(1), priority=9))
    assert [j.id for j in claim(store, clock.now(), env="e", limit=1)] == [filler.id]
    urgent = insert_one(store, clock.now(), new("one", _spec(2), priority=5))
    peer = insert_one(store, clock.now(), new("one", _spec(1), priority=5))
    assert [j.id for j in claim(store, clock.now(), env="e", limit=3)] == [peer.id]
    assert state_is(store, urgent.id, JobState.RUNNABLE) and state_is(store, more[0].id, JobState.RUNNABLE)
