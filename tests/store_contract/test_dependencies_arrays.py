"""Dependencies between jobs, array jobs (parallel, sequential, N_TO_N)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor import errors
from conveyor.clock import FrozenClock
from conveyor.model import Dependency, DependencyType, Job, JobState, OutcomeKind
from conveyor.store import Store

from .helpers import (
    claim,
    claim_one,
    finish,
    get,
    insert_one,
    job_states_seen,
    new,
    retrying,
    run_exactly,
    states,
)

R, P, F, S, C = JobState.RUNNABLE, JobState.PENDING, JobState.FAILED, JobState.SUCCEEDED, JobState.CANCELLED


_run = run_exactly


def _children(store: Store, parent: Job) -> list[Job]:
    return sorted(store.job_list(array_parent_id=parent.id, limit=1000), key=lambda j: j.array_index or 0)


def test_dependant_waits_until_its_dependency_succeeds(store: Store, clock: FrozenClock) -> None:
    a = insert_one(store, clock.now())
    b = insert_one(store, clock.now(), new(deps=(a.id,)))
    assert store.job_dependency_states(b.id) == [(a.id, R)]
    assert [j.id for j in claim(store, clock.now())] == [a.id]
    assert states(store, b.id) == [P]
    assert finish(store, clock.now(), get(store, a.id))
    assert states(store, b.id) == [R]
    assert job_states_seen(store, b.id) == ["PENDING", "RUNNABLE"]


def test_dependant_waits_for_all_its_dependencies(store: Store, clock: FrozenClock) -> None:
    a = insert_one(store, clock.now())
    b = insert_one(store, clock.now())
    c = insert_one(store, clock.now(), new(deps=(a.id, b.id)))
    _run(store, clock, a.id)
    assert states(store, c.id) == [P]
    _run(store, clock, b.id)
    assert states(store, c.id) == [R]


def test_released_dependant_with_future_run_at_waits_for_it(store: Store, clock: FrozenClock) -> None:
    a = insert_one(store, clock.now())
    b = insert_one(store, clock.now(), new(deps=(a.id,), run_at=clock.now() + timedelta(minutes=10)))
    _run(store, clock, a.id)
    assert states(store, b.id) == [JobState.SUBMITTED]
    assert job_states_seen(store, b.id) == ["PENDING", "SUBMITTED"]
    clock.advance(600)
    assert claim_one(store, clock.now()).id == b.id


def test_failed_dependency_fails_dependants_and_cascades(store: Store, clock: FrozenClock) -> None:
    a = insert_one(store, clock.now())
    b = insert_one(store, clock.now(), new(deps=(a.id,)))
    c = insert_one(store, clock.now(), new(deps=(b.id,)))
    _run(store, clock, a.id, OutcomeKind.FAILED)
    assert states(store, a.id, b.id, c.id) == [F, F, F]
    assert get(store, b.id).status_reason == f"dependency job {a.id} ended FAILED"
    assert get(store, c.id).status_reason == f"dependency job {b.id} ended FAILED"
    assert get(store, c.id).finished_at == clock.now()


def test_cancelled_dependency_fails_dependants_and_cascades(store: Store, clock: FrozenClock) -> None:
    a = insert_one(store, clock.now())
    b = insert_one(store, clock.now(), new(deps=(a.id,)))
    c = insert_one(store, clock.now(), new(deps=(b.id,)))
    store.job_cancel(a.id, "", clock.now())
    assert states(store, a.id, b.id, c.id) == [C, F, F]
    assert get(store, b.id).status_reason == f"dependency job {a.id} ended CANCELLED"


def test_dependency_that_is_retried_does_not_release_or_fail_dependants(
    store: Store, clock: FrozenClock
) -> None:
    a = insert_one(store, clock.now(), new(spec=retrying(2, delay=0)))
    b = insert_one(store, clock.now(), new(deps=(a.id,)))
    _run(store, clock, a.id, OutcomeKind.FAILED)
    assert states(store, a.id, b.id) == [R, P]
    _run(store, clock, a.id)
    assert states(store, b.id) == [R]


def test_array_job_creates_its_children_and_a_pending_parent(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=4, payload={"p": 1}))
    assert parent.state is P and parent.array_size == 4
    kids = _children(store, parent)
    assert [k.array_index for k in kids] == [0, 1, 2, 3]
    assert all(k.array_parent_id == parent.id and k.state is R for k in kids)
    assert all(k.id > parent.id for k in kids)
    assert {j.id for j in claim(store, clock.now(), limit=100)} == {k.id for k in kids}


def test_array_parent_succeeds_when_all_children_succeed(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=3))
    running = claim(store, clock.now())
    for job in running[:-1]:
        finish(store, clock.now(), job)
        assert states(store, parent.id) == [P]
    finish(store, clock.now(), running[-1])
    done = get(store, parent.id)
    assert done.state is S and done.finished_at == clock.now()
    assert job_states_seen(store, parent.id) == ["PENDING", "SUCCEEDED"]


def test_array_parent_fails_once_all_children_finished_if_any_failed(
    store: Store, clock: FrozenClock
) -> None:
    parent = insert_one(store, clock.now(), new(array_size=3))
    a, b, c = claim(store, clock.now())
    finish(store, clock.now(), a, OutcomeKind.FAILED)
    assert states(store, parent.id) == [P]
    finish(store, clock.now(), b)
    assert states(store, parent.id) == [P]
    finish(store, clock.now(), c)
    done = get(store, parent.id)
    assert done.state is F and "1 of 3" in done.status_reason


def test_sequential_array_releases_one_child_at_a_time(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=3, array_sequential=True))
    k0, k1, k2 = _children(store, parent)
    assert states(store, k0.id, k1.id, k2.id) == [R, P, P]
    for current, rest in ((k0, [k1, k2]), (k1, [k2]), (k2, [])):
        [job] = claim(store, clock.now(), limit=10)
        assert job.id == current.id
        finish(store, clock.now(), job)
        if rest:
            assert states(store, *(k.id for k in rest)) == [R] + [P] * (len(rest) - 1)
    assert states(store, parent.id) == [S]


def test_sequential_array_failure_fails_the_rest(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=4, array_sequential=True))
    k0, k1, k2, k3 = _children(store, parent)
    _run(store, clock, k0.id)
    _run(store, clock, k1.id, OutcomeKind.FAILED)
    assert states(store, k2.id, k3.id, parent.id) == [F, F, F]
    assert get(store, k2.id).status_reason == f"dependency job {k1.id} ended FAILED"


def test_n_to_n_child_waits_only_for_the_child_of_the_same_index(store: Store, clock: FrozenClock) -> None:
    a = insert_one(store, clock.now(), new(array_size=3))
    b = insert_one(
        store, clock.now(), new(array_size=3, depends_on=(Dependency(a.id, DependencyType.N_TO_N),))
    )
    a_kids, b_kids = _children(store, a), _children(store, b)
    assert states(store, *(k.id for k in b_kids)) == [P, P, P]
    _run(store, clock, a_kids[1].id)
    assert states(store, *(k.id for k in b_kids)) == [P, R, P]
    _run(store, clock, a_kids[0].id, OutcomeKind.FAILED)
    assert states(store, *(k.id for k in b_kids)) == [F, R, P]
    _run(store, clock, a_kids[2].id)
    assert states(store, *(k.id for k in b_kids)) == [F, R, R]
    assert states(store, a.id, b.id) == [F, P]


def test_n_to_n_between_arrays_of_different_sizes_is_refused(store: Store, clock: FrozenClock) -> None:
    a = insert_one(store, clock.now(), new(array_size=3))
    plain = insert_one(store, clock.now())
    for bad in (
        new(array_size=4, depends_on=(Dependency(a.id, DependencyType.N_TO_N),)),
        new(depends_on=(Dependency(a.id, DependencyType.N_TO_N),)),
        new(array_size=3, depends_on=(Dependency(plain.id, DependencyType.N_TO_N),)),
    ):
        with pytest.raises(errors.ValidationError) as info:
            store.job_insert_many([bad], clock.now())
        assert info.value.field == "depends_on"
    assert len(store.job_list(limit=100)) == 2


def test_job_depending_on_an_array_parent_waits_for_the_whole_array(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=3))
    after = insert_one(store, clock.now(), new(deps=(parent.id,)))
    kids = _children(store, parent)
    for kid in kids[:-1]:
        _run(store, clock, kid.id)
        assert states(store, after.id) == [P]
    _run(store, clock, kids[-1].id)
    assert states(store, parent.id, after.id) == [S, R]


def test_job_depending_on_a_failed_array_fails(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=2))
    after = insert_one(store, clock.now(), new(deps=(parent.id,)))
    k0, k1 = _children(store, parent)
    _run(store, clock, k0.id, OutcomeKind.FAILED)
    assert states(store, after.id) == [P]
    _run(store, clock, k1.id)
    assert states(store, parent.id, after.id) == [F, F]


def test_array_depending_on_a_job_starts_its_children_after_it(store: Store, clock: FrozenClock) -> None:
    first = insert_one(store, clock.now())
    parent = insert_one(store, clock.now(), new(array_size=2, deps=(first.id,)))
    kids = _children(store, parent)
    assert states(store, *(k.id for k in kids)) == [P, P]
    _run(store, clock, first.id)
    assert states(store, *(k.id for k in kids)) == [R, R]


def test_cancel_of_an_array_parent_cancels_waiting_children_and_ends_the_parent(
    store: Store, clock: FrozenClock
) -> None:
    parent = insert_one(store, clock.now(), new(array_size=3))
    running = claim_one(store, clock.now())
    _, changed = store.job_cancel(parent.id, "", clock.now())
    assert changed
    kids = _children(store, parent)
    assert sorted(k.state.value for k in kids) == ["CANCELLED", "CANCELLED", "RUNNING"]
    assert states(store, parent.id) == [P]  # one child is still running
    finish(store, clock.now(), running)
    assert get(store, parent.id).state.terminal


def test_array_retry_reruns_the_failed_children(store: Store, clock: FrozenClock) -> None:
    parent = insert_one(store, clock.now(), new(array_size=2))
    a, b = claim(store, clock.now())
    finish(store, clock.now(), a)
    finish(store, clock.now(), b, OutcomeKind.FAILED)
    assert states(store, parent.id) == [F]
    with pytest.raises(errors.Conflict):
        store.job_retry(b.id, clock.now())  # children are retried through their array
    assert store.job_retry(parent.id, clock.now()).state is P
    assert job_states_seen(store, parent.id) == ["PENDING", "FAILED", "PENDING"]
    [again] = claim(store, clock.now())
    assert again.id == b.id
    finish(store, clock.now(), again)
    assert states(store, parent.id) == [S]
