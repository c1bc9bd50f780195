"""A job's attempts as ``job_attempts`` reports them, whichever path ended them.

The attempt that makes a job SUCCEEDED leaves no row in ``attempts`` (the job's row holds
it); the history must still be complete and the same on every path: the batch of a draining
worker (``job_finish_and_claim``), ``job_finish_many``, the transactional path of a job with
something to settle (a unique key), after earlier failed attempts, and next to rows written
by earlier versions of Conveyor."""

from __future__ import annotations

from conveyor.clock import FrozenClock
from conveyor.model import Attempt, ClaimRequest, Finish, OutcomeKind
from conveyor.store import Store

from .helpers import claim, claim_one, finish, insert, insert_one, new, retrying


def _attempt_rows(store: Store, job_id: int) -> int:
    with store._read() as tx:
        row = tx.one("SELECT COUNT(*) AS n FROM attempts WHERE job_id = ?", (job_id,))
    assert row is not None
    return int(row["n"])


def _succeeded(attempt: Attempt, job_id: int, number: int, clock: FrozenClock) -> None:
    assert attempt.job_id == job_id and attempt.number == number
    assert attempt.worker_id == "w1" and attempt.host == "h" and attempt.pid == 7
    assert attempt.stopped_at == clock.now() and attempt.exit_code == 0 and attempt.reason == "succeeded"
    assert attempt.compute_environment == "default" and attempt.counted


def _req(limit: int) -> ClaimRequest:
    return ClaimRequest("w1", "default", None, limit, 30.0, host="h", pid=7)


def test_a_batch_success_is_one_complete_attempt_held_by_the_job(store: Store, clock: FrozenClock) -> None:
    a, b = insert(store, clock.now(), new(), new())
    [ja] = store.job_claim(_req(1), clock.now())
    started = clock.now()
    clock.advance(1.5)
    applied, [jb] = store.job_finish_and_claim(
        [Finish(ja.id, ja.attempt, "w1", OutcomeKind.SUCCEEDED)], _req(1), clock.now()
    )
    assert applied == [True] and jb.id == b.id
    [attempt] = store.job_attempts(a.id)
    _succeeded(attempt, a.id, 1, clock)
    assert attempt.started_at == started
    assert _attempt_rows(store, a.id) == 0  # the job's row holds it
    # the other one is running: its attempt is open, and it too is read from the job
    [running] = store.job_attempts(jb.id)
    assert running.stopped_at is None and running.exit_code is None and running.reason == ""


def test_every_success_path_gives_the_same_history(store: Store, clock: FrozenClock) -> None:
    plain, keyed = insert(store, clock.now(), new(), new(unique_key="sync-7"))
    store.job_claim(_req(2), clock.now())
    clock.advance(2)
    # one through the batch that settles nothing, one through the transactional path (its key)
    assert store.job_finish_many(
        [Finish(j, 1, "w1", OutcomeKind.SUCCEEDED) for j in (plain.id, keyed.id)], clock.now()
    ) == [True, True]
    for job in (plain, keyed):
        [attempt] = store.job_attempts(job.id)
        _succeeded(attempt, job.id, 1, clock)
        assert _attempt_rows(store, job.id) == 0


def test_failed_attempts_keep_their_rows_and_the_success_follows_them(
    store: Store, clock: FrozenClock
) -> None:
    job = insert_one(store, clock.now(), new(spec=retrying(3)))
    for n in (1, 2):
        got = store.job_claim(_req(1), clock.now())
        assert [j.attempt for j in got] == [n]
        clock.advance(1)
        assert finish(store, clock.now(), got[0], OutcomeKind.FAILED, exit_code=3, reason=f"boom {n}")
    [last] = store.job_claim(_req(1), clock.now())
    clock.advance(1)
    assert finish(store, clock.now(), last)
    attempts = store.job_attempts(job.id)
    assert [(a.number, a.exit_code, a.reason) for a in attempts] == [
        (1, 3, "boom 1"),
        (2, 3, "boom 2"),
        (3, 0, "succeeded"),
    ]
    _succeeded(attempts[-1], job.id, 3, clock)
    assert _attempt_rows(store, job.id) == 2


def test_a_row_written_at_success_by_an_earlier_version_is_not_shown_twice(
    store: Store, clock: FrozenClock
) -> None:
    job = insert_one(store, clock.now())
    running = claim_one(store, clock.now())
    clock.advance(1)
    assert finish(store, clock.now(), running)
    d = store.d
    with store._write() as tx:
        tx.x(
            "INSERT INTO attempts (job_id, number, worker_id, host, pid, started_at, compute_environment,"
            " stopped_at, exit_code, reason, counted) VALUES (?, 1, 'w1', 'old-host', 9, ?, 'default', ?, 0,"
            " 'succeeded', ?)",
            (job.id, d.ts(running.started_at), d.ts(clock.now()), True),
        )
    [attempt] = store.job_attempts(job.id)
    assert attempt.host == "old-host" and attempt.pid == 9 and attempt.stopped_at == clock.now()


def test_an_array_parent_that_succeeded_has_no_attempt(store: Store, clock: FrozenClock) -> None:
    [parent] = insert(store, clock.now(), new(array_size=2))
    for child in claim(store, clock.now(), limit=5):
        assert finish(store, clock.now(), child)
    assert store.job_get(parent.id).state.value == "SUCCEEDED"  # type: ignore[union-attr]
    assert store.job_attempts(parent.id) == []
