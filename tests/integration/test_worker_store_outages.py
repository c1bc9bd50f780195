"""A worker and a store that lets it down: claims whose answer never arrived, and (PostgreSQL)
every connection to the database cut at once, as a restart does. Real databases, a real
worker in a thread."""

from __future__ import annotations

import os
import socket
import time

import psycopg
import pytest

from conveyor.app import App
from conveyor.engine.jobs import SubmitRequest
from conveyor.model import ClaimRequest, JobState

from . import jobs_fixtures as fx
from .helpers import WorkerThread, config, wait_for, wait_for_state


def test_jobs_the_store_says_the_worker_holds_but_it_never_received_are_requeued(app: App) -> None:
    """A claim can commit and its answer be lost (the connection dies after COMMIT): the jobs
    are then the worker's in the store, and its heartbeat renewed their leases for ever."""
    app.catalog.put_queue("elsewhere")
    with WorkerThread(app, config(burst=False, queues=("default",), lease_seconds=2.0)) as wt:
        # a job the worker really runs, across several heartbeats (every 0.5 s): left alone
        running = app.jobs.submit(SubmitRequest(command=("sleep", "1.6"))).job
        wait_for_state(app, running.id, JobState.RUNNING)
        # a claim in the worker's name whose answer the worker never got
        lost = app.jobs.submit(SubmitRequest(queue="elsewhere", command=("true",))).job
        [claimed] = app.store.job_claim(
            ClaimRequest(wt.worker.id, "default", ("elsewhere",), 1, 2.0, socket.gethostname(), os.getpid()),
            app.clock.now(),
        )
        assert claimed.id == lost.id and claimed.state is JobState.STARTING
        back = wait_for_state(app, lost.id, JobState.RUNNABLE, timeout=10.0)
        assert back.status_reason == f"requeued: worker {wt.worker.id} never received the claim"
        assert back.attempts_counted == 0, "the attempt never ran: it does not count"
        [attempt] = app.store.job_attempts(lost.id)
        assert (attempt.worker_id, attempt.counted) == (wt.worker.id, False)
        assert attempt.reason == f"requeued: worker {wt.worker.id} never received the claim"
        done = wait_for_state(app, running.id, JobState.SUCCEEDED, JobState.FAILED, timeout=10.0)
        assert (done.state, done.attempt) == (JobState.SUCCEEDED, 1), done.status_reason
        assert len(app.store.job_attempts(running.id)) == 1


@pytest.mark.postgres
def test_a_postgresql_worker_carries_on_after_every_connection_is_cut(pg_url: str) -> None:
    """What a database restart does to the worker's connections (its LISTEN connection, which
    it claims and finishes on, the pool, the heartbeat's): every job submitted before and
    after still succeeds, once, and the worker is still serving."""
    app = App.open(pg_url)
    try:
        with WorkerThread(app, config(burst=False, concurrency=2, lease_seconds=4.0)) as wt:
            before = [
                app.jobs.submit(SubmitRequest(function=fx.path("add"), payload={"args": [i, 1]})).job.id
                for i in range(5)
            ]
            for job_id in before:
                wait_for_state(app, job_id, JobState.SUCCEEDED)
            time.sleep(0.3)  # the worker idle, waiting on its LISTEN connection
            with psycopg.connect(pg_url, autocommit=True) as admin:
                pids = [
                    r[0]
                    for r in admin.execute(
                        "SELECT pid FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    ).fetchall()
                ]
                assert len(pids) >= 3, "the worker's and the submitter's connections"
                admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))

                def gone() -> bool:
                    row = admin.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
                    ).fetchone()
                    return row is not None and row[0] == 0

                wait_for("the cut backends to exit", gone)
            # the submitter's idle connections were closed by the server: each is seen closed
            # before it is used, and replaced, so no submission fails
            after = [
                app.jobs.submit(SubmitRequest(function=fx.path("add"), payload={"args": [i, 2]})).job.id
                for i in range(5)
            ]
            for job_id in after:
                job = wait_for_state(app, job_id, JobState.SUCCEEDED, JobState.FAILED, timeout=20.0)
                assert job.state is JobState.SUCCEEDED and job.attempt == 1, job.status_reason
            assert [app.jobs.get(i).result for i in after] == [i + 2 for i in range(5)]
            wait_for(
                "the worker's heartbeat after the cut", lambda: bool(app.store.worker_list(app.clock.now()))
            )
            assert wt.thread.is_alive()
    finally:
        app.close()
