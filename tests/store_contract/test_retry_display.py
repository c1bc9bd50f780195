"""A job retried by the user looks like a fresh run: no start, worker or run time left over
from the runs before, until it starts again; those runs stay in its attempts and events.

Every path that puts a FAILED or CANCELLED job back is covered: the one statement of a bulk
retry of plain jobs, the single retry (a job with a unique key goes the same way), the
children of a retried array job, and a job that waits for its dependencies again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor.cli import main
from conveyor.clock import FrozenClock
from conveyor.model import ClaimRequest, Job, JobState, OutcomeKind
from conveyor.store import Store

from .helpers import claim, finish, get, insert_one, job_states_seen, new, retrying, run_exactly

HOUR = 3600.0


def _fail_on(store: Store, clock: FrozenClock, job: Job, worker: str, host: str) -> Job:
    """Run ``job`` (runnable, alone) on ``worker`` for 5 s until it fails: the job after."""
    [ran] = store.job_claim(ClaimRequest(worker, "default", None, 1, 30.0, host=host, pid=41), clock.now())
    assert ran.id == job.id and ran.started_at == clock.now()
    clock.advance(5)
    assert finish(store, clock.now(), ran, OutcomeKind.FAILED, reason="boom", exit_code=3)
    return get(store, job.id)


def _looks_fresh(job: Job, state: JobState = JobState.RUNNABLE) -> None:
    assert job.state is state
    assert job.started_at is None and job.finished_at is None and job.run_at is None
    assert job.worker_id is None and job.compute_environment is None and job.lease_expires_at is None
    assert job.attempts_counted == 0 and not job.terminate_requested


@pytest.mark.parametrize("how", ["bulk", "single", "unique-key"])
def test_a_retried_job_shows_no_start_or_worker_until_it_starts_again(
    store: Store, clock: FrozenClock, how: str
) -> None:
    job = insert_one(store, clock.now(), new(unique_key="k-1" if how == "unique-key" else None))
    first_start = clock.now()
    failed = _fail_on(store, clock, job, "w-old", "host-old")
    assert failed.state is JobState.FAILED and failed.started_at == first_start
    assert failed.worker_id == "w-old"  # a finished job still names where it last ran
    clock.advance(HOUR)
    if how == "bulk":
        assert store.job_retry_many([job.id], clock.now()) == [(job.id, True, "")]
        again = get(store, job.id)
    else:
        again = store.job_retry(job.id, clock.now())
    _looks_fresh(again)
    assert again == get(store, job.id)
    assert again.attempt == 1 and again.updated_at == clock.now() and again.status_reason == "retried by user"
    # the history is kept: the first attempt and every state change
    [first] = store.job_attempts(job.id)
    assert (first.number, first.worker_id, first.host, first.exit_code, first.reason) == (
        1,
        "w-old",
        "host-old",
        3,
        "boom",
    )
    assert (first.started_at, first.stopped_at) == (first_start, first_start + timedelta(seconds=5))
    assert job_states_seen(store, job.id)[-2:] == ["FAILED", "RUNNABLE"]
    # it starts again: a new start, on the new worker, as attempt 2
    clock.advance(60)
    [ran] = store.job_claim(
        ClaimRequest("w-new", "default", None, 1, 30.0, host="host-new", pid=42), clock.now()
    )
    assert ran.id == job.id and ran.attempt == 2 and ran.started_at == clock.now()
    running = get(store, job.id)
    assert running.started_at == clock.now() and running.worker_id == "w-new"
    assert [(a.number, a.worker_id, a.host) for a in store.job_attempts(job.id)] == [
        (1, "w-old", "host-old"),
        (2, "w-new", "host-new"),
    ]


def test_a_retried_job_no_longer_shows_the_run_time_of_an_earlier_retry_delay(
    store: Store, clock: FrozenClock
) -> None:
    job = insert_one(store, clock.now(), new(spec=retrying(attempts=2, delay=60)))
    [ran] = claim(store, clock.now(), limit=1)
    assert finish(store, clock.now(), ran, OutcomeKind.FAILED, reason="boom")
    delayed = get(store, job.id)
    assert delayed.state is JobState.SUBMITTED and delayed.run_at == clock.now() + timedelta(seconds=60)
    clock.advance(60)
    run_exactly(store, clock, job.id, OutcomeKind.FAILED)
    assert get(store, job.id).state is JobState.FAILED
    clock.advance(HOUR)
    _looks_fresh(store.job_retry(job.id, clock.now()))


def test_a_cancelled_delayed_job_retried_runs_now_and_shows_no_future_run_time(
    store: Store, clock: FrozenClock
) -> None:
    later = clock.now() + timedelta(hours=2)
    job = insert_one(store, clock.now(), new(run_at=later))
    store.job_cancel(job.id, "not yet", clock.now())
    assert store.job_retry_many([job.id], clock.now()) == [(job.id, True, "")]
    _looks_fresh(get(store, job.id))
    assert [j.id for j in claim(store, clock.now())] == [job.id]


def test_a_retried_job_that_waits_again_shows_no_run_time_and_runs_when_its_dependency_succeeds(
    store: Store, clock: FrozenClock
) -> None:
    dep = insert_one(store, clock.now(), new(run_at=clock.now() + timedelta(seconds=300)))
    # it was to run no earlier than 600 s from now; retried, it runs as soon as dep succeeds
    job = insert_one(store, clock.now(), new(deps=(dep.id,), run_at=clock.now() + timedelta(seconds=600)))
    store.job_cancel(job.id, "", clock.now())
    clock.advance(10)
    again = store.job_retry(job.id, clock.now())
    _looks_fresh(again, JobState.PENDING)
    assert again.status_reason == f"waiting for job {dep.id}"
    clock.advance(300)
    run_exactly(store, clock, dep.id)
    assert get(store, job.id).state is JobState.RUNNABLE  # not SUBMITTED until the old run_at


def test_the_children_of_a_retried_array_job_look_fresh(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=2))
    kids = sorted(store.job_list(array_parent_id=parent.id, limit=10), key=lambda j: j.array_index or 0)
    for kid in kids:
        run_exactly(store, clock, kid.id, OutcomeKind.FAILED)
        assert get(store, kid.id).started_at is not None
    assert get(store, parent.id).state is JobState.FAILED
    before = {kid.id: store.job_attempts(kid.id) for kid in kids}
    clock.advance(HOUR)
    store.job_retry(parent.id, clock.now())
    for kid in kids:
        _looks_fresh(get(store, kid.id))
        assert store.job_attempts(kid.id) == before[kid.id]


def test_a_delayed_array_job_retried_shows_no_earlier_run_time(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=2, run_at=clock.now() + timedelta(seconds=60)))
    clock.advance(120)
    store.job_cancel(parent.id, "", clock.now())
    assert get(store, parent.id).run_at is not None
    again = store.job_retry(parent.id, clock.now())
    assert again.state is JobState.PENDING and again.run_at is None


def test_jobs_show_of_a_retried_job_shows_no_start_or_worker(
    store: Store, clock: FrozenClock, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    job = insert_one(store, clock.now())
    _fail_on(store, clock, job, "w-old", "host-old")
    assert main(["jobs", "show", str(job.id), "--database", db_url]) == 0
    shown = capsys.readouterr().out
    assert "\nstarted " in shown and "\nworker " in shown
    store.job_retry(job.id, clock.now() + timedelta(hours=1))
    assert main(["jobs", "show", str(job.id), "--database", db_url]) == 0
    shown = capsys.readouterr().out
    fields = {line.split()[0] for line in shown.split("\n\n")[0].splitlines()}
    assert {"state", "created"} <= fields and not fields & {"started", "finished", "worker", "run"}
    assert "w-old" in shown.split("\n\n")[1]  # the attempts table still shows the first run
