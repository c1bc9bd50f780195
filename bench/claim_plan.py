"""Does a PostgreSQL claim stay flat with a million queued jobs?

Fills a fresh database with 1,000,000 RUNNABLE jobs (COPY, the bulk path), prints
EXPLAIN (ANALYZE, BUFFERS) of the statements a claim runs, the generic plans a worker's
loop runs its one-statement claim and finish+claim with (``_GENERIC``: planned once per
connection, whatever the parameters), and times 200 claims of one job each with a few
hundred and with 1M jobs queued. Run in the project venv:

    python bench/claim_plan.py [--queued 1000000] [--out bench/results/claim_plan.txt]

Needs the PostgreSQL server of ``CONVEYOR_BENCH_PG_ADMIN`` (default the test server); the
database ``conveyor_claim_plan`` is dropped and created.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from conveyor.model import ClaimRequest, DefinitionSpec, Finish, NewJob, OutcomeKind, spec_to_dict
from conveyor.store.lifecycle import DUE_JOBS, NEXT_DUE, start_set_params
from conveyor.store.postgres import (
    _CLAIM_CFG_FP,
    _CLAIM_FAST,
    _GENERIC,
    _INDEXED,
    START_JOBS,
    PostgresStore,
    _finish_and_claim_call,
    _pg,
)

ADMIN = os.environ.get("CONVEYOR_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
DB = "conveyor_claim_plan"
SPEC = DefinitionSpec(function="tasks:noop")
CLAIMS = 200


def url() -> str:
    return ADMIN.rsplit("/", 1)[0] + "/" + DB


def fresh() -> PostgresStore:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DB}"')
    store = PostgresStore(url())
    store.migrate(datetime.now(UTC))
    return store


def fill(n: int, out: list[str]) -> None:
    """COPY ``n`` RUNNABLE jobs (and their events) straight in, as a bulk load would."""
    now = datetime.now(UTC)
    spec = Jsonb(spec_to_dict(SPEC))
    t0 = time.perf_counter()
    with psycopg.connect(url()) as conn, conn.cursor() as cur:
        first = cur.execute("SELECT nextval('jobs_id_seq') AS id").fetchone()
        assert first is not None
        start = int(first[0])
        cur.execute("SELECT setval('jobs_id_seq', %s)", (start + n,))
        cols = "id, queue, kind, spec, state, status_reason, priority, created_at, updated_at, payload"
        with cur.copy(f"COPY jobs ({cols}) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row(
                    (start + 1 + i, "default", "function", spec, "RUNNABLE", "waiting for a worker", 0, now, now,
                     Jsonb({"args": [i]}))
                )  # fmt: skip
        with cur.copy("COPY events (at, entity, entity_id, type, data) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row(
                    (now, "job", str(start + 1 + i), "job.state",
                     Jsonb({"to": "RUNNABLE", "reason": "waiting for a worker", "queue": "default"}))
                )  # fmt: skip
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE jobs")
        cur.execute("VACUUM ANALYZE events")
    dt = time.perf_counter() - t0
    out.append(
        f"filled {n:,} RUNNABLE jobs with COPY in {dt:.1f} s ({n / dt:,.0f} jobs/s, incl. VACUUM ANALYZE)"
    )


def explain(out: list[str], label: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement of a claim, rolled back."""
    now = datetime.now(UTC)
    worker = "plan-worker"
    start = start_set_params(ClaimRequest(worker, "default", None, 1, 30.0, "host", 1), "default", now, now)
    which = "id = ANY(ARRAY(SELECT id FROM jobs WHERE queue IN (?) AND state = 'RUNNABLE'"
    which += " ORDER BY priority DESC, id LIMIT ? FOR UPDATE SKIP LOCKED))"
    statements: list[tuple[str, str, tuple[Any, ...]]] = [
        (
            "configuration (environment and queues, one read)",
            "SELECT e.name, e.max_vcpus, e.max_memory_mb, e.enabled, q.name AS q_name,"
            " q.priority AS q_priority, q.enabled AS q_enabled, q.environments AS q_environments"
            " FROM compute_environments e LEFT JOIN queues q ON 1 = 1 WHERE e.name = ?",
            ("default",),
        ),
        (
            "promote due jobs (at most every 100 ms)",
            "UPDATE jobs SET state = 'RUNNABLE', status_reason = 'waiting for a worker', updated_at = ?"
            " WHERE id IN (" + DUE_JOBS.format(due_index="") + " FOR UPDATE SKIP LOCKED)"
            " AND state = 'SUBMITTED' RETURNING id, queue",
            (now, now, 1000),
        ),
        (
            "next due time (after a promotion)",
            NEXT_DUE.format(due_index=""),
            (),
        ),
        (
            "claim: start the first job in line and record its event (one statement)",
            START_JOBS.format(which=which),
            (*start, "default", 1, now, worker),
        ),
    ]
    out.append(f"\n===== EXPLAIN (ANALYZE, BUFFERS) with {label} =====")
    with psycopg.connect(url()) as conn, conn.cursor() as cur:
        row = cur.execute(_pg(_CLAIM_CFG_FP), ("default",)).fetchone()
        assert row is not None
        statements.append(
            (
                "an idle worker's claim: the same in one statement, guarded by the configuration's"
                " fingerprint and no due job (what job_claim runs for a plain line of queues)",
                _CLAIM_FAST.replace("{names}", "?"),
                ("default", now, *start, "default", row[0], 1, now, worker),
            )
        )
        for title, sql, params in statements:
            out.append(f"\n--- {title}")
            rows = cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + _pg(sql), params).fetchall()
            out.extend(str(r[0]) for r in rows)
            conn.rollback()
    explain_generic(out, label)


