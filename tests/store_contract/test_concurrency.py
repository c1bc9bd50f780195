"""Real threads, and several store objects (several connections), racing on the same rows."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import pytest

from conveyor import errors
from conveyor.clock import FrozenClock
from conveyor.model import (
    ClaimRequest,
    ComputeEnvironment,
    DefinitionSpec,
    Finish,
    Job,
    JobState,
    OutcomeKind,
    Queue,
)
from conveyor.store import Store, open_store

from .helpers import claim, get, insert, new, retrying

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")


@pytest.fixture
def other(store: Store) -> Iterator[Store]:
    """A second store object on the same database: its own connections."""
    s = open_store(store.url)
    try:
        yield s
    finally:
        s.close()


def _race(*calls: Callable[[], T]) -> list[T | Exception]:
    """Run the calls at the same moment on their own threads; results (or errors) in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T | Exception:
        barrier.wait()
        try:
            return call()
        except Exception as exc:  # the caller decides which errors are allowed
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _race2(a: Callable[[], A], b: Callable[[], B]) -> tuple[A | Exception, B | Exception]:
    """Two different calls at the same moment; their results (or errors)."""
    ra, rb = _race(a, b)
    return ra, rb  # type: ignore[return-value]  # _race keeps the order of the calls


def test_four_claiming_threads_take_every_job_exactly_once(
    store: Store, other: Store, clock: FrozenClock
) -> None:
    third = open_store(store.url)
    try:
        jobs = insert(store, clock.now(), *[new() for _ in range(2000)])
        stores = [store, store, other, third]  # two threads share a store, two have their own
        now = clock.now()

        def loop(index: int) -> list[int]:
            s = stores[index]
            wid = f"w{index}"
            mine: list[int] = []
            while True:
                got = s.job_claim(ClaimRequest(wid, "default", None, 10, 300), now)
                if not got:
                    return mine
                mine.extend(j.id for j in got)
                assert all(j.worker_id == wid and j.state is JobState.RUNNING for j in got)
                done = s.job_finish_many(
                    [Finish(j.id, j.attempt, wid, OutcomeKind.SUCCEEDED) for j in got], now
                )
                assert all(done)

        results = _race(*[partial(loop, i) for i in range(4)])
        claimed: list[int] = []
        for r in results:
            assert not isinstance(r, Exception), r
            claimed.extend(r)
        assert len(claimed) == len(set(claimed)), "a job was claimed twice"
        assert set(claimed) == {j.id for j in jobs}, "a job was never claimed"
        assert store.queue_counts() == {"default": {"SUCCEEDED": 2000}}
        assert all(len(store.job_attempts(j)) == 1 for j in claimed[::97])
    finally:
        third.close()


def test_terminate_racing_finish_has_exactly_one_winner(
    store: Store, other: Store, clock: FrozenClock
) -> None:
    insert(store, clock.now(), *[new() for _ in range(15)])
    running = claim(store, clock.now(), limit=15)
    for job in running:
        term, fin = _race2(
            partial(store.job_terminate, job.id, "stop", clock.now()),
            partial(
                other.job_finish_many, [Finish(job.id, job.attempt, "w1", OutcomeKind.SUCCEEDED)], clock.now()
            ),
        )
        assert not isinstance(term, Exception) and not isinstance(fin, Exception)
        final = get(store, job.id)
        assert fin == [True]  # the worker still held the attempt either way
        if term[1]:  # terminate came first: the finish is turned into a termination
            assert final.state is JobState.FAILED and final.status_reason.startswith("terminated")
        else:  # the finish came first: nothing left to terminate
            assert final.state is JobState.SUCCEEDED
        assert final.lease_expires_at is None and not final.terminate_requested


def test_cancel_racing_claim_has_exactly_one_winner(store: Store, other: Store, clock: FrozenClock) -> None:
    for _ in range(15):
        [job] = insert(store, clock.now(), new())  # the only runnable job
        cancelled, claimed = _race2(
            partial(store.job_cancel, job.id, "", clock.now()),
            partial(other.job_claim, ClaimRequest("w1", "default", None, 1, 30), clock.now()),
        )
        assert not isinstance(claimed, Exception)
        final = get(store, job.id)
        if isinstance(cancelled, Exception):  # the claim won: a running job cannot be cancelled
            assert isinstance(cancelled, errors.Conflict)
            assert [j.id for j in claimed] == [job.id] and final.state is JobState.RUNNING
            assert other.job_finish_many([Finish(job.id, 1, "w1", OutcomeKind.SUCCEEDED)], clock.now()) == [
                True
            ]
        else:
            assert cancelled[1] and claimed == [] and final.state is JobState.CANCELLED
            assert store.job_attempts(job.id) == []


def test_cancel_racing_failure_of_a_retried_job_stays_consistent(
    store: Store, other: Store, clock: FrozenClock
) -> None:
    insert(store, clock.now(), *[new(spec=retrying(3, delay=0)) for _ in range(10)])
    for job in claim(store, clock.now(), limit=10):
        cancelled, fin = _race2(
            partial(store.job_cancel, job.id, "", clock.now()),
            partial(
                other.job_finish_many,
                [Finish(job.id, job.attempt, "w1", OutcomeKind.FAILED, reason="boom")],
                clock.now(),
            ),
        )
        assert fin == [True]
        final = get(store, job.id)
        if isinstance(cancelled, Exception):  # cancel saw the job running; the failure retried it
            assert isinstance(cancelled, errors.Conflict)
            assert final.state is JobState.RUNNABLE
        else:  # the failure came first, then the cancel stopped the retry
            assert final.state is JobState.CANCELLED
        assert not finish_again(other, job, clock)


