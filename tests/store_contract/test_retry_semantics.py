"""Retry keeps a job's dependencies (plain jobs, SEQUENTIAL and N_TO_N arrays), refuses a job
whose dependency ended FAILED or CANCELLED or whose queue is gone; cancelling an array job
ends it CANCELLED with the reason given."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import conveyor.engine.jobs as engine_jobs
from conveyor import errors
from conveyor.clock import FrozenClock
from conveyor.engine.jobs import JobSelection, JobService
from conveyor.model import Dependency, DependencyType, Job, JobState, OutcomeKind, Queue
from conveyor.store import Store
from conveyor.store.blobs import DirectoryBlobStore

from .helpers import claim, claim_one, finish, get, insert_one, job_states_seen, new, run_exactly, states

R, P, F, S, C = JobState.RUNNABLE, JobState.PENDING, JobState.FAILED, JobState.SUCCEEDED, JobState.CANCELLED


_run = run_exactly


def _children(store: Store, parent: Job) -> list[int]:
    kids = sorted(store.job_list(array_parent_id=parent.id, limit=1000), key=lambda j: j.array_index or 0)
    return [k.id for k in kids]


def state_of(store: Store, job_id: int) -> JobState:
    return get(store, job_id).state


def _failed_pair(store: Store, clock: FrozenClock) -> tuple[Job, Job]:
    """A job that FAILED and its dependant, FAILED by it."""
    a = insert_one(store, clock.now())
    b = insert_one(store, clock.now(), new(deps=(a.id,)))
    _run(store, clock, a.id, OutcomeKind.FAILED)
    assert states(store, a.id, b.id) == [F, F]
    return a, b


# -- plain dependants ----------------------------------------------------------------------
def test_retry_of_a_dependant_whose_dependency_failed_is_refused_naming_it(
    store: Store, clock: FrozenClock
) -> None:
    a, b = _failed_pair(store, clock)
    seen = job_states_seen(store, b.id)
    with pytest.raises(errors.Conflict, match=f"job {a.id}, which ended FAILED"):
        store.job_retry(b.id, clock.now())
    [(job_id, changed, why)] = store.job_retry_many([b.id], clock.now())
    assert (job_id, changed) == (b.id, False) and f"job {a.id}, which ended FAILED" in why
    assert job_states_seen(store, b.id) == seen  # left alone, unwritten
    c = insert_one(store, clock.now()).id
    d = insert_one(store, clock.now(), new(deps=(c,)))
    store.job_cancel(c, "", clock.now())
    with pytest.raises(errors.Conflict, match=f"job {c}, which ended CANCELLED"):
        store.job_retry(d.id, clock.now())


def test_retry_of_a_dependant_together_with_its_dependency_waits_for_it(
    store: Store, clock: FrozenClock
) -> None:
    a, b = _failed_pair(store, clock)
    # listed dependant first: the dependency is still retried before it
    assert store.job_retry_many([b.id, a.id], clock.now()) == [(b.id, True, ""), (a.id, True, "")]
    assert states(store, a.id, b.id) == [R, P]
    waiting = get(store, b.id)
    assert waiting.status_reason == f"waiting for job {a.id}"
    assert store.job_dependency_states(b.id) == [(a.id, R)]
    assert [j.id for j in claim(store, clock.now(), limit=10)] == [a.id]
    finish(store, clock.now(), get(store, a.id))
    assert states(store, b.id) == [R]


def test_retried_dependant_waits_for_an_unfinished_dependency(store: Store, clock: FrozenClock) -> None:
    c = insert_one(store, clock.now(), new(run_at=clock.now() + timedelta(seconds=300)))
    d = insert_one(store, clock.now(), new(deps=(c.id,)))
    store.job_cancel(d.id, "", clock.now())
    again = store.job_retry(d.id, clock.now())
    assert again.state is P and again.status_reason == f"waiting for job {c.id}"
    assert job_states_seen(store, d.id)[-1] == "PENDING"
    assert claim(store, clock.now()) == []
    clock.advance(300)
    _run(store, clock, c.id)
    assert states(store, d.id) == [R]
    # and a dependency that fails then fails it, as for a fresh submission
    e = insert_one(store, clock.now(), new(run_at=clock.now() + timedelta(seconds=300)))
    f = insert_one(store, clock.now(), new(deps=(e.id,)))
    store.job_cancel(f.id, "", clock.now())
    assert store.job_retry_many([f.id], clock.now()) == [(f.id, True, "")]
    store.job_cancel(e.id, "", clock.now())
    assert states(store, f.id) == [F]
    assert get(store, f.id).status_reason == f"dependency job {e.id} ended CANCELLED"


def test_retried_dependant_of_succeeded_or_pruned_dependencies_runs_at_once(
    store: Store, clock: FrozenClock
) -> None:
    a = insert_one(store, clock.now())
    gone = insert_one(store, clock.now())
    _run(store, clock, a.id)
    _run(store, clock, gone.id)
    b = insert_one(store, clock.now(), new(deps=(a.id, gone.id)))
    clock.advance(3600)
    store.prune(clock.now() - timedelta(minutes=30), clock.now())
    assert store.job_get(gone.id) is None and store.job_get(a.id) is None
    _run(store, clock, b.id, OutcomeKind.FAILED)
    assert store.job_retry(b.id, clock.now()).state is R
    # a dependency that succeeded after the dependant was submitted, then pruned
    c = insert_one(store, clock.now())
    d = insert_one(store, clock.now(), new(deps=(c.id,)))
    _run(store, clock, c.id)
    clock.advance(60)
    _run(store, clock, d.id, OutcomeKind.FAILED)
    store.prune(clock.now() - timedelta(seconds=30), clock.now())
    assert store.job_get(c.id) is None and state_of(store, d.id) is F
    assert store.job_retry(d.id, clock.now()).state is R


def test_retried_dependant_is_runnable_when_its_dependency_succeeded(
    store: Store, clock: FrozenClock
) -> None:
    a = insert_one(store, clock.now(), new(run_at=clock.now() + timedelta(seconds=10)))
    b = insert_one(store, clock.now(), new(deps=(a.id,)))
    clock.advance(10)
    _run(store, clock, a.id)
    _run(store, clock, b.id, OutcomeKind.FAILED)
    again = store.job_retry(b.id, clock.now())
    assert again.state is R and again.status_reason == "retried by user"


# -- arrays --------------------------------------------------------------------------------
def test_retry_of_a_sequential_array_keeps_its_order(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=3, array_sequential=True))
    k0, k1, k2 = _children(store, parent)
    _run(store, clock, k0, OutcomeKind.FAILED)
    assert states(store, k0, k1, k2, parent.id) == [F, F, F, F]
    assert store.job_retry(parent.id, clock.now()).state is P
    assert states(store, k0, k1, k2) == [R, P, P]
    assert get(store, k1).status_reason == f"waiting for job {k0}"
    assert get(store, k2).status_reason == f"waiting for job {k1}"
    for current, rest in ((k0, [k1, k2]), (k1, [k2]), (k2, [])):
        [job] = claim(store, clock.now(), limit=10)
        assert job.id == current
        finish(store, clock.now(), job)
        if rest:
            assert states(store, *rest) == [R] + [P] * (len(rest) - 1)
    assert states(store, parent.id) == [S]


def test_retry_of_a_sequential_array_resumes_after_its_last_success(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=3, array_sequential=True))
    k0, k1, k2 = _children(store, parent)
    _run(store, clock, k0)
    _run(store, clock, k1, OutcomeKind.FAILED)
    assert states(store, k2, parent.id) == [F, F]
    store.job_retry_many([parent.id], clock.now())
    assert states(store, k0, k1, k2, parent.id) == [S, R, P, P]


def test_retry_of_an_n_to_n_array_keeps_the_pairing(store: Store, clock: FrozenClock) -> None:
    a = insert_one(store, clock.now(), new(array_size=2))
    b = insert_one(
        store, clock.now(), new(array_size=2, depends_on=(Dependency(a.id, DependencyType.N_TO_N),))
    )
    a0, a1 = _children(store, a)
    b0, b1 = _children(store, b)
    _run(store, clock, a0, OutcomeKind.FAILED)
    _run(store, clock, a1)
    _run(store, clock, b1)
    assert states(store, a.id, b0, b.id) == [F, F, F]
    with pytest.raises(
        errors.Conflict, match=f"job {a0} \\(child 0 of array job {a.id}\\), which ended FAILED"
    ):
        store.job_retry(b.id, clock.now())
    assert store.job_retry_many([b.id, a.id], clock.now()) == [(b.id, True, ""), (a.id, True, "")]
    assert states(store, a0, a1, b0, b1) == [R, S, P, S]
    assert get(store, b0).status_reason == f"waiting for job {a0}"
    _run(store, clock, a0)
    assert states(store, b0, a.id) == [R, S]
    _run(store, clock, b0)
    assert states(store, b.id) == [S]


def test_n_to_n_child_failed_at_submission_waits_for_its_pair_when_retried(
    store: Store, clock: FrozenClock
) -> None:
    a = insert_one(store, clock.now(), new(array_size=2))
    a0, a1 = _children(store, a)
    _run(store, clock, a0, OutcomeKind.FAILED)  # a1 still waiting: the array is not finished
    b = insert_one(
        store,
        clock.now(),
        new(array_size=2, array_sequential=True, depends_on=(Dependency(a.id, DependencyType.N_TO_N),)),
    )
    b0, b1 = _children(store, b)
    assert states(store, b0, b1) == [F, F]  # failed at creation: its pair had failed
    _run(store, clock, a1)
    assert states(store, a.id, b.id) == [F, F]
    with pytest.raises(errors.Conflict, match=f"job {a0}"):
        store.job_retry(b.id, clock.now())
    store.job_retry_many([a.id, b.id], clock.now())
    assert states(store, a0, b0, b1) == [R, P, P]
    assert get(store, b1).status_reason == f"waiting for job {b0}"
    _run(store, clock, a0)
    assert states(store, b0, b1) == [R, P]
    _run(store, clock, b0)
    assert states(store, b1) == [R]


def test_array_depending_on_a_failed_job_is_refused_on_retry(store: Store, clock: FrozenClock) -> None:
    first = insert_one(store, clock.now())
    parent = insert_one(store, clock.now(), new(array_size=2, deps=(first.id,)))
    _run(store, clock, first.id, OutcomeKind.FAILED)
    assert states(store, parent.id) == [F]
    with pytest.raises(errors.Conflict, match=f"job {first.id}, which ended FAILED"):
        store.job_retry(parent.id, clock.now())
    store.job_retry_many([parent.id, first.id], clock.now())
    assert states(store, first.id, *_children(store, parent)) == [R, P, P]


def test_bulk_retry_through_pages_takes_dependencies_first(
    store: Store, clock: FrozenClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_jobs, "BULK_PAGE", 1)
    monkeypatch.setattr(engine_jobs, "BULK_WINDOW", 2)
    service = JobService(store, clock, DirectoryBlobStore(tmp_path / "blobs"))
    a, b = _failed_pair(store, clock)
    c = insert_one(store, clock.now(), new(deps=(b.id,)))
    assert states(store, c.id) == [F]
    out = service.act_on_many("retry", JobSelection(states=(F,)))
    assert out.changed == [c.id, b.id, a.id] and not out.skipped  # reported newest first
    assert states(store, a.id, b.id, c.id) == [R, P, P]
    a2, b2 = _failed_pair(store, clock)
    out = service.act_on_many("retry", JobSelection(ids=(b2.id, a2.id)))
    assert out.changed == [b2.id, a2.id] and not out.skipped  # in the order listed
    assert states(store, a2.id, b2.id) == [R, P]


# -- deleted queues ------------------------------------------------------------------------
def test_retry_of_a_job_whose_queue_was_deleted_is_refused(store: Store, clock: FrozenClock) -> None:
    store.queue_put(Queue("tmp"), clock.now())
    job = insert_one(store, clock.now(), new(queue="tmp"))
    array = insert_one(store, clock.now(), new(queue="tmp", array_size=2))
    store.job_cancel(job.id, "", clock.now())
    store.job_cancel(array.id, "", clock.now())
    store.queue_delete("tmp", clock.now())
    for job_id in (job.id, array.id):
        with pytest.raises(errors.Conflict, match="queue 'tmp'"):
            store.job_retry(job_id, clock.now())
    out = store.job_retry_many([job.id, array.id], clock.now())
    assert [changed for _, changed, _ in out] == [False, False]
    assert all("queue 'tmp'" in why for _, _, why in out)
    assert states(store, job.id, array.id) == [C, C]


# -- cancelling an array job ---------------------------------------------------------------
def test_cancel_of_an_array_job_ends_it_cancelled_with_the_reason(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=2, run_at=clock.now() + timedelta(seconds=100)))
    after = insert_one(store, clock.now(), new(deps=(parent.id,)))
    job, changed = store.job_cancel(parent.id, "bad deploy", clock.now())
    assert changed and job.state is C and job.status_reason == "bad deploy"
    assert job.finished_at == clock.now() and not job.terminate_requested
    assert states(store, *_children(store, parent)) == [C, C]
    assert job_states_seen(store, parent.id) == ["PENDING", "CANCELLED"]
    assert get(store, after.id).status_reason == f"dependency job {parent.id} ended CANCELLED"
    assert parent.id in store.job_ids(states=(C,))
    assert store.job_cancel(parent.id, "again", clock.now())[1] is False
    # bulk: the same
    other = insert_one(store, clock.now(), new(array_size=2))
    assert store.job_stop_many([other.id], "tidy", clock.now(), False) == [(other.id, True, "")]
    assert (state_of(store, other.id), get(store, other.id).status_reason) == (C, "tidy")


def test_cancel_of_an_array_job_with_a_running_child_ends_cancelled_when_it_ends(
    store: Store, clock: FrozenClock
) -> None:
    parent = insert_one(store, clock.now(), new(array_size=3))
    running = claim_one(store, clock.now())
    job, changed = store.job_cancel(parent.id, "bad deploy", clock.now())
    assert changed and job.state is P and "bad deploy" in job.status_reason
    assert store.job_cancel(parent.id, "again", clock.now())[1] is False
    finish(store, clock.now(), running)
    done = get(store, parent.id)
    assert (done.state, done.status_reason, done.terminate_requested) == (C, "bad deploy", False)
    # retried: its cancelled children run again, and it ends as they do
    assert store.job_retry(parent.id, clock.now()).state is P
    for job in claim(store, clock.now(), limit=10):
        finish(store, clock.now(), job)
    assert states(store, parent.id) == [S]


def test_terminate_of_an_array_job_still_fails_it(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=2))
    job, changed = store.job_terminate(parent.id, "stop", clock.now())
    assert changed and job.state is F
