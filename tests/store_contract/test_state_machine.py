"""Random sequences of store operations never break the job state diagram.

A Hypothesis state machine drives one store (both backends) with submissions, claims,
finishes of every outcome, cancels, terminations, lease expiry, releases and retries. After
every step each job's ``job.state`` events must follow the diagram (docs/states.md), the
last event must match the stored state, and leases must match states. Examples share the
test's database; each uses its own queue and key names so they do not see each other.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import timedelta

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conveyor import errors
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
    Queue,
    RetryAction,
    RetryRule,
    RetryStrategy,
)
from conveyor.store import Store

INITIAL = {"SUBMITTED", "PENDING", "RUNNABLE", "FAILED"}
LEGAL: dict[str, set[str]] = {
    "SUBMITTED": {"RUNNABLE", "CANCELLED", "FAILED"},
    "PENDING": {"RUNNABLE", "SUBMITTED", "FAILED", "CANCELLED", "SUCCEEDED"},
    "RUNNABLE": {"STARTING", "RUNNING", "CANCELLED", "FAILED"},
    "STARTING": {"RUNNING", "SUCCEEDED", "FAILED", "SUBMITTED", "RUNNABLE", "CANCELLED"},
    "RUNNING": {"SUCCEEDED", "FAILED", "SUBMITTED", "RUNNABLE", "CANCELLED"},
    "FAILED": {"RUNNABLE", "PENDING"},  # only through job_retry
    "CANCELLED": {"RUNNABLE", "PENDING"},  # only through job_retry
    "SUCCEEDED": set(),
}
WORKERS = ("w1", "w2", "w3")
LEASE = 30.0


def check_history(job: Job, events: list[dict[str, object]]) -> None:
    """The job's state events follow the diagram and end in its stored state."""
    assert events, f"job {job.id} has no state event"
    seen = [str(e["to"]) for e in events]
    assert seen[0] in INITIAL, f"job {job.id} started as {seen[0]}: {seen}"
    for before, event in zip(seen, events[1:], strict=False):
        after = str(event["to"])
        assert after in LEGAL[before], f"job {job.id}: {before} -> {after} is not allowed: {seen}"
        if "from" in event:
            assert event["from"] == before, f"job {job.id}: event says from {event['from']}, was {before}"
        if before in ("FAILED", "CANCELLED"):
            assert event.get("reason") == "retried by user", f"job {job.id} left {before} by {event}"
        if before == "PENDING" and after == "SUCCEEDED":
            assert job.array_size, f"job {job.id} succeeded without running and is not an array"
    assert seen[-1] == job.state.value, f"job {job.id} is {job.state.value} but its events say {seen}"