def explain_generic(out: list[str], label: str) -> None:
    """The generic plans (``_GENERIC``) of the worker loop's idle claim, and of its finish of 16
    jobs with the claim of 16 more: each statement is run once prepared (as psycopg prepares
    it on the worker's connection), then run again through EXPLAIN ANALYZE EXECUTE on the
    next 16 jobs; all rolled back."""
    now = datetime.now(UTC)
    worker = "plan-worker"
    req = ClaimRequest(worker, "default", None, 16, 30.0, "host", 1)
    start = start_set_params(req, "default", now, now)
    claim_sql = _CLAIM_FAST.replace("{names}", "?")
    with psycopg.connect(url()) as conn, conn.cursor() as cur:
        cur.execute(_GENERIC)
        for setting in _INDEXED:  # the worker's connection's settings
            cur.execute(setting)
        fp = cur.execute(_pg(_CLAIM_CFG_FP), ("default",)).fetchone()
        assert fp is not None

        def claim_params() -> tuple[Any, ...]:
            return ("default", now, *start, "default", fp[0], 16, now, worker)

        def finish_call(rows: list[Any], first: int) -> tuple[str, tuple[Any, ...]]:
            # CLAIMED's id and attempt, from column ``first`` of each row
            fins = [Finish(int(r[first]), int(r[first + 12]), worker, OutcomeKind.SUCCEEDED) for r in rows]
            assert len(fins) == 16
            return _finish_and_claim_call(fins, req, fp[0], ("default",), now, True)

        def plan(title: str, params: tuple[Any, ...]) -> None:
            # the statement last prepared on the connection
            found = cur.execute(
                "SELECT name, parameter_types::text[] FROM pg_prepared_statements"
                " WHERE NOT from_sql ORDER BY prepare_time DESC LIMIT 1"
            ).fetchone()
            assert found is not None, "the statement was not prepared"
            name, types = found
            out.append(f"\n--- generic plan ({_GENERIC}), {label}: {title}")
            args = ", ".join(f"%s::{t}" for t in types)
            # a utility statement takes no bound parameters: the values go in as literals
            rows = (
                psycopg.ClientCursor(conn)
                .execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE {name}({args})", params)
                .fetchall()
            )
            out.extend(str(r[0]) for r in rows)

        first = cur.execute(_pg(claim_sql), claim_params(), prepare=True).fetchall()
        plan("an idle worker's claim (16 free slots)", claim_params())
        # the claim's rows: fingerprint, due, next due, then CLAIMED; finish+claim's: ids, ok,
        # due, sync, then CLAIMED
        more = cur.execute(*finish_call(first, 3), prepare=True).fetchall()
        plan("a busy worker's 16 successes and the claim of 16 more (one statement)", finish_call(more, 4)[1])
        conn.rollback()


def time_claims(store: PostgresStore, out: list[str], label: str) -> None:
    req = ClaimRequest("timing-worker", "default", None, 1, 30.0, "host", 1)
    times = []
    for _ in range(CLAIMS):
        t = time.perf_counter()
        got = store.job_claim(req, datetime.now(UTC))
        times.append((time.perf_counter() - t) * 1000)
        assert len(got) == 1
    times.sort()
    out.append(
        f"{CLAIMS} claims (one job each) with {label}: median {statistics.median(times):.2f} ms,"
        f" p95 {times[int(len(times) * 0.95) - 1]:.2f} ms, max {times[-1]:.2f} ms,"
        f" {CLAIMS / (sum(times) / 1000):,.0f} claims/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queued", type=int, default=1_000_000)
    ap.add_argument("--out", default="bench/results/claim_plan.txt")
    args = ap.parse_args()
    out: list[str] = [
        f"claim_plan.py at {datetime.now(UTC).isoformat(timespec='seconds')}, PostgreSQL {DB},"
        f" loadavg {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    ]
    store = fresh()
    try:
        store.job_insert_many(
            [NewJob(queue="default", spec=SPEC) for _ in range(CLAIMS + 100)], datetime.now(UTC)
        )
        with psycopg.connect(url(), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE jobs")
        explain(out, f"{CLAIMS + 100} queued")
        time_claims(store, out, f"{CLAIMS + 100} queued")
        fill(args.queued, out)
        explain(out, f"{args.queued + 100:,} queued")
        time_claims(store, out, f"{args.queued + 100:,} queued")
    finally:
        store.close()
    summary = [line for line in out if "claims (one job each)" in line or line.startswith("filled")]
    text = "\n".join(out[:1] + summary + out[1:]) + "\n"
    with open(args.out, "w") as fh:
        fh.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
