"""Small builders shared by the store contract tests (no fixtures here: see tests/conftest.py)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from conveyor.clock import FrozenClock
from conveyor.model import (
    ClaimRequest,
    DefinitionSpec,
    Dependency,
    Finish,
    Job,
    JobState,
    NewJob,
    OutcomeKind,
    RetryStrategy,
    WorkerInfo,
)
from conveyor.store import Store

FN = DefinitionSpec(function="tasks:work")
CMD = DefinitionSpec(command=("echo", "hi"))


def retrying(attempts: int = 3, delay: float = 0.0, **kw: Any) -> DefinitionSpec:
    """A function spec that retries ``attempts`` times with a fixed, jitter-free delay."""
    return DefinitionSpec(
        function="tasks:work",
        retry=RetryStrategy(attempts=attempts, delay_seconds=delay, jitter=False, **kw),
    )


def new(
    queue: str = "default",
    spec: DefinitionSpec = FN,
    *,
    deps: tuple[int, ...] = (),
    **kw: Any,
) -> NewJob:
    kw.setdefault("depends_on", tuple(Dependency(d) for d in deps))
    return NewJob(queue=queue, spec=spec, **kw)


def insert(store: Store, now: datetime, *jobs: NewJob) -> list[Job]:
    return [r.job for r in store.job_insert_many(list(jobs), now)]


def insert_one(store: Store, now: datetime, job: NewJob | None = None) -> Job:
    [got] = insert(store, now, job or new())
    return got


def claim(
    store: Store,
    now: datetime,
    worker: str = "w1",
    *,
    env: str = "default",
    limit: int = 10,
    lease: float = 30.0,
    queues: tuple[str, ...] | None = None,
) -> list[Job]:
    return store.job_claim(ClaimRequest(worker, env, queues, limit, lease), now)


def claim_one(store: Store, now: datetime, worker: str = "w1", **kw: Any) -> Job:
    jobs = claim(store, now, worker, limit=1, **kw)
    assert len(jobs) == 1, f"expected one claimed job, got {jobs}"
    return jobs[0]


def finish(
    store: Store,
    now: datetime,
    job: Job,
    kind: OutcomeKind = OutcomeKind.SUCCEEDED,
    *,
    worker: str | None = None,
    attempt: int | None = None,
    **kw: Any,
) -> bool:
    f = Finish(
        job.id,
        job.attempt if attempt is None else attempt,
        worker or job.worker_id or "w1",
        kind,
        **kw,
    )
    [ok] = store.job_finish_many([f], now)
    return ok


def get(store: Store, job_id: int) -> Job:
    job = store.job_get(job_id)
    assert job is not None, f"job {job_id} is missing"
    return job


def state(store: Store, job_id: int) -> JobState:
    return get(store, job_id).state


def states(store: Store, *job_ids: int) -> list[JobState]:
    return [state(store, j) for j in job_ids]


def job_states_seen(store: Store, job_id: int) -> list[str]:
    """The ``to`` states of a job's ``job.state`` events, in order."""
    return [
        str(e.data["to"])
        for e in store.events_list(entity="job", entity_id=str(job_id), limit=10_000)
        if e.type == "job.state"
    ]


def worker(worker_id: str, env: str, now: datetime) -> WorkerInfo:
    return WorkerInfo(
        id=worker_id,
        host="host-1",
        pid=1234,
        environment=env,
        queues=(),
        concurrency=4,
        started_at=now,
        heartbeat_at=now,
        stopped_at=None,
    )


# waits in another process (SQLite's data_version poll slowed to 60 s): "woken" or "timeout"
_WAITER = """
import sys
from conveyor.store import open_store
store = open_store(sys.argv[1])
store.poll_seconds = 60.0
store.wait_for_jobs(0.01)  # binds the socket / LISTENs
print("ready", flush=True)
print("woken" if store.wait_for_jobs(30.0) else "timeout", flush=True)
store.close()
"""


@contextlib.contextmanager
def waiter_in_another_process(url: str) -> Iterator[Callable[[], str]]:
    """A process waiting for jobs of ``url`` (``_WAITER``), ready once entered; gives a function
    that reads its answer ("woken" or "timeout") and expects it to exit."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    waiter = subprocess.Popen(
        [sys.executable, "-c", _WAITER, url], stdout=subprocess.PIPE, text=True, env=env
    )
    stdout = waiter.stdout
    assert stdout is not None

    def answer() -> str:
        got = stdout.readline().strip()
        assert waiter.wait(30) == 0
        return got

    try:
        assert stdout.readline().strip() == "ready"
        yield answer
    finally:
        waiter.kill()
        waiter.wait(5)


def run_exactly(
    store: Store, clock: FrozenClock, job_id: int, kind: OutcomeKind = OutcomeKind.SUCCEEDED
) -> None:
    """Run exactly ``job_id`` (it must be runnable) to ``kind``; other claimed jobs are given back."""
    claimed = claim(store, clock.now(), limit=1000)
    target = [j for j in claimed if j.id == job_id]
    assert target, f"job {job_id} was not claimable"
    others = [(j.id, j.attempt) for j in claimed if j.id != job_id]
    assert len(store.job_release("w1", others, "not this one", clock.now())) == len(others)
    assert finish(store, clock.now(), target[0], kind, reason="boom")
