"""A single plain submission takes each backend's own fast path (PostgreSQL: a statement
prepared on a kept connection, run through libpq with its parameters in text form): what it
stores, returns and wakes is what the general path would, for any values, from any thread."""

from __future__ import annotations

import threading
from datetime import timedelta, timezone

import pytest

from conveyor.clock import FrozenClock
from conveyor.model import DefinitionSpec, Job, JobState
from conveyor.store import Store

from .helpers import insert, insert_one, new, waiter_in_another_process

AWKWARD = 'it\'s 50% ? $1 \\ "q" é\u2603 \U0001f600'


def _events_of(store: Store, job_id: int) -> int:
    with store._read() as tx:
        row = tx.one(
            "SELECT COUNT(*) AS n FROM events WHERE entity = 'job' AND entity_id = ?", (str(job_id),)
        )
    assert row is not None
    return int(row["n"])


def test_single_submissions_store_and_return_exactly_their_values(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    east = timezone(timedelta(hours=5, minutes=30))
    jobs = [
        new(name=AWKWARD, payload={"text": AWKWARD, "n": [1, 2.5, None, True], "k": {"?": "%s"}}),
        new(queue="q?%", priority=-3, tags=(AWKWARD, "b"), payload_ref="ref?%", payload=[AWKWARD]),
        new(run_at=(now - timedelta(seconds=1)).astimezone(east), payload="just a string"),
        new(run_at=(now + timedelta(minutes=5)).astimezone(east), name="later"),
        new(spec=DefinitionSpec(command=("echo", AWKWARD), vcpus=0.25, memory_mb=300), payload=None),
        new(payload=12345678901234567890),
    ]
    got = [insert_one(store, now, nj) for nj in jobs]
    assert [j.state for j in got] == [JobState.RUNNABLE] * 3 + [JobState.SUBMITTED] + [JobState.RUNNABLE] * 2
    for job, nj in zip(got, jobs, strict=True):
        assert store.job_get(job.id) == job
        assert (job.queue, job.name, job.priority, job.tags, job.payload_ref) == (
            nj.queue,
            nj.name,
            nj.priority,
            tuple(nj.tags),
            nj.payload_ref,
        )
        assert job.payload == nj.payload
        assert job.run_at == nj.run_at
        assert job.spec == nj.spec
        assert _events_of(store, job.id) == 1
    ids = [j.id for j in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_single_submission_is_refused_whole_when_postgres_cannot_store_a_value(
    store: Store, clock: FrozenClock
) -> None:
    """PostgreSQL text cannot hold a NUL: the submission is refused, not cut short at it, and
    leaves nothing behind; the next one goes through."""
    if store.d.name != "postgres":
        pytest.skip("SQLite stores a NUL")
    now = clock.now()
    first = insert_one(store, now)
    with pytest.raises(Exception, match="NUL"):
        insert_one(store, now, new(name="a\x00b"))
    with pytest.raises(Exception, match="u0000"):  # in JSON
        insert_one(store, now, new(tags=("t\x00",)))
    again = insert_one(store, now, new(name="a b"))
    assert again.id > first.id and store.job_get(again.id) == again
    with store._read() as tx:
        row = tx.one("SELECT COUNT(*) AS n FROM jobs")
    assert row is not None and row["n"] == 2


def test_single_submissions_go_on_after_the_server_forgets_their_prepared_statement(
    store: Store, clock: FrozenClock
) -> None:
    if store.d.name != "postgres":
        pytest.skip("PostgreSQL's prepared statements")
    now = clock.now()
    first = insert_one(store, now)
    lane = store._lane  # type: ignore[attr-defined]
    assert lane is not None
    lane[0].execute("DEALLOCATE ALL")
    later = now + timedelta(minutes=1)
    again = insert(store, now, new(), new(run_at=later))  # a batch: the general path
    more = [insert_one(store, now), insert_one(store, now, new(run_at=later))]
    for job in [first, *again, *more]:
        assert store.job_get(job.id) == job
        assert _events_of(store, job.id) == 1


def test_concurrent_single_submissions_get_their_own_rows(store: Store, clock: FrozenClock) -> None:
    """Threads submitting at once: one at a time on the kept connection, the others on the
    pool's; every job is stored once, with its event, as returned."""
    now = clock.now()
    out: list[list[Job]] = [[] for _ in range(4)]
    failures: list[BaseException] = []

    def submit(k: int) -> None:
        try:
            for i in range(40):
                out[k].append(insert_one(store, now, new(payload={"k": k, "i": i})))
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=submit, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    everything = [job for jobs in out for job in jobs]
    assert len({j.id for j in everything}) == 160
    for k, jobs in enumerate(out):
        assert [j.payload for j in jobs] == [{"k": k, "i": i} for i in range(40)]
        assert [j.id for j in jobs] == sorted(j.id for j in jobs)
    for job in everything:
        assert store.job_get(job.id) == job
    with store._read() as tx:
        row = tx.one("SELECT COUNT(*) AS n FROM events WHERE entity = 'job'")
    assert row is not None and row["n"] == 160


def test_a_single_submission_wakes_a_waiter_in_another_process(store: Store, clock: FrozenClock) -> None:
    with waiter_in_another_process(store.url) as answer:
        assert insert_one(store, clock.now()).state is JobState.RUNNABLE
        assert answer() == "woken"