def finish_again(s: Store, job: Job, clock: FrozenClock) -> bool:
    [ok] = s.job_finish_many([Finish(job.id, job.attempt, "w1", OutcomeKind.SUCCEEDED)], clock.now())
    return ok


def test_concurrent_submissions_with_the_same_unique_key_make_one_job(
    store: Store, other: Store, clock: FrozenClock
) -> None:
    for round_ in range(15):
        key = f"client:{round_}"
        a, b = _race(
            partial(store.job_insert_many, [new(unique_key=key)], clock.now()),
            partial(other.job_insert_many, [new(unique_key=key)], clock.now()),
        )
        assert not isinstance(a, Exception), a
        assert not isinstance(b, Exception), b
        assert a[0].job.id == b[0].job.id
        assert sorted([a[0].existing, b[0].existing]) == [False, True]
    assert len(store.job_list(limit=100)) == 15


def test_concurrent_submissions_with_the_same_idempotency_key_make_one_job(
    store: Store, other: Store, clock: FrozenClock
) -> None:
    for round_ in range(10):
        key = f"req:{round_}"
        a, b = _race(
            partial(store.job_insert_many, [new(idempotency_key=key)], clock.now()),
            partial(other.job_insert_many, [new(idempotency_key=key)], clock.now()),
        )
        assert not isinstance(a, Exception), a
        assert not isinstance(b, Exception), b
        assert a[0].job.id == b[0].job.id
    assert len(store.job_list(limit=100)) == 10


def test_capacity_holds_when_workers_claim_at_the_same_time(
    store: Store, other: Store, clock: FrozenClock
) -> None:
    store.environment_put(ComputeEnvironment("small", 4, None), clock.now())
    store.queue_put(Queue("q", environments=("small",)), clock.now())
    insert(store, clock.now(), *[new("q", DefinitionSpec(function="m:f", vcpus=1)) for _ in range(20)])
    third = open_store(store.url)
    try:
        got = _race(
            *[
                partial(s.job_claim, ClaimRequest(f"w{i}", "small", None, 3, 30), clock.now())
                for i, s in enumerate([store, other, third, other])
            ]
        )
    finally:
        third.close()
    total = 0
    for r in got:
        assert not isinstance(r, Exception), r
        total += len(r)
    assert total == 4
    assert store.environment_usage(clock.now())["small"].used_vcpus == 4


def test_concurrent_finishes_settle_arrays_and_dependants_once(
    store: Store, other: Store, clock: FrozenClock
) -> None:
    [parent] = insert(store, clock.now(), new(array_size=8))
    a, b = insert(store, clock.now(), new(), new())
    [after] = insert(store, clock.now(), new(deps=(a.id, b.id, parent.id)))
    running = claim(store, clock.now(), limit=100)
    assert len(running) == 10
    stores = [store, other]
    results = _race(
        *[
            partial(
                stores[i % 2].job_finish_many,
                [Finish(j.id, j.attempt, "w1", OutcomeKind.SUCCEEDED)],
                clock.now(),
            )
            for i, j in enumerate(running)
        ]
    )
    assert results == [[True]] * 10
    assert get(store, parent.id).state is JobState.SUCCEEDED
    assert get(store, after.id).state is JobState.RUNNABLE
    parent_events = [e.data["to"] for e in store.events_list(entity="job", entity_id=str(parent.id))]
    assert parent_events == ["PENDING", "SUCCEEDED"]


def test_bulk_cancel_racing_claims_gives_each_job_exactly_one_fate(
    store: Store, other: Store, clock: FrozenClock
) -> None:
    """Workers claim while a bulk cancel runs over the same jobs: every job is either claimed
    (and reported running, left alone by the cancel) or cancelled (and never claimed)."""
    jobs = insert(store, clock.now(), *(new() for _ in range(300)))
    ids = [j.id for j in jobs]
    claimed: list[int] = []
    stop = threading.Event()

    def claim_loop() -> None:
        while not stop.is_set():
            got = other.job_claim(ClaimRequest("w1", "default", None, 7, 30), clock.now())
            claimed.extend(j.id for j in got)

    t = threading.Thread(target=claim_loop)
    t.start()
    try:
        out = []
        for start in range(0, len(ids), 25):  # several transactions, the claims in between
            out.extend(store.job_stop_many(ids[start : start + 25], "", clock.now(), False))
    finally:
        stop.set()
        t.join()
    cancelled = {job_id for job_id, changed, _ in out if changed}
    refused = {job_id for job_id, changed, why in out if not changed}
    assert cancelled | refused == set(ids) and not cancelled & set(claimed)
    assert refused == set(claimed) & set(ids)
    for job_id in ids:
        assert get(store, job_id).state is (JobState.CANCELLED if job_id in cancelled else JobState.RUNNING)
