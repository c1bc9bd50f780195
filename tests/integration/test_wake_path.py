"""The wake-up path of an idle worker: its loop waits on the store itself (``Store.waker``
interrupts that wait), and one submission sends only the first idle waiter to claim at once,
the others ``wakeup.STAGGER`` later. Real databases, real processes and threads."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from conveyor.app import App
from conveyor.clock import FrozenClock
from conveyor.engine.jobs import SubmitRequest
from conveyor.model import ClaimRequest, JobState
from conveyor.store import Store, open_store, wakeup
from conveyor.store.sqlite import SQLiteStore

from ..store_contract.helpers import insert, new
from . import jobs_fixtures
from .helpers import WorkerThread, config, wait_for_state

# waits in another process (data_version poll slowed to 60 s) and prints, when woken, the
# monotonic time (one clock for every process on Linux)
WAITER = """
import sys, time
from conveyor.store import open_store
store = open_store(sys.argv[1])
store.poll_seconds = 60.0
store.wait_for_jobs(0.01)  # binds the socket
print("ready", flush=True)
woken = store.wait_for_jobs(30.0)
print("woken" if woken else "timeout", repr(time.monotonic()), flush=True)
store.close()
"""


def test_the_waker_ends_the_waiting_threads_wait_at_once(db_url: str) -> None:
    store = open_store(db_url)
    try:
        store.poll_seconds = 60.0  # type: ignore[attr-defined]
        assert not store.wait_for_jobs(0.01)  # binds the socket / LISTEN connection
        wake = store.waker()
        threading.Timer(0.2, wake).start()
        started = time.monotonic()
        assert store.wait_for_jobs(30.0)
        assert time.monotonic() - started < 10.0
        wake()  # before the wait: the next one returns at once
        started = time.monotonic()
        assert store.wait_for_jobs(30.0)
        assert time.monotonic() - started < 10.0
        assert not store.wait_for_jobs(0.05), "an interrupt counts once"
    finally:
        store.close()


def test_the_waker_works_with_an_unusable_wake_folder(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    try:
        Path(store._channel.folder).write_text("not a folder")  # type: ignore[attr-defined]
        assert not store.wait_for_jobs(0.01)  # no socket: the polling fallback
        threading.Timer(0.2, store.waker()).start()
        started = time.monotonic()
        assert store.wait_for_jobs(30.0)
        assert time.monotonic() - started < 10.0
    finally:
        store.close()


def test_one_submission_sends_the_first_waiting_process_at_once_and_the_next_after_the_stagger(
    sqlite_url: str, clock: FrozenClock
) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    waiters = [
        subprocess.Popen(
            [sys.executable, "-c", WAITER, sqlite_url], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    try:
        for w in waiters:
            assert w.stdout is not None
            assert w.stdout.readline().strip() == "ready"
        store = open_store(sqlite_url)
        try:
            sent = time.monotonic()
            insert(store, clock.now(), new())
        finally:
            store.close()
        woken = []
        for w in waiters:
            assert w.stdout is not None
            word, at = w.stdout.readline().split()
            assert word == "woken"
            woken.append(float(at) - sent)
            assert w.wait(30) == 0
    finally:
        for w in waiters:
            w.kill()
            w.wait(5)
    # the second in the sender's round received its wake-up after the send, then left the
    # first STAGGER seconds to claim (both wake: a first that cannot take the job strands nothing)
    assert max(woken) >= wakeup.STAGGER
    assert max(woken) < 20.0


def test_postgres_listeners_after_the_first_return_a_stagger_later(pg_url: str, clock: FrozenClock) -> None:
    stores = [open_store(pg_url) for _ in range(2)]
    woke: dict[int, tuple[int, float]] = {}
    ready = threading.Barrier(3)
    # the listeners connect one after the other: two connecting at the same moment can both
    # rank 0 until their next idle re-rank (a backend is not listed until its start-up is
    # done, and the rank orders by when it began), which only costs one extra claim
    ranked = [threading.Event() for _ in range(2)]

    def wait(i: int) -> None:
        store = stores[i]
        if i:
            ranked[i - 1].wait(10)
        store.wait_for_jobs(0.01)  # LISTEN, and the rank among the listeners
        rank: int = store._local.rank  # type: ignore[attr-defined]
        ranked[i].set()
        ready.wait(10)
        assert store.wait_for_jobs(30.0)
        woke[i] = (rank, time.monotonic())

    threads = [threading.Thread(target=wait, args=(i,), daemon=True) for i in range(2)]
    try:
        for t in threads:
            t.start()
        ready.wait(10)
        sent = time.monotonic()
        insert(stores[0], clock.now(), new())  # runnable (nobody claims it): both return
        for t in threads:
            t.join(30)
    finally:
        for s in stores:
            s.close()
    assert sorted(rank for rank, _ in woke.values()) == [0, 1]
    [second] = [at for rank, at in woke.values() if rank == 1]
    assert second - sent >= wakeup.STAGGER


def test_an_idle_worker_stops_at_once_though_its_idle_wait_is_long(app: App) -> None:
    with WorkerThread(app, config(burst=False, max_idle_wait=60.0)) as wt:
        # idle: its waits double from 0.25 s; the one under way runs from ~3.75 s to ~7.75 s
        time.sleep(6.0)
        started = time.monotonic()
        wt.worker.request_stop()
        wt.join(30.0)
        assert time.monotonic() - started < 3.0


def test_an_idle_worker_starts_a_job_submitted_by_another_process_without_its_idle_poll(
    db_url: str, tmp_path: Path
) -> None:
    app = App.open(db_url, blob_dir=tmp_path / "blobs")
    try:
        app.store.poll_seconds = 60.0  # type: ignore[attr-defined]
        with WorkerThread(app, config(burst=False, max_idle_wait=60.0)) as wt:
            time.sleep(4.5)  # idle, waiting on the store (the wait under way ends at ~7.75 s)
            other = App.open(db_url, blob_dir=tmp_path / "blobs")
            try:
                job = other.jobs.submit(SubmitRequest(command=["true"])).job
            finally:
                other.close()
            deadline = time.monotonic() + 1.5
            while app.jobs.get(job.id).state is not JobState.SUCCEEDED:
                assert time.monotonic() < deadline, "the idle worker was not woken"
                time.sleep(0.02)
            wt.worker.request_stop()
            wt.join(30.0)
    finally:
        app.close()


def test_the_waiting_thread_claims_on_its_own_connection_and_the_claim_commits_with_its_events(
    db_url: str, clock: FrozenClock
) -> None:
    # PostgreSQL: the worker's loop claims in one statement on its LISTEN connection, which
    # commits asynchronously (set for that session only: submissions still wait for the flush)
    worker, other = open_store(db_url), open_store(db_url)
    try:
        worker.wait_for_jobs(0.01)  # the thread's LISTEN connection / wake-up socket
        [job] = insert(other, clock.now(), new())
        assert worker.wait_for_jobs(10.0)
        req = ClaimRequest("w1", "default", None, 4, 30.0, host="h", pid=7)
        [got] = worker.job_claim(req, clock.now())
        assert got.id == job.id and got.state is JobState.RUNNING and got.worker_id == "w1"
        seen = other.job_get(job.id)
        assert seen is not None and seen.state is JobState.RUNNING and seen.attempt == 1
        assert [
            (e.data.get("from"), e.data["to"]) for e in other.events_list(entity="job", entity_id=str(job.id))
        ] == [
            (None, "RUNNABLE"),
            ("RUNNABLE", "RUNNING"),
        ]
        assert worker.job_claim(req, clock.now()) == []
        if db_url.startswith("postgresql"):
            listener = worker._local.listener  # type: ignore[attr-defined]
            assert listener.execute("SHOW synchronous_commit").fetchone()[0] == "off"
            with worker._pool.connection() as conn:  # type: ignore[attr-defined]
                assert conn.execute("SHOW synchronous_commit").fetchone()["synchronous_commit"] == "on"
    finally:
        worker.close()
        other.close()


def test_waiting_threads_claiming_at_once_each_take_a_job_exactly_once(
    db_url: str, clock: FrozenClock
) -> None:
    # every thread claims on its own LISTEN connection / socket (PostgreSQL: the one-statement
    # claim; SKIP LOCKED and the RUNNABLE check keep it exactly once)
    store = open_store(db_url)
    try:
        jobs = insert(store, clock.now(), *[new() for _ in range(120)])
        claimed: list[int] = []
        lock = threading.Lock()
        start = threading.Barrier(4)

        def claim_all(i: int) -> None:
            store.wait_for_jobs(0.001)
            start.wait(10)
            req = ClaimRequest(f"w{i}", "default", None, 3, 30.0)
            while got := store.job_claim(req, clock.now()):
                with lock:
                    claimed.extend(j.id for j in got)

        threads = [threading.Thread(target=claim_all, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(claimed) == sorted(j.id for j in jobs)
        starts = [e for e in store.events_list(entity="job", limit=1000) if e.data.get("from") == "RUNNABLE"]
        assert len(starts) == len(jobs)
    finally:
        store.close()


def _late_wakeup(store: Store) -> None:
    """A wake-up of rank 1 (SQLite: the datagram ``WakeChannel.notify`` sends the second socket
    of its round; PostgreSQL has it from its NOTIFY and its rank)."""
    if isinstance(store, SQLiteStore):
        channel = store._channel
        [name] = channel._mine.values()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(bytes((1,)), channel._address(name))


def test_a_late_waiter_whose_job_was_taken_waits_on_and_wakes_for_the_next(
    db_url: str, clock: FrozenClock
) -> None:
    # A waiter woken with a rank above 0 waits out the stagger, then asks whether a job is
    # still runnable (wakeup.ANY_RUNNABLE): when the first waiter took it, it waits on rather
    # than claim nothing (a write transaction on SQLite) beside the first one's job
    first, waiter, other = open_store(db_url), open_store(db_url), open_store(db_url)
    sqlite = isinstance(waiter, SQLiteStore)
    req = ClaimRequest("w1", "default", None, 4, 30.0)
    try:
        waiter.poll_seconds = 60.0  # type: ignore[attr-defined]
        if not sqlite:  # two listeners, the waiter second: it hears the NOTIFY with rank 1
            first.wait_for_jobs(0.01)
            waiter.wait_for_jobs(0.01)
            assert waiter._local.rank == 1  # type: ignore[attr-defined]
        [taken] = insert(other, clock.now(), new())
        assert [j.id for j in other.job_claim(req, clock.now())] == [taken.id]  # "the first" took it
        if sqlite:  # its socket, bound after that submission's round, gets a rank 1 of its own
            waiter.wait_for_jobs(0.01)
            _late_wakeup(waiter)
        assert not waiter.wait_for_jobs(0.5), "woken for a job taken already"
        [job] = insert(other, clock.now(), new())
        _late_wakeup(waiter)
        assert waiter.wait_for_jobs(30.0), "not woken for a runnable job"
        assert [j.id for j in waiter.job_claim(req, clock.now())] == [job.id]
    finally:
        for s in (first, waiter, other):
            s.close()


def test_a_worker_running_a_long_job_starts_jobs_submitted_while_it_runs(app: App) -> None:
    # the loop waits for a finish or a wake-up while jobs run (after a claim that took every
    # job there was, it no longer claims again at once): no wake-up is lost meanwhile, and one
    # with nothing finished is acted on at once (no coalescing wait for finishes)
    with WorkerThread(app, config(burst=False, concurrency=4, max_idle_wait=60.0)) as wt:
        long = app.jobs.submit(
            SubmitRequest(function=f"{jobs_fixtures.MODULE}:sync_sleep", parameters={"seconds": "60"})
        )
        wait_for_state(app, long.job.id, JobState.RUNNING)
        for _ in range(3):
            job = app.jobs.submit(
                SubmitRequest(function=f"{jobs_fixtures.MODULE}:add", payload={"args": [1, 2]})
            )
            done = wait_for_state(app, job.job.id, JobState.SUCCEEDED)
            assert done.result == 3
        assert app.jobs.get(long.job.id).state is JobState.RUNNING
        wt.worker.request_stop(immediate=True)
        wt.join(30.0)
