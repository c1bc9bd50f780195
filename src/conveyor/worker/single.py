"""Run exactly one named job and exit with its exit code (``conveyor run-job``).

The container-per-job model: an orchestrator starts one container per job, passing the job
id to this entrypoint. The attempt holds a lease renewed while it runs, and honours
terminate requests, like any worker's.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from conveyor import errors
from conveyor.clock import Clock
from conveyor.model import MAX_ID, MAX_WORKER_SECONDS, Finish, Job, OutcomeKind, WorkerInfo
from conveyor.store import Store
from conveyor.store.blobs import DirectoryBlobStore, resolve_payload
from conveyor.templates import render_argv
from conveyor.worker.executors import (
    Execution,
    ExecutorConfig,
    FunctionCache,
    LogBuffer,
    PrintsToLogs,
    run_function,
    run_process,
)


@dataclass(frozen=True, slots=True)
class SingleRun:
    job: Job
    finish: Finish

    @property
    def exit_code(self) -> int:
        if self.finish.kind is OutcomeKind.SUCCEEDED:
            return 0
        if self.finish.exit_code not in (None, 0):
            return int(self.finish.exit_code or 1)
        return 1


def run_single(
    store: Store,
    clock: Clock,
    blobs: DirectoryBlobStore,
    job_id: int,
    *,
    environment: str | None = None,
    lease_seconds: float = 30.0,
    executor: ExecutorConfig | None = None,
) -> SingleRun:
    if type(job_id) is not int or not 1 <= job_id <= MAX_ID:  # past SQLite's INTEGER: no such job
        raise errors.UnknownJob(job_id)
    if not 2 <= lease_seconds <= MAX_WORKER_SECONDS:  # NaN fails both
        raise errors.ValidationError(
            "lease_seconds", f"{lease_seconds:g} is out of range", f"2..{MAX_WORKER_SECONDS:g} s"
        )
    config = executor or ExecutorConfig()
    if not config.store_id:
        config = replace(config, store_id=store.store_id())
    host = socket.gethostname()
    worker_id = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}-run-job"
    now = clock.now()
    job = store.job_claim_one(
        job_id,
        worker_id=worker_id,
        environment=environment,
        lease_seconds=lease_seconds,
        host=host,
        pid=os.getpid(),
        now=now,
    )
    store.worker_register(
        WorkerInfo(
            worker_id,
            host,
            os.getpid(),
            job.compute_environment or "default",
            (job.queue,),
            1,
            now,
            now,
            None,
        )
    )
    ex = Execution(job=job, worker_id=worker_id)
    if job.spec.timeout_seconds:
        ex.deadline = ex.started + job.spec.timeout_seconds
    done = threading.Event()

    def heartbeat() -> None:
        interval = max(0.5, min(lease_seconds / 4, 5.0))
        while not done.wait(interval):
            try:
                status = store.lease_renew(worker_id, lease_seconds, clock.now())
            except Exception:
                continue
            if job.id in status.terminate:
                ex.stop("terminated", OutcomeKind.TERMINATED)

    beat = threading.Thread(target=heartbeat, name="conveyor-run-job-heartbeat", daemon=True)
    beat.start()
    log = LogBuffer(
        lambda j, a, chunks: store.log_append(j, a, chunks),
        job.id,
        job.attempt,
        config.log_cap_bytes,
        config.log_flush_seconds,
    )
    try:
        if job.spec.function is not None:
            with PrintsToLogs():
                finish = _run_function_bounded(ex, resolve_payload(store, blobs, job), log, config)
        else:
            finish = run_process(
                ex,
                render_argv(job),
                config,
                log,
                lambda started: store.job_mark_running([(job.id, job.attempt, started.pid)], clock.now()),
            )
    except BaseException as exc:  # reported, whatever it is: the job must not stay RUNNING
        finish = Finish(
            job.id,
            job.attempt,
            worker_id,
            OutcomeKind.FAILED,
            f"run-job error: {type(exc).__name__}: {exc}"[:1000],
        )
    finally:
        done.set()
    store.job_finish_many([finish], clock.now())
    store.worker_stop(worker_id, clock.now())
    final = store.job_get(job.id) or job
    return SingleRun(final, finish)


# how long a function job asked to stop (timeout, terminate) has to end before it is given up
_STOP_GRACE = 1.0


def _run_function_bounded(ex: Execution, payload: Any, log: LogBuffer, config: ExecutorConfig) -> Finish:
    """``run_function`` in a thread of its own, given up ``_STOP_GRACE`` after its timeout or a
    terminate request: a sync function cannot be interrupted, and ``run-job`` waited for it
    forever (the job RUNNING, its lease renewed). This process exits after the report, and
    the function's thread with it."""
    job = ex.job
    box: list[Finish] = []
    ended = threading.Event()

    def target() -> None:
        try:
            box.append(run_function(ex, FunctionCache(), payload, log, config))
        except BaseException as exc:
            box.append(
                Finish(
                    job.id,
                    job.attempt,
                    ex.worker_id,
                    OutcomeKind.FAILED,
                    f"run-job error: {type(exc).__name__}: {exc}"[:1000],
                )
            )
        finally:
            ended.set()

    threading.Thread(target=target, name="conveyor-run-job-function", daemon=True).start()
    give_up_at: float | None = None
    while not ended.wait(0.05):
        now = time.monotonic()
        if give_up_at is None and (
            ex.stop_reason is not None or (ex.deadline is not None and now >= ex.deadline)
        ):
            give_up_at = now + _STOP_GRACE  # an async function is cancelled meanwhile
        if give_up_at is not None and now >= give_up_at:
            if ex.stop_kind is not None:
                return Finish(job.id, job.attempt, ex.worker_id, ex.stop_kind, ex.stop_reason or "stopped")
            return Finish(
                job.id,
                job.attempt,
                ex.worker_id,
                OutcomeKind.FAILED,
                f"timed out after {job.spec.timeout_seconds:g} s",
            )
    return box[0]
