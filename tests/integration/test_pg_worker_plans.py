"""A worker's claims and finishes on PostgreSQL reach the jobs through indexes, whatever the
size of the table when its connection planned them (``postgres._INDEXED``).

The worker's connection plans its statements once (generic plans). On a table of a few
hundred rows PostgreSQL's costs favour reading every row over fetching the ones wanted by
id, and the plan is kept as the table grows: every claim and finish then read the whole
table. Real database; the count is PostgreSQL's own (``pg_stat_user_tables.seq_scan``).
"""

from __future__ import annotations

import psycopg
import pytest

from conveyor.clock import FrozenClock
from conveyor.model import ClaimRequest, ComputeEnvironment, DefinitionSpec, Finish, NewJob, OutcomeKind
from conveyor.store import open_store
from conveyor.store.base import Tx
from conveyor.store.lifecycle import ACTIVE
from conveyor.store.postgres import PostgresStore

from ..conftest import START

pytestmark = pytest.mark.postgres

SPEC = DefinitionSpec(function="tasks:noop")


def _seq_scans_of_jobs(store: PostgresStore, url: str) -> int:
    """Sequential scans of ``jobs`` so far, with the worker connection's own counts flushed."""
    conn = store._live_listener()
    assert conn is not None
    conn.execute("SELECT pg_stat_force_next_flush()")  # flushed before the statement's answer
    with psycopg.connect(url, autocommit=True) as reader:
        row = reader.execute("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'jobs'").fetchone()
    assert row is not None
    return int(row[0])


def test_claims_and_finishes_planned_on_a_small_table_read_no_whole_table(pg_url: str) -> None:
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    clock = FrozenClock(START)
    try:
        store.wait_for_jobs(0.001)  # this thread's LISTEN connection: the worker's loop's
        # a table of ~800 rows, where reading all of them looks cheaper than 10 by id
        store.job_insert_many([NewJob(queue="default", spec=SPEC) for _ in range(800)], clock.now())
        req = ClaimRequest("w1", "default", None, 2, 30.0, "host", 1)
        one = ClaimRequest("w1", "default", None, 1, 30.0, "host", 1)
        held = store.job_claim(req, clock.now())

        def cycle(times: int) -> None:
            nonlocal held
            for _ in range(times):
                more = store.job_claim(one, clock.now())  # an idle worker's claim
                assert len(more) == 1
                finishes = [Finish(j.id, j.attempt, "w1", OutcomeKind.SUCCEEDED, "ok") for j in held + more]
                _, held = store.job_finish_and_claim(finishes, req, clock.now())  # a busy one's
                assert len(held) == 2

        cycle(10)  # psycopg prepares the statements after a few runs: their plans are made here
        before = _seq_scans_of_jobs(store, pg_url)
        cycle(50)
        after = _seq_scans_of_jobs(store, pg_url)
        assert after - before == 0, (
            f"{after - before} sequential scans of jobs in 50 claims and 50 finish+claim calls"
        )
    finally:
        store.close()


# the shape of a limited environment's capacity sum (lifecycle.LifecycleOps._claim)
_CAPACITY_SUM = (
    "EXPLAIN SELECT COALESCE(SUM(vcpus), 0) AS v, COALESCE(SUM(memory_mb), 0) AS m FROM jobs"
    f" WHERE compute_environment = 'default' AND state IN {ACTIVE}"
)


def _plan(tx: Tx) -> str:
    return "\n".join(str(r["QUERY PLAN"]) for r in tx.q(_CAPACITY_SUM))


def test_a_limited_environment_claim_reads_the_active_jobs_through_a_plain_index_scan(pg_url: str) -> None:
    """A limited environment's claim sums the vCPUs in use over jobs_state_id's STARTING/RUNNING
    range, where every job that ran left an entry, dead once it ended (until a vacuum). With
    a few thousand such entries the planner reads the range with a bitmap scan, which visits
    each of them and its heap page at every claim and marks none. A worker's transactions
    read it with a plain index scan, which marks the dead entries it finds so that later
    scans skip them (once no older transaction of the cluster holds an id: a long one
    anywhere keeps them unmarked, and then only a vacuum helps)."""
    store = PostgresStore(pg_url, min_size=1, max_size=1)
    clock = FrozenClock(START)
    try:
        store.environment_put(
            ComputeEnvironment("default", max_vcpus=1000.0, max_memory_mb=None), clock.now()
        )
        store.job_insert_many([NewJob(queue="default", spec=SPEC) for _ in range(3300)], clock.now())
        req = ClaimRequest("w1", "default", None, 50, 30.0, "host", 1)
        held = store.job_claim(req, clock.now())
        for _ in range(60):  # 3,050 jobs run and end, with no vacuum between
            finishes = [Finish(j.id, j.attempt, "w1", OutcomeKind.SUCCEEDED, "ok") for j in held]
            _, held = store.job_finish_and_claim(finishes, req, clock.now())
            assert len(held) == 50
        with store._read() as tx:
            elsewhere = _plan(tx)
        with store._worker_write() as tx:
            in_worker = _plan(tx)
        # the case this guards: elsewhere the planner takes a bitmap scan
        assert "Bitmap" in elsewhere, elsewhere
        assert "Bitmap" not in in_worker and "Index Scan using jobs_state_id" in in_worker, in_worker
    finally:
        store.close()
