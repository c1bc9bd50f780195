"""A retry after retention pruned a dependency, both backends: the dependency had succeeded
if the job ever ran (a job starts only once all it depends on has succeeded), so the job
runs again at once; a job that never ran may have been failed by that very dependency, so
its retry is refused, naming it, rather than run as if the dependency had succeeded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor import errors
from conveyor.clock import FrozenClock
from conveyor.model import Dependency, DependencyType, Job, JobState, OutcomeKind
from conveyor.store import Store

from .helpers import insert_one, new, run_exactly, states

R, F, C = JobState.RUNNABLE, JobState.FAILED, JobState.CANCELLED


def _prune(store: Store, clock: FrozenClock) -> int:
    """Prune what finished over 30 minutes ago; the number of jobs deleted."""
    return store.prune(clock.now() - timedelta(minutes=30), clock.now())["jobs"]


def _children(store: Store, parent: Job) -> list[int]:
    kids = sorted(store.job_list(array_parent_id=parent.id, limit=1000), key=lambda j: j.array_index or 0)
    return [k.id for k in kids]


@pytest.mark.parametrize("outcome", [OutcomeKind.FAILED, OutcomeKind.CANCEL], ids=["failed", "cancelled"])
def test_a_job_failed_by_a_dependency_pruned_since_is_not_retried_as_if_it_had_succeeded(
    store: Store, clock: FrozenClock, outcome: OutcomeKind
) -> None:
    """b, submitted an hour after a ended, fails at once and stays when a is pruned."""
    a = insert_one(store, clock.now())
    run_exactly(store, clock, a.id, outcome)
    clock.advance(3600)
    b = insert_one(store, clock.now(), new(deps=(a.id,)))
    assert states(store, b.id) == [F]
    assert _prune(store, clock) == 1 and store.job_get(a.id) is None
    with pytest.raises(
        errors.Conflict, match=f"job {b.id} depends on job {a.id}, which has been pruned since"
    ):
        store.job_retry(b.id, clock.now())
    assert states(store, b.id) == [F]  # nothing written
    [(job_id, did, why)] = store.job_retry_many([b.id], clock.now())
    assert (job_id, did) == (b.id, False) and "never ran: submit it again" in why


def test_a_job_that_ran_after_its_dependency_succeeded_is_retried_once_that_is_pruned(
    store: Store, clock: FrozenClock
) -> None:
    a = insert_one(store, clock.now())
    b = insert_one(store, clock.now(), new(deps=(a.id,)))
    run_exactly(store, clock, a.id)
    clock.advance(3600)
    run_exactly(store, clock, b.id, OutcomeKind.FAILED)
    assert _prune(store, clock) == 1 and store.job_get(a.id) is None
    assert store.job_retry(b.id, clock.now()).state is R


def test_an_array_jobs_retry_is_refused_for_a_child_that_never_ran_before_its_dependency_went(
    store: Store, clock: FrozenClock
) -> None:
    """N_TO_N: d0 waited for c0, which failed (c0 pruned since, d0 never ran); d1 ran after c1
    succeeded and failed on its own. The array's retry is refused for d0's sake."""
    c = insert_one(store, clock.now(), new(array_size=2))
    c0, c1 = _children(store, c)
    d = insert_one(
        store, clock.now(), new(array_size=2, depends_on=(Dependency(c.id, DependencyType.N_TO_N),))
    )
    d0, d1 = _children(store, d)
    run_exactly(store, clock, c1)
    run_exactly(store, clock, d1, OutcomeKind.FAILED)
    run_exactly(store, clock, c0, OutcomeKind.FAILED)
    assert states(store, d0, d1, d.id) == [F, F, F]
    clock.advance(3600)
    # only c's rows are old enough: fail d anew an hour later, as if retried and failed again
    with store._write() as tx:  # test set-up: move the end of d past the cutoff
        tx.x("UPDATE jobs SET finished_at = ? WHERE id IN (?, ?, ?)", (store.d.ts(clock.now()), d.id, d0, d1))
    assert _prune(store, clock) == 3 and store.job_get(c0) is None
    with pytest.raises(errors.Conflict, match=f"job {d0} depends on job {c0}, which has been pruned since"):
        store.job_retry(d.id, clock.now())
    assert states(store, d0, d1, d.id) == [F, F, F]


def test_a_failed_dependency_still_there_is_named_as_before(store: Store, clock: FrozenClock) -> None:
    a = insert_one(store, clock.now())
    run_exactly(store, clock, a.id, OutcomeKind.CANCEL)
    b = insert_one(store, clock.now(), new(deps=(a.id,)))
    with pytest.raises(errors.Conflict, match=f"depends on job {a.id}, which ended CANCELLED"):
        store.job_retry(b.id, clock.now())
    assert states(store, a.id, b.id) == [C, F]