def test_random_operations_keep_every_job_in_the_state_diagram(store: Store, clock: FrozenClock) -> None:
    examples = itertools.count()
    cursor = [0]  # the last event id seen by an earlier example

    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.n = next(examples)
            self.queue = f"q{self.n}"
            store.queue_put(Queue(self.queue), clock.now())
            self.ids: list[int] = []
            # only events after this point can belong to this example's jobs
            newer = store.events_list(after_id=cursor[0], limit=1_000_000)
            if newer:
                cursor[0] = newer[-1].id
            self.events_from = cursor[0]

        # -- helpers ----------------------------------------------------------------------
        def pick(self, index: int) -> Job:
            job = store.job_get(self.ids[index % len(self.ids)])
            assert job is not None
            return job

        def active(self) -> list[Job]:
            return store.job_list(
                states=[JobState.STARTING, JobState.RUNNING],
                queue=self.queue,
                include_children=True,
                limit=1000,
            )

        # -- rules ------------------------------------------------------------------------
        @rule(
            command=st.booleans(),
            attempts=st.integers(1, 3),
            delay=st.sampled_from([0.0, 5.0]),
            later=st.booleans(),
            dep=st.one_of(st.none(), st.integers(0, 1000)),
            array_size=st.sampled_from([None, None, 2, 3]),
            sequential=st.booleans(),
            unique=st.sampled_from([None, None, "a", "b"]),
            ttl=st.sampled_from([None, 20.0]),
            exit_rule=st.booleans(),
        )
        def insert(
            self,
            command: bool,
            attempts: int,
            delay: float,
            later: bool,
            dep: int | None,
            array_size: int | None,
            sequential: bool,
            unique: str | None,
            ttl: float | None,
            exit_rule: bool,
        ) -> None:
            strategy = RetryStrategy(
                attempts=attempts,
                delay_seconds=delay,
                jitter=False,
                evaluate_on_exit=(RetryRule(RetryAction.EXIT, on_exit_code="2"),) if exit_rule else (),
            )
            spec = (
                DefinitionSpec(command=("run",), retry=strategy)
                if command
                else DefinitionSpec(function="m:f", retry=strategy)
            )
            depends = (Dependency(self.ids[dep % len(self.ids)]),) if dep is not None and self.ids else ()
            nj = NewJob(
                queue=self.queue,
                spec=spec,
                run_at=clock.now() + timedelta(seconds=10) if later else None,
                depends_on=depends,
                array_size=array_size,
                array_sequential=sequential,
                unique_key=f"{self.n}:{unique}" if unique else None,
                unique_ttl_seconds=ttl,
            )
            [res] = store.job_insert_many([nj], clock.now())
            if res.existing:
                assert res.job.id in self.ids
                return
            self.ids.append(res.job.id)
            if array_size:
                kids = store.job_list(array_parent_id=res.job.id, limit=100)
                # a failed dependency fails the array at submission, before any child exists
                assert len(kids) == (0 if res.job.state is JobState.FAILED else array_size)
                self.ids.extend(k.id for k in kids)

        @rule(worker=st.sampled_from(WORKERS), limit=st.integers(1, 3))
        def claim(self, worker: str, limit: int) -> None:
            got = store.job_claim(ClaimRequest(worker, "default", (self.queue,), limit, LEASE), clock.now())
            assert len(got) <= limit
            for job in got:
                assert job.id in self.ids
                assert job.state in (JobState.STARTING, JobState.RUNNING) and job.worker_id == worker

        @rule(index=st.integers(0, 1000))
        def mark_running(self, index: int) -> None:
            starting = [j for j in self.active() if j.state is JobState.STARTING]
            if starting:
                job = starting[index % len(starting)]
                store.job_mark_running([(job.id, job.attempt, 99)], clock.now())
                assert store.job_get(job.id) is not None

        @rule(
            index=st.integers(0, 1000),
            kind=st.sampled_from(list(OutcomeKind)),
            exit_code=st.sampled_from([None, 0, 1, 2]),
            delay=st.sampled_from([None, 0.0, 5.0]),
        )
        def finish(self, index: int, kind: OutcomeKind, exit_code: int | None, delay: float | None) -> None:
            running = self.active()
            if not running:
                return
            job = running[index % len(running)]
            assert job.worker_id is not None
            f = Finish(job.id, job.attempt, job.worker_id, kind, "boom", exit_code, None, delay)
            assert store.job_finish_many([f], clock.now()) == [True]
            after = store.job_get(job.id)
            assert after is not None and not after.state.active
            if job.terminate_requested:
                assert after.state is JobState.FAILED and after.status_reason.startswith("terminated")
            # the attempt is over: finishing it again changes nothing
            assert store.job_finish_many([f], clock.now()) == [False]
            assert store.job_get(job.id) == after

        @precondition(lambda self: bool(self.ids))
        @rule(
            index=st.integers(0, 1000),
            worker=st.sampled_from(WORKERS),
            kind=st.sampled_from(list(OutcomeKind)),
        )
        def finish_not_held(self, index: int, worker: str, kind: OutcomeKind) -> None:
            job = self.pick(index)
            attempt = job.attempt if worker != job.worker_id else job.attempt + 1
            if job.state.active and worker == job.worker_id and attempt == job.attempt:
                return
            assert store.job_finish_many([Finish(job.id, attempt, worker, kind)], clock.now()) == [False]
            assert store.job_get(job.id) == job

        @precondition(lambda self: bool(self.ids))
        @rule(index=st.integers(0, 1000))
        def cancel(self, index: int) -> None:
            job = self.pick(index)
            try:
                after, changed = store.job_cancel(job.id, "", clock.now())
            except errors.Conflict:
                assert job.state.active
                assert store.job_get(job.id) == job
                return
            assert not job.state.active
            if job.state.terminal:
                assert not changed and after == job
            elif not job.array_size:
                assert changed and after.state is JobState.CANCELLED

        @precondition(lambda self: bool(self.ids))
        @rule(index=st.integers(0, 1000))
        def terminate(self, index: int) -> None:
            job = self.pick(index)
            after, changed = store.job_terminate(job.id, "", clock.now())
            if job.state.terminal:
                assert not changed and after == job
            elif job.state.active:
                assert after.terminate_requested and after.state is job.state
                assert changed == (not job.terminate_requested)
            elif not job.array_size:
                assert changed and after.state is JobState.FAILED

        @rule(
            seconds=st.sampled_from([0, 5, 10, 20, 31, 45]),
            renew=st.one_of(st.none(), st.sampled_from(WORKERS)),
        )
        def time_passes(self, seconds: int, renew: str | None) -> None:
            clock.advance(seconds)
            kept: set[int] = set()
            if renew is not None:
                kept = set(store.lease_renew(renew, LEASE, clock.now()).owned)
            rescued = set(store.job_rescue_expired(clock.now(), limit=10_000))
            assert not rescued & kept, "a renewed lease was rescued"
            for job in self.active():
                assert job.lease_expires_at is not None and job.lease_expires_at >= clock.now()

        @precondition(lambda self: bool(self.ids))
        @rule(index=st.integers(0, 1000))
        def retry(self, index: int) -> None:
            job = self.pick(index)
            try:
                after = store.job_retry(job.id, clock.now())
            except errors.Conflict:
                # allowed: not finished badly, an array child, a unique key taken since, or an
                # array job that failed at submission (it has no children to rerun)
                assert job.state not in (JobState.FAILED, JobState.CANCELLED) or bool(
                    job.array_parent_id or job.unique_key or job.array_size
                )
                return
            assert job.state in (JobState.FAILED, JobState.CANCELLED) and job.array_parent_id is None
            assert after.state is (JobState.PENDING if job.array_size else JobState.RUNNABLE)

        @rule(index=st.integers(0, 1000))
        def release(self, index: int) -> None:
            running = self.active()
            if running:
                job = running[index % len(running)]
                assert job.worker_id is not None
                released = store.job_release(job.worker_id, [(job.id, job.attempt)], "shutdown", clock.now())
                after = store.job_get(job.id)
                assert after is not None
                if job.terminate_requested:  # a job asked to terminate is not requeued
                    assert released == [] and after.state is JobState.FAILED
                else:
                    assert released == [job.id] and after.state is JobState.RUNNABLE
                    assert after.attempts_counted == job.attempts_counted - 1

        # -- invariants -------------------------------------------------------------------
        @invariant()
        def states_follow_the_diagram(self) -> None:
            if not self.ids:
                return
            jobs = {j.id: j for j in store.job_list(queue=self.queue, include_children=True, limit=10_000)}
            assert set(jobs) == set(self.ids)
            history: dict[int, list[dict[str, object]]] = defaultdict(list)
            for e in store.events_list(after_id=self.events_from, entity="job", limit=100_000):
                if e.type == "job.state" and int(e.entity_id) in jobs:
                    history[int(e.entity_id)].append(e.data)
            holders: dict[str, list[int]] = defaultdict(list)
            for job in jobs.values():
                check_history(job, history[job.id])
                if job.state.terminal:
                    assert job.lease_expires_at is None, f"terminal job {job.id} holds a lease"
                    assert job.finished_at is not None
                    assert not job.terminate_requested
                elif job.state.active:
                    assert job.lease_expires_at is not None and job.worker_id is not None
                else:
                    assert job.lease_expires_at is None and job.finished_at is None
                assert 0 <= job.attempts_counted <= job.attempt
                if job.unique_key and not job.state.terminal:
                    holders[job.unique_key].append(job.id)
                if job.array_size and job.state is JobState.PENDING:
                    kids = [k for k in jobs.values() if k.array_parent_id == job.id]
                    assert any(not k.state.terminal for k in kids), f"array job {job.id} is stuck"
            for key, ids in holders.items():
                assert len(ids) == 1, f"unique key {key!r} held by {ids} at once"

        def teardown(self) -> None:
            for job_id in self.ids:
                job = store.job_get(job_id)
                assert job is not None
                attempts = store.job_attempts(job_id)
                assert [a.number for a in attempts] == list(range(1, job.attempt + 1))
                assert sum(a.counted for a in attempts) >= job.attempts_counted

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=30,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            # no shrinking: examples share one database, so shrinking replays slowly (minutes);
            # a failing run prints its (at most 25-step) sequence as found
            phases=[Phase.explicit, Phase.generate],
        ),
    )
