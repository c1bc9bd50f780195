"""The two insert paths (plain jobs in one statement; jobs with keys, dependencies or arrays
one by one) give back exactly the rows they stored, whatever the mix and whoever else inserts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from conveyor.clock import FrozenClock
from conveyor.model import (
    Backoff,
    DefinitionSpec,
    Job,
    JobState,
    NewJob,
    RetryAction,
    RetryRule,
    RetryStrategy,
)
from conveyor.store import Store, open_store

from .helpers import CMD, FN, claim, insert, new, waiter_in_another_process


def test_returned_jobs_equal_their_stored_rows_across_both_paths(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    keyed = insert(store, now, new(unique_key="k1", payload={"i": -1}))  # general path first
    plain = insert(
        store,
        now,
        *[
            new(
                spec=CMD if i % 3 else FN,
                payload={"i": i, "text": "é\u2603"} if i % 2 else None,
                priority=i % 5,
                tags=("a", f"t{i}") if i % 4 == 0 else (),
                name=f"job {i}" if i % 7 == 0 else None,
                run_at=now + timedelta(minutes=5) if i == 10 else None,
            )
            for i in range(60)
        ],
    )
    after = insert(store, now, new(idempotency_key="idem", payload=[1, 2]))  # general path after
    single = insert(store, now, new(payload={"one": True}))
    everything = keyed + plain + after + single
    ids = [j.id for j in everything]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # ids follow submission order
    for job in everything:
        assert store.job_get(job.id) == job
    assert plain[10].state is JobState.SUBMITTED
    assert {j.state for j in plain[:10]} == {JobState.RUNNABLE}


def test_a_batch_of_bare_jobs_answers_its_stored_rows(store: Store, clock: FrozenClock) -> None:
    """Jobs with nothing but a spec, priority and payload (SQLite's _INSERT_BARE rows)."""
    now = clock.now()
    results = store.job_insert_many(
        [new(payload={"i": i} if i else None, priority=i % 3) for i in range(5)], now
    )
    for res in results:
        assert store.job_get(res.job.id) == res.job
    assert [r.job.payload for r in results] == [None, *({"i": i} for i in range(1, 5))]


def test_one_spec_object_reused_with_other_contents_is_not_confused(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    first = insert(store, now, new(spec=DefinitionSpec(command=("echo", "a"))))[0]
    second = insert(store, now, new(spec=DefinitionSpec(command=("echo", "b"))))[0]
    assert store.job_get(first.id).spec.command == ("echo", "a")  # type: ignore[union-attr]
    assert store.job_get(second.id).spec.command == ("echo", "b")  # type: ignore[union-attr]


def test_concurrent_plain_batches_from_two_connections_get_their_own_ids(
    store: Store, clock: FrozenClock
) -> None:
    other = open_store(store.url)
    try:
        now = clock.now()
        results: dict[str, list[int]] = {}
        barrier = threading.Barrier(2)

        def run(name: str, s: Store) -> None:
            barrier.wait()
            got: list[int] = []
            for batch in range(10):
                jobs = insert(s, now, *[new(payload={"by": name, "n": batch * 20 + i}) for i in range(20)])
                got.extend(j.id for j in jobs)
            results[name] = got

        threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("a", store), ("b", other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(results["a"]) | set(results["b"])) == 400
        for name, ids in results.items():
            for n, job_id in enumerate(ids):
                job = store.job_get(job_id)
                assert job is not None and job.payload == {"by": name, "n": n}
    finally:
        other.close()


def test_brief_insert_answers_what_the_full_insert_would(store: Store, clock: FrozenClock) -> None:
    from conveyor.model import Inserted

    now = clock.now()
    later = now + timedelta(minutes=1)
    plain = store.job_insert_brief(
        [new(payload={"i": i}, run_at=later if i == 2 else None) for i in range(5)], now
    )
    assert [r.state for r in plain] == [JobState.RUNNABLE] * 2 + [JobState.SUBMITTED] + [
        JobState.RUNNABLE
    ] * 2
    for i, r in enumerate(plain):
        job = store.job_get(r.id)
        assert job is not None and job.payload == {"i": i} and job.state is r.state and not r.existing
    # with a key: the general path, and a second submission says it matched
    first = store.job_insert_brief([new(unique_key="u"), new()], now)
    again = store.job_insert_brief([new(unique_key="u")], now)
    assert again == [Inserted(first[0].id, JobState.RUNNABLE, True, again[0].reason)]
    assert again[0].reason and first[1].id > first[0].id


def _stored(store: Store, first_id: int) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The job rows from ``first_id`` on and their events, without ids (events name their job
    by its position), in id order."""
    with store._read() as tx:  # raw rows: what each path wrote, not what a Job makes of it
        jobs = [dict(r) for r in tx.q("SELECT * FROM jobs WHERE id >= ? ORDER BY id", (first_id,))]
        ids = [j["id"] for j in jobs]
        events = [
            dict(r)
            for r in tx.q("SELECT * FROM events WHERE entity = 'job' ORDER BY id")
            if int(r["entity_id"]) in ids
        ]
    for e in events:
        e["entity_id"] = ids.index(int(e["entity_id"]))
        del e["id"]
        e["data"] = store.d.unjs(e["data"])
    for j in jobs:
        del j["id"]
    return jobs, events


@pytest.mark.parametrize("only_bare", [False, True])
def test_every_insert_path_stores_the_same_rows(store: Store, clock: FrozenClock, only_bare: bool) -> None:
    """The general path, the plain batch, one plain job at a time, the brief (bulk) path and
    chunks write identical job and event rows for the same submissions (``only_bare``: jobs
    with nothing but a spec, priority and payload, which SQLite inserts binding no NULLs)."""
    now = clock.now()
    later = now + timedelta(minutes=5)
    jobs = [
        new(),
        new(spec=CMD, payload={"i": 1, "text": "é\u2603", "nested": [1.5, None, {"b": True}]}),
        new(payload="null", priority=-3, tags=("a", "b"), name="named"),
        new(payload=[], run_at=later),
        new(payload=0, parent_id=7, definition="d", definition_revision=2),
        new("other", payload_ref="blob-1"),
        new(spec=CMD, payload=False, run_at=now - timedelta(seconds=1)),
        # SQLite inserts a job like this one binding no NULLs (_INSERT_BARE)
        new(
            spec=DefinitionSpec(function="tasks:work", vcpus=0.5, memory_mb=64),
            payload={"x": [1]},
            priority=4,
        ),
    ]
    if only_bare:
        jobs = [
            new(),
            new(spec=CMD, payload={"i": 1, "text": "é\u2603"}, priority=-2),
            new(spec=DefinitionSpec(function="tasks:work", vcpus=0.5, memory_mb=64), payload=[1], priority=4),
            new("other", payload="x"),
        ]

    def general() -> None:
        with store._write() as tx:
            store._insert(tx, jobs, now, set())

    def one_by_one() -> None:
        for nj in jobs:
            store.job_insert_many([nj], now)

    paths: dict[str, Callable[[], object]] = {
        "general": general,
        "plain": lambda: store.job_insert_many(jobs, now),
        "one by one": one_by_one,
        "brief": lambda: store.job_insert_brief(jobs, now),
        "chunks": lambda: store.job_insert_chunks((jobs[i : i + 3] for i in range(0, len(jobs), 3)), now),
        # a batch of one job is a batch of one template (PostgreSQL's own statement)
        "brief, one at a time": lambda: [store.job_insert_brief([nj], now) for nj in jobs],
        "chunks of one": lambda: store.job_insert_chunks(([nj] for nj in jobs), now),
    }
    stored = {}
    for name, run in paths.items():
        first = store.job_insert_brief([new()], now)[0].id + 1  # where this path's rows start
        run()
        stored[name] = _stored(store, first)
    assert len(stored["general"][0]) == len(jobs) and len(stored["general"][1]) == len(jobs)
    for name in paths:
        assert stored[name] == stored["general"], name


@pytest.mark.parametrize(
    "template",
    [
        {},
        {"spec": CMD, "priority": -3, "tags": ("a", "b"), "name": "named", "parent_id": 7},
        {"definition": "d", "definition_revision": 2, "payload_ref": "blob-1"},
        {"run_at": "later"},
        {"run_at": "earlier"},
    ],
)
def test_a_batch_of_one_template_stores_what_the_general_path_stores(
    store: Store, clock: FrozenClock, template: dict[str, object]
) -> None:
    """Jobs differing only in their payloads (a bulk submission of one task) take PostgreSQL's
    one-template statement on the brief and chunked paths."""
    now = clock.now()
    if template.get("run_at"):
        template = {**template, "run_at": now + timedelta(minutes=5 if template["run_at"] == "later" else -5)}
    payloads: list[object] = [None, "null", 0, [], {"a": [1, None, "é\u2603"]}, None]
    jobs = [new(**template, payload=p) for p in payloads]  # type: ignore[arg-type]

    def general() -> None:
        with store._write() as tx:
            store._insert(tx, jobs, now, set())

    paths: dict[str, Callable[[], object]] = {
        "general": general,
        "brief": lambda: store.job_insert_brief(jobs, now),
        "chunks": lambda: store.job_insert_chunks(iter([jobs[:4], jobs[4:]]), now),
    }
    stored = {}
    answers: dict[str, object] = {}
    for name, run in paths.items():
        first = store.job_insert_brief([new()], now)[0].id + 1
        answers[name] = run()
        stored[name] = _stored(store, first)
    assert len(stored["general"][0]) == len(jobs) and len(stored["general"][1]) == len(jobs)
    for name in paths:
        assert stored[name] == stored["general"], name
    for name in ("brief", "chunks"):
        got = answers[name]
        assert isinstance(got, list)
        ids = [r.id for r in got]
        assert ids == sorted(ids) and len(set(ids)) == len(jobs)
        for r, p in zip(got, payloads, strict=True):
            job = store.job_get(r.id)
            assert job is not None and job.payload == p and job.state is r.state


def test_a_chunked_submission_wakes_a_waiter_in_another_process(store: Store, clock: FrozenClock) -> None:
    with waiter_in_another_process(store.url) as answer:
        now = clock.now()
        later = now + timedelta(minutes=5)
        got = store.job_insert_chunks(
            iter([[new(run_at=later)] * 2, [new(queue="other"), new(queue="other")], [new(run_at=later)]]),
            now,
        )
        assert [r.state for r in got] == [JobState.SUBMITTED] * 2 + [JobState.RUNNABLE] * 2 + [
            JobState.SUBMITTED
        ]
        assert answer() == "woken"


def test_chunks_keep_submission_order_across_plain_and_keyed_chunks(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    chunks = [
        [new(payload={"n": 0}), new(payload={"n": 1})],
        [],
        [new(payload={"n": 2}, unique_key="k"), new(payload={"n": 3})],  # the general path
        [new(payload={"n": 4})],
        [new(payload={"n": 5}, unique_key="k")],  # matches job 2
        [new(payload={"n": 6}), new(payload={"n": 7}, run_at=now + timedelta(minutes=1))],
    ]
    got = store.job_insert_chunks(iter(chunks), now)
    assert len(got) == 8
    assert got[5].existing and got[5].id == got[2].id
    fresh = [r for r in got if not r.existing]
    assert [r.id for r in fresh] == sorted(r.id for r in fresh)
    assert [store.job_get(r.id).payload["n"] for r in fresh] == [0, 1, 2, 3, 4, 6, 7]  # type: ignore[union-attr]
    assert got[7].state is JobState.SUBMITTED and got[6].state is JobState.RUNNABLE


def test_chunks_insert_nothing_when_building_a_later_chunk_fails(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    before = store.job_insert_brief([new()], now)[0].id

    def chunks() -> Iterator[list[NewJob]]:
        yield [new(payload={"n": i}) for i in range(300)]
        yield [new(payload={"n": i}) for i in range(300)]
        raise RuntimeError("the third chunk does not validate")

    with pytest.raises(RuntimeError, match="third chunk"):
        store.job_insert_chunks(chunks(), now)
    after = store.job_insert_brief([new()], now)[0].id
    assert [store.job_get(i) for i in range(before + 1, after)] == [None] * (after - before - 1)
    assert store.job_get(after) is not None  # the store is usable afterwards


# Job rows store their spec without the fields equal to their defaults (model.spec_to_stored):
# every spec, on every insert path, must read back exactly as submitted, and as claimed.
_SPECS = [
    FN,
    CMD,
    DefinitionSpec(function="tasks:work", vcpus=2.5, memory_mb=512, timeout_seconds=0),
    DefinitionSpec(
        command=("sh", "-c", "exit {code}"),
        parameters={"code": "3"},
        vcpus=0.25,
        timeout_seconds=30,
        retry=RetryStrategy(
            attempts=4,
            evaluate_on_exit=(
                RetryRule(RetryAction.RETRY, on_exit_code="3"),
                RetryRule(RetryAction.EXIT, on_reason="*"),
            ),
            backoff=Backoff.FIXED,
            delay_seconds=0.0,
            max_delay_seconds=1.0,
            jitter=False,
        ),
        environment={"A": "1", "EMPTY": ""},
        follow_up_queues=("default",),
        working_dir="",
    ),
    DefinitionSpec(function="tasks:work", retry=RetryStrategy(attempts=3)),  # one retry field set
    DefinitionSpec(function="tasks:work", retry=RetryStrategy(jitter=False)),
    DefinitionSpec(command=()),  # empty, not absent
]


@pytest.mark.parametrize("path", ["single", "batch", "brief", "keyed"])
def test_non_default_specs_read_back_exactly_on_every_insert_path(
    store: Store, clock: FrozenClock, path: str
) -> None:
    now = clock.now()
    jobs = [new(spec=spec, unique_key=f"k{n}" if path == "keyed" else None) for n, spec in enumerate(_SPECS)]
    returned: list[Job] = []
    if path == "single":
        returned = [insert(store, now, nj)[0] for nj in jobs]
    elif path == "brief":
        ids = [r.id for r in store.job_insert_brief(jobs, now)]
    else:
        returned = insert(store, now, *jobs)
    if returned:
        assert [j.spec for j in returned] == _SPECS
        ids = [j.id for j in returned]
    for spec, job_id in zip(_SPECS, ids, strict=True):
        stored = store.job_get(job_id)
        assert stored is not None and stored.spec == spec and stored.spec.kind == spec.kind
    claimed = claim(store, now, limit=len(_SPECS))
    assert {j.id: j.spec for j in claimed} == dict(zip(ids, _SPECS, strict=True))


def test_concurrent_chunked_submissions_get_their_own_increasing_ids(
    store: Store, clock: FrozenClock
) -> None:
    other = open_store(store.url)
    try:
        now = clock.now()
        results: dict[str, list[list[int]]] = {}
        barrier = threading.Barrier(2)

        def run(name: str, s: Store) -> None:
            barrier.wait()
            batches = []
            for batch in range(8):
                jobs = [new(payload={"by": name, "n": batch * 60 + i}) for i in range(60)]
                got = s.job_insert_chunks(iter([jobs[:25], jobs[25:50], jobs[50:]]), now)
                batches.append([r.id for r in got])
            results[name] = batches

        threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("a", store), ("b", other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = [i for batches in results.values() for ids in batches for i in ids]
        assert len(set(every)) == len(every) == 2 * 8 * 60
        with store._read() as tx:
            events = {
                int(r["entity_id"])
                for r in tx.q("SELECT entity_id FROM events WHERE entity = 'job' AND type = 'job.state'")
            }
        assert set(every) <= events  # each job has its event
        for name, batches in results.items():
            for batch, ids in enumerate(batches):
                assert ids == sorted(ids)  # submission order within a batch
                for n, job_id in enumerate(ids):
                    job = store.job_get(job_id)
                    assert job is not None and job.payload == {"by": name, "n": batch * 60 + n}
    finally:
        other.close()


def test_a_chunk_the_server_refuses_inserts_nothing_and_the_store_stays_usable(
    store: Store, clock: FrozenClock
) -> None:
    if store.d.name != "postgres":
        pytest.skip("PostgreSQL parses the payloads' JSON")
    import psycopg

    now = clock.now()
    before = store.job_insert_brief([new()], now)[0].id
    bad = new(payload={"x": 1})
    bad.payload_json = '{"x": '  # not JSON: the second chunk's statement fails on the server
    with pytest.raises(psycopg.errors.InvalidTextRepresentation, match="json"):
        store.job_insert_chunks(iter([[new(payload={"n": i}) for i in range(30)], [new(), bad]]), now)
    after = store.job_insert_brief([new(), new()], now)
    assert [store.job_get(i) for i in range(before + 1, after[0].id)] == [None] * (after[0].id - before - 1)
    assert all(store.job_get(r.id) is not None for r in after)
    with store._read() as tx:
        ids = [int(r["entity_id"]) for r in tx.q("SELECT entity_id FROM events WHERE entity = 'job'")]
    assert not [i for i in ids if before < i < after[0].id]  # no event of a job not inserted


def test_a_single_submission_recovers_after_its_connection_is_killed(
    store: Store, clock: FrozenClock
) -> None:
    """PostgreSQL keeps one connection for single submissions: when the server has closed it
    (a restart), the next submission sees so before using it and takes a fresh one; it does
    not fail."""
    if store.d.name != "postgres":
        pytest.skip("PostgreSQL's kept connection")
    import psycopg

    now = clock.now()
    first = insert(store, now, new())[0]
    with psycopg.connect(store.url, autocommit=True) as admin:
        pids = [
            r[0]
            for r in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        ]
        assert pids, "the store's connections"
        admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        deadline = time.monotonic() + 10
        while admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "the backends did not exit"
            time.sleep(0.01)
    again = insert(store, now, new())[0]
    assert again.id > first.id and store.job_get(again.id) == again
    assert len(store.job_list(limit=10)) == 2, "each submission stored once"


def test_a_pool_of_one_connection_keeps_none_aside_for_single_submissions(
    store: Store, clock: FrozenClock
) -> None:
    if store.d.name != "postgres":
        pytest.skip("PostgreSQL's connection pool")
    small = open_store(store.url, max_size=1, min_size=1)
    try:
        now = clock.now()
        single = insert(small, now, new())[0]
        batch = small.job_insert_brief([new(), new()], now)  # a transaction on the same pool
        assert [r.id for r in batch] == [single.id + 1, single.id + 2]
    finally:
        small.close()
