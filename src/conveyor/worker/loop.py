"""The worker: claim what fits, run it, renew leases, report outcomes in batches.

One loop thread claims and reports, and waits for new jobs and for its own threads in one
call (``_LoopSignal``); ``concurrency`` job threads run the attempts, taking them from one
queue; a heartbeat thread renews leases, carries terminate requests to running jobs and
rescues expired leases (the reaper is in every worker: idempotent, so any number may run it).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import timedelta

from conveyor import errors
from conveyor.clock import Clock
from conveyor.model import MAX_WORKER_SECONDS, ClaimRequest, Finish, Job, OutcomeKind, WorkerInfo
from conveyor.store import LeaseStatus, Store
from conveyor.store.blobs import DirectoryBlobStore, resolve_payload
from conveyor.templates import render_argv
from conveyor.worker.executors import (
    Execution,
    ExecutorConfig,
    FunctionCache,
    LogBuffer,
    PrintsToLogs,
    group_alive,
    run_function,
    run_process,
    signal_group,
)
from conveyor.worker.orphans import kill_attempts

log = logging.getLogger("conveyor.worker")

# An idle loop's first wait for new work (they double up to ``max_idle_wait``), after which it
# claims anyway. New work wakes it at once (``Store.wait_for_jobs``), and a delayed job the
# store knows of ends the wait when it falls due (``_until_due``): this wait only bounds how
# soon delayed jobs submitted by other processes are seen. From 20 ms, an idle worker at 50 jobs/s
# claimed nothing (~1 ms on PostgreSQL, a write transaction on SQLite) about when the next job
# arrived, whose claim then waited for it: a quarter of the jobs when commits were slow
IDLE_FIRST_WAIT = 0.25


class _LoopSignal:
    """``threading.Event`` for the loop thread, whose ``wait`` also ends when the store announces
    runnable jobs: the loop itself receives the wake-up. A listener thread handing it over
    cost a thread switch (~0.2 ms p50, milliseconds when the cores are busy)."""

    __slots__ = ("_event", "_interrupt", "_store", "_waiting")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._store: Store | None = None
        self._interrupt: Callable[[], None] | None = None
        self._waiting = False

    def attach(self, store: Store) -> None:
        """Wait on ``store`` from now on; called by the thread that will wait."""
        self._interrupt = store.waker()
        self._store = store

    def set(self) -> None:
        self._event.set()
        if self._waiting and self._interrupt is not None:
            self._interrupt()

    def is_set(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float) -> bool:
        """True when set, or when jobs may have become runnable, within ``timeout`` seconds."""
        store = self._store
        if store is None:
            return self._event.wait(timeout)
        self._waiting = True  # before the check: a set() after it interrupts the wait
        try:
            if self._event.is_set():
                return True
            start = time.monotonic()
            try:
                if store.wait_for_jobs(timeout):
                    return True
            except Exception:
                log.debug("waiting for jobs failed", exc_info=True)
        finally:
            self._waiting = False
        # a wait that ended early without news (a store error, a closing store) must not spin
        left = timeout - (time.monotonic() - start)
        return self._event.wait(left) if left > 0.001 else self._event.is_set()


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    environment: str = "default"
    queues: tuple[str, ...] | None = None
    concurrency: int = 4
    lease_seconds: float = 30.0
    burst: bool = False
    grace_seconds: float = 30.0
    max_idle_wait: float = 1.0
    retention: timedelta = timedelta(days=14)
    maintenance_interval: float = 3600.0
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)


@dataclass(slots=True)
class RunStats:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    other: int = 0


MAX_CONCURRENCY = 4096  # a thread per slot


def _unrecordable(f: Finish, why: str) -> Finish:
    """``f`` as the failed attempt it becomes when the store refused to record it, ``why``."""
    reason = f"worker error: the outcome could not be recorded: {why}"
    return Finish(f.job_id, f.attempt, f.worker_id, OutcomeKind.FAILED, reason[:1000])


def check_worker_config(config: WorkerConfig) -> None:
    """Refuse what would make a worker that cannot work: no slot, a lease that expires at
    once or never (NaN compares false with everything: a burst worker with one never exited)."""
    if not 1 <= config.concurrency <= MAX_CONCURRENCY:
        raise errors.ValidationError(
            "concurrency", f"{config.concurrency} is out of range", f"1..{MAX_CONCURRENCY}"
        )
    lease = config.lease_seconds
    if not 2 <= lease <= MAX_WORKER_SECONDS:  # NaN fails both
        reason = f"{lease:g} is too short" if lease < 2 else f"{lease:g} is not a lease length"
        raise errors.ValidationError("lease_seconds", reason, f"2..{MAX_WORKER_SECONDS:g} s")
    grace = config.grace_seconds
    if not 0 <= grace <= MAX_WORKER_SECONDS:
        raise errors.ValidationError("grace", f"{grace:g} is out of range", f"0..{MAX_WORKER_SECONDS:g} s")


class Worker:
    def __init__(self, store: Store, clock: Clock, blobs: DirectoryBlobStore, config: WorkerConfig) -> None:
        check_worker_config(config)
        if not config.executor.store_id:  # process jobs carry it: see orphans.py
            config = replace(config, executor=replace(config.executor, store_id=store.store_id()))
        self.store, self.clock, self.blobs, self.config = store, clock, blobs, config
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.host = socket.gethostname()
        self.functions = FunctionCache()
        self.stats = RunStats()
        self._running: dict[int, Execution] = {}
        self._abandoned: set[Execution] = set()
        self._lock = threading.Lock()
        self._done: queue.SimpleQueue[Finish] = queue.SimpleQueue()
        self._started: queue.SimpleQueue[Execution] = queue.SimpleQueue()
        self._unsent: list[Finish] = []
        self._claimed_all = False  # whether the last claim took fewer jobs than it had room for
        self._signal = _LoopSignal()
        self._stopping = threading.Event()
        self._immediate = threading.Event()
        self._threads_done = threading.Event()
        # attempts to run, for the job threads (None: a thread ends). A plain queue and a fixed
        # set of threads: a Future per attempt through ThreadPoolExecutor cost ~3x as much
        self._queue: queue.SimpleQueue[Execution | None] = queue.SimpleQueue()
        self._job_threads: list[threading.Thread] = []
        # _coalesce waits on it for ``_want`` finishes (0: nobody waits)
        self._done_cv = threading.Condition(threading.Lock())
        self._want = 0

    # -- control ----------------------------------------------------------------------------
    def request_stop(self, immediate: bool = False) -> None:
        """Stop claiming; running jobs get the grace period (none when ``immediate``)."""
        self._stopping.set()
        if immediate:
            self._immediate.set()
        self._signal.set()

    def run(self) -> RunStats:
        """Serve until stopped (or, with ``burst``, until nothing is runnable). Blocks."""
        now = self.clock.now()
        self.store.worker_register(
            WorkerInfo(
                id=self.id,
                host=self.host,
                pid=os.getpid(),
                environment=self.config.environment,
                queues=self.config.queues or (),
                concurrency=self.config.concurrency,
                started_at=now,
                heartbeat_at=now,
                stopped_at=None,
            )
        )
        log.info("worker %s serving environment %s", self.id, self.config.environment)
        beat = threading.Thread(target=self._heartbeat_loop, name="conveyor-heartbeat", daemon=True)
        beat.start()
        self._signal.attach(self.store)
        self._job_threads = [
            # daemons: an inline function that ignores its stop must not keep the process alive
            threading.Thread(target=self._job_thread, name=f"conveyor-job_{i}", daemon=True)
            for i in range(self.config.concurrency)
        ]
        for t in self._job_threads:
            t.start()
        prints = PrintsToLogs().__enter__()  # print() in a function job: to its log
        try:
            self._loop()
            self._shutdown()
        finally:
            prints.__exit__()
            self._threads_done.set()
            # the store may be closed right after run() returns: no thread of ours may still use it
            beat.join(timeout=10)
            for _ in self._job_threads:
                self._queue.put(None)
            try:
                self.store.worker_stop(self.id, self.clock.now())
            except errors.ConveyorError as exc:
                log.warning("could not record the worker's stop: %s", exc)
        return self.stats

    def hung_jobs(self) -> int:
        """Attempts whose thread is still running after the worker stopped (inline code that ignored it)."""
        with self._lock:
            return sum(1 for ex in list(self._running.values()) + list(self._abandoned) if not ex.reported)

    # -- the loop ---------------------------------------------------------------------------
    def _loop(self) -> None:
        first_wait = min(IDLE_FIRST_WAIT, self.config.max_idle_wait)
        idle_wait = first_wait
        store_down_since: float | None = None
        retry_wait = 0.1
        while True:
            self._signal.clear()
            try:
                if self._stopping.is_set():
                    self._flush()
                    return
                claimed = self._flush(claim=True)
                if store_down_since is not None:
                    log.warning("store reachable again after %.1f s", time.monotonic() - store_down_since)
                store_down_since, retry_wait = None, 0.1
            except errors.StoreUnavailable as exc:
                if store_down_since is None:
                    store_down_since = time.monotonic()
                    log.error(
                        "store unavailable, retrying (finished jobs are kept until it is back): %s", exc
                    )
                self._signal.wait(retry_wait)
                retry_wait = min(retry_wait * 2, 5.0)
                continue
            except Exception:
                # a bug or an unexpected database error must not end the worker without its
                # graceful shutdown: log it, back off, go on
                log.exception("worker loop error; retrying")
                self._signal.wait(retry_wait)
                retry_wait = min(retry_wait * 2, 5.0)
                continue
            self._check_deadlines()
            if claimed:
                idle_wait = first_wait
                # report the jobs just started together rather than one fast one at a time
                with self._lock:
                    busy = len(self._running)
                self._coalesce(busy)
                if self._claimed_all and self._done.empty():
                    # none has finished, and that claim took every job there was: another one
                    # now would find nothing (an empty write transaction after every job longer
                    # than the coalescing wait, beside it). Wait, as a busy worker does, for a
                    # finish or a wake-up (new work)
                    self._wait_busy(busy)
                continue
            with self._lock:
                busy = len(self._running)
            if not busy and not self._unsent and self._done.empty():
                # the claim found nothing, or had no slot to fill: threads of timed-out
                # functions that have not returned yet hold them all (a burst worker left
                # runnable jobs behind and said it had drained)
                if self.config.burst and self._free_slots() > 0:
                    return
                self._signal.wait(self._until_due(idle_wait))
                idle_wait = min(idle_wait * 2, self.config.max_idle_wait)
            else:
                self._wait_busy(busy)

    def _wait_busy(self, busy: int) -> None:
        """Wait for a finish, a wake-up or a stop while jobs run; after a finish, for the others
        about to end (``_coalesce``). Woken for new work with none finished, claim at once: the
        coalescing wait delayed a job submitted to a worker with free slots by 2 ms."""
        self._signal.wait(self._until_due(0.25))
        if not self._done.empty():
            self._coalesce(busy)

    def _until_due(self, wait: float) -> float:
        """``wait`` seconds, or less: until the earliest delayed job the store knows of falls due
        (``Store.next_due``; at least 5 ms), when a slot is free to start it. A delayed job,
        a retry's backoff or a snooze then starts on time rather than at the next idle claim
        (up to ``max_idle_wait`` late)."""
        due = self.store.next_due()
        if due is None or self._free_slots() <= 0:
            return wait
        return min(wait, max(0.005, (due - self.clock.now()).total_seconds()))

    def _coalesce(self, busy: int) -> None:
        """A batch of one finish costs a whole transaction: when more jobs are about to end, wait
        up to 2 ms for them, so finishes (and the claims that refill the slots) go in batches.
        The job thread that brings the last of them wakes the loop (``_reported``)."""
        target = max(1, busy)
        with self._done_cv:
            if self._done.qsize() >= target:
                return
            self._want = target
            try:
                self._done_cv.wait_for(
                    lambda: self._done.qsize() >= target or self._stopping.is_set(), timeout=0.002
                )
            finally:
                self._want = 0

    def _process_started(self, ex: Execution) -> None:
        """A job's process is running: the loop records it (STARTING -> RUNNING) at once, rather
        than at its next pass (up to 0.25 s later while jobs run)."""
        self._started.put(ex)
        self._signal.set()

    def _reported(self) -> None:
        """A finish was queued: wake ``_coalesce`` once all it waits for are in, and the loop."""
        with self._done_cv:
            if self._want and self._done.qsize() >= self._want:
                self._done_cv.notify()
        # a set flag needs no second set: the loop clears it before it drains the queue, and
        # the finish was queued before the flag was read
        if not self._signal.is_set():
            self._signal.set()

    def _free_slots(self, finishing: int = 0) -> int:
        """Slots free once ``finishing`` of the running jobs (all reported) are recorded."""
        with self._lock:
            alive_abandoned = sum(1 for ex in self._abandoned if not ex.reported)
            return self.config.concurrency - (len(self._running) - finishing) - alive_abandoned

    def _claim_request(self, free: int) -> ClaimRequest:
        return ClaimRequest(
            worker_id=self.id,
            environment=self.config.environment,
            queues=self.config.queues,
            limit=free,
            lease_seconds=self.config.lease_seconds,
            host=self.host,
            pid=os.getpid(),
        )

    def _started_jobs(self, jobs: list[Job]) -> int:
        if not jobs:
            return 0
        started = []
        for job in jobs:
            ex = Execution(job=job, worker_id=self.id)
            if job.spec.timeout_seconds:
                ex.deadline = ex.started + job.spec.timeout_seconds
            started.append(ex)
        with self._lock:
            for ex in started:
                self._running[ex.job.id] = ex
        for ex in started:
            self._queue.put(ex)
        self.stats.claimed += len(jobs)
        # let the job threads just woken take the GIL now, rather than when this loop next
        # blocks (~0.05 ms of an idle worker's enqueue -> start latency, p50, 3 A/B pairs)
        time.sleep(0)
        return len(jobs)

    def _job_thread(self) -> None:
        while True:
            ex = self._queue.get()
            if ex is None:
                return
            with self._lock:
                if ex.abandoned:  # released at shutdown before it started: it must not run
                    ex.reported = True
                    self._abandoned.discard(ex)
                    continue
            self._execute(ex)

    def _execute(self, ex: Execution) -> None:
        job = ex.job
        logbuf = LogBuffer(
            self._log_sink,
            job.id,
            job.attempt,
            self.config.executor.log_cap_bytes,
            self.config.executor.log_flush_seconds,
        )
        try:
            if job.spec.function is not None:
                if job.payload_ref or (job.payload is None and job.array_parent_id is not None):
                    payload = resolve_payload(self.store, self.blobs, job)
                else:
                    payload = job.payload
                result = run_function(ex, self.functions, payload, logbuf, self.config.executor)
            else:
                argv = render_argv(job)
                result = run_process(ex, argv, self.config.executor, logbuf, self._process_started)
        except BaseException as exc:  # the job thread must report every attempt
            log.exception("job %s: the worker failed to run it", job.id)
            result = Finish(
                job.id, job.attempt, self.id, OutcomeKind.FAILED, f"worker error: {type(exc).__name__}: {exc}"
            )
        with self._lock:
            ex.reported = True
            if ex.abandoned:
                self._abandoned.discard(ex)
                self._signal.set()
                return
        self._done.put(result)
        self._reported()

    def _log_sink(self, job_id: int, attempt: int, chunks: list[tuple[int, bytes]]) -> None:
        self.store.log_append(job_id, attempt, chunks)

    def _flush(self, claim: bool = False) -> int:
        """Report started processes and finished attempts, in batches; with ``claim``, also claim
        what then fits — in the same transaction as the finishes. Returns the number claimed.

        Unreported finishes are kept and retried if the store is down.
        """
        started: list[Execution] = []
        while True:
            try:
                started.append(self._started.get_nowait())
            except queue.Empty:
                break
        if started:
            try:
                self.store.job_mark_running(
                    [(ex.job.id, ex.job.attempt, ex.pid) for ex in started], self.clock.now()
                )
            except Exception:
                for ex in started:  # keep them for the next flush
                    self._started.put(ex)
                raise
        while True:
            try:
                self._unsent.append(self._done.get_nowait())
            except queue.Empty:
                break
        batch = self._unsent
        running = {f.job_id for f in batch}
        with self._lock:
            finishing = sum(1 for job_id in running if job_id in self._running)
        free = self._free_slots(finishing) if claim else 0
        if not batch:
            if free <= 0:
                return 0
            got = self.store.job_claim(self._claim_request(free), self.clock.now())
            self._claimed_all = len(got) < free
            return self._started_jobs(got)
        jobs: list[Job] = []
        try:
            if free > 0:
                _, jobs = self.store.job_finish_and_claim(batch, self._claim_request(free), self.clock.now())
                self._claimed_all = len(jobs) < free
            else:
                self.store.job_finish_many(batch, self.clock.now())
        except errors.StoreUnavailable:
            raise  # kept, reported once the store is back
        except Exception:
            # one finish the store refuses must not hold back the others (and the worker,
            # which retried the same batch forever): each alone, a refused one as a failure
            log.exception("reporting %d finish(es) failed; reporting them one at a time", len(batch))
            self._finish_one_by_one(batch)
        self._unsent = []
        with self._lock:
            for f in batch:
                self._running.pop(f.job_id, None)
        for f in batch:
            if f.kind is OutcomeKind.SUCCEEDED:
                self.stats.succeeded += 1
            elif f.kind in (OutcomeKind.FAILED, OutcomeKind.TERMINATED):
                self.stats.failed += 1
            else:
                self.stats.other += 1
        return self._started_jobs(jobs)

    def _finish_one_by_one(self, batch: list[Finish]) -> None:
        """Report each finish of ``batch`` alone; one the store refuses becomes a failed attempt
        saying why, and one it refuses even so is given up (the heartbeat then requeues its
        job as never received). Raises StoreUnavailable, with what is left still unsent."""
        for i, f in enumerate(batch):
            report: Finish | None = f
            while report is not None:
                try:
                    self.store.job_finish_many([report], self.clock.now())
                    break
                except errors.StoreUnavailable:
                    self._unsent = batch[i:]
                    raise
                except Exception as exc:
                    log.error("job %s: its outcome could not be recorded: %s", f.job_id, exc)
                    report = _unrecordable(f, f"{type(exc).__name__}: {exc}") if report is f else None

    def _check_deadlines(self) -> None:
        """Inline sync functions cannot be killed: report the timeout and stop waiting for them."""
        now = time.monotonic()
        with self._lock:
            late = [
                ex
                for ex in self._running.values()
                if ex.deadline is not None
                and now >= ex.deadline + 0.05
                and ex.job.spec.function is not None
                and not ex.abandoned
            ]
        for ex in late:
            self._abandon(ex, OutcomeKind.FAILED, f"timed out after {ex.job.spec.timeout_seconds:g} s")

    def _abandon(self, ex: Execution, kind: OutcomeKind, reason: str) -> None:
        ex.stop(reason, kind)
        with self._lock:
            if ex.reported or ex.abandoned:
                return
            ex.abandoned = True
            self._abandoned.add(ex)
            held = sum(1 for e in self._abandoned if not e.reported)
        if ex.job.spec.function is not None and not _is_async(ex):
            # interrupted (outcomes.Interrupted), but it cannot be killed: its thread keeps
            # the slot until the function returns, at once unless it is blocked in C code
            log.warning(
                "job %s: %s; its function was interrupted, and its thread keeps one of %d slots"
                " until it returns (%d held so)",
                ex.job.id,
                reason,
                self.config.concurrency,
                held,
            )
        self._done.put(Finish(ex.job.id, ex.job.attempt, self.id, kind, reason))
        self._reported()

    # -- background threads -----------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        interval = max(0.5, min(self.config.lease_seconds / 4, 5.0))
        rescue_every = max(1.0, self.config.lease_seconds / 2)
        last_rescue = 0.0
        last_maintenance = time.monotonic()
        unknown: set[int] = set()  # held in the store's eyes, not in ours, at the last beat
        while not self._threads_done.wait(interval):
            try:
                status = self.store.lease_renew(self.id, self.config.lease_seconds, self.clock.now())
                with self._lock:
                    running = dict(self._running)
                    known = running.keys() | {ex.job.id for ex in self._abandoned}
                unknown = self._give_back_unknown(status, known, unknown)
                for job_id in status.terminate:
                    ex = running.get(job_id)
                    if ex is not None:
                        log.info("job %s: terminate requested", job_id)
                        if ex.job.spec.function is not None and not _is_async(ex):
                            self._abandon(ex, OutcomeKind.TERMINATED, "terminated")
                        else:
                            ex.stop("terminated", OutcomeKind.TERMINATED)
                for job_id, ex in running.items():
                    if (
                        job_id not in status.attempts
                        and not ex.reported
                        and time.monotonic() - ex.started > interval * 2
                    ):
                        log.warning("job %s: lease lost (taken over after expiry); stopping it", job_id)
                        ex.stop("lease lost", OutcomeKind.FAILED)
                now = time.monotonic()
                if now - last_rescue >= rescue_every:
                    last_rescue = now
                    # processes left behind on this host by a dead worker die before their retry starts
                    orphans = [
                        (job_id, attempt)
                        for job_id, attempt, owner in self.store.job_expired_attempts(
                            self.host, self.clock.now()
                        )
                        if owner != self.id
                    ]
                    if orphans:
                        killed = kill_attempts(orphans, self.config.executor.store_id)
                        if killed:
                            log.warning(
                                "killed %d process(es) of attempts whose worker was lost", len(killed)
                            )
                    rescued = self.store.job_rescue_expired(self.clock.now())
                    if rescued:
                        log.warning("rescued %d job(s) whose worker was lost: %s", len(rescued), rescued[:10])
                        self._signal.set()
                if now - last_maintenance >= self.config.maintenance_interval:
                    last_maintenance = now
                    counts = self.store.prune(self.clock.now() - self.config.retention, self.clock.now())
                    if counts["jobs"] or counts["events"]:
                        log.info("retention: pruned %s", counts)
            except errors.ConveyorError as exc:
                log.warning("heartbeat failed: %s", exc)
            except Exception:
                log.exception("heartbeat failed")

    def _give_back_unknown(self, status: LeaseStatus, known: Collection[int], before: set[int]) -> set[int]:
        """Requeue the jobs the store says this worker holds but the worker never received: a
        claim whose answer was lost (PostgreSQL: the connection died after its COMMIT). Their
        leases would otherwise be renewed by every heartbeat, and the jobs stay RUNNING
        forever. Only jobs seen unknown at two beats in a row: a claim being taken in right
        now is unknown at one at most. Returns the ones seen unknown for the first time."""
        unknown = {job_id for job_id in status.attempts if job_id not in known}
        lost = sorted(unknown & before)
        if lost:
            log.warning(
                "job(s) %s: held by this worker in the store but never received (a lost claim "
                "answer); requeueing them",
                lost[:10],
            )
            self.store.job_release(
                self.id,
                [(job_id, status.attempts[job_id]) for job_id in lost],
                f"worker {self.id} never received the claim",
                self.clock.now(),
            )
        return unknown - set(lost)

    # -- shutdown ---------------------------------------------------------------------------
    def _shutdown(self) -> None:
        if self._stopping.is_set():
            deadline = time.monotonic() + (0 if self._immediate.is_set() else self.config.grace_seconds)
            while time.monotonic() < deadline and not self._immediate.is_set():
                with self._lock:
                    if not self._running:
                        break
                self._signal.wait(0.1)
                self._signal.clear()
                self._safe_flush()
        with self._lock:
            left = [ex for ex in self._running.values() if not ex.reported and not ex.abandoned]
        if left:
            log.warning("grace period over: requeueing %d job(s)", len(left))
            for ex in left:
                with self._lock:
                    ex.abandoned = True
                    self._abandoned.add(ex)
                ex.stop("worker shutting down", OutcomeKind.FAILED)
            self._end_processes([ex for ex in left if ex.pid is not None])
            try:
                self.store.job_release(
                    self.id,
                    [(ex.job.id, ex.job.attempt) for ex in left],
                    f"worker {self.id} shut down",
                    self.clock.now(),
                )
            except errors.ConveyorError as exc:
                log.error("could not requeue; the leases will expire instead: %s", exc)
            with self._lock:
                for ex in left:
                    self._running.pop(ex.job.id, None)
        self._safe_flush()

    def _end_processes(self, stopping: list[Execution]) -> None:
        """Wait until the process groups of the command jobs ``stopping`` (sent SIGTERM) are
        gone: SIGKILL after the executor's grace period (at once for an immediate stop). A job
        is requeued only then: one that ignored SIGTERM ran on beside its next attempt."""
        if not stopping:
            return
        grace = 0.0 if self._immediate.is_set() else self.config.executor.kill_grace_seconds
        kill_at = time.monotonic() + grace
        killed = False
        until = kill_at + 5.0
        while time.monotonic() < until:
            alive = [pid for pid in (ex.pid for ex in stopping) if pid is not None and group_alive(pid)]
            if not alive:
                return
            if not killed and time.monotonic() >= kill_at:
                for pid in alive:
                    signal_group(pid, signal.SIGKILL)
                killed = True
            time.sleep(0.05)
        log.error("process group(s) of job(s) %s still alive after SIGKILL", [ex.job.id for ex in stopping])

    def _safe_flush(self) -> None:
        try:
            self._flush()
        except errors.ConveyorError as exc:
            log.error("could not report finished jobs: %s", exc)


def _is_async(ex: Execution) -> bool:
    return ex._task is not None
