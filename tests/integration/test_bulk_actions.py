"""``JobService.act_on_many``: bulk cancel, terminate and retry through the engine, with a real
worker for the running jobs, on both backends."""

from __future__ import annotations

import threading
import time

import pytest

import conveyor.engine.jobs as engine_jobs
from conveyor import errors
from conveyor.app import App
from conveyor.engine.jobs import JobSelection, SubmitRequest
from conveyor.model import Dependency, DependencyType, JobState
from conveyor.worker.loop import WorkerConfig


def _submit(app: App, n: int, queue: str = "default", command: tuple[str, ...] = ("true",)) -> list[int]:
    return [app.jobs.submit(SubmitRequest(queue=queue, command=command)).job.id for _ in range(n)]


def test_a_filter_is_followed_across_windows_and_pages_and_each_job_is_taken_once(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_jobs, "BULK_PAGE", 3)
    monkeypatch.setattr(engine_jobs, "BULK_WINDOW", 4)  # windows of ids, pages within them
    ids = _submit(app, 10)
    out = app.jobs.act_on_many("cancel", JobSelection(states=(JobState.RUNNABLE,)), "tidy")
    assert out.matched == 10 and not out.skipped and not out.unchanged
    assert out.changed == sorted(ids, reverse=True)
    assert {app.jobs.get(i).state for i in ids} == {JobState.CANCELLED}
    again = app.jobs.act_on_many("cancel", JobSelection(everything=True))
    assert again.matched == 0 and again.changed == []


def test_a_dry_run_changes_nothing_and_names_the_unknown_listed_ids(app: App) -> None:
    ids = _submit(app, 3)
    out = app.jobs.act_on_many("cancel", JobSelection(ids=(ids[2], 555_555, ids[0])), dry_run=True)
    assert out.dry_run and out.matched == 2 and out.unchanged == []
    assert out.changed == [ids[2], ids[0]]
    assert out.skipped == [(555_555, "job 555555 does not exist")]
    assert {app.jobs.get(i).state for i in ids} == {JobState.RUNNABLE}
    # an id no job can have is refused, as over HTTP, not skipped
    with pytest.raises(errors.ValidationError) as info:
        app.jobs.act_on_many("cancel", JobSelection(ids=(2**70,)), dry_run=True)
    assert info.value.field == "ids[0]"


def test_listed_ids_are_taken_once_in_the_order_given(app: App) -> None:
    ids = _submit(app, 3)
    out = app.jobs.act_on_many("cancel", JobSelection(ids=(ids[1], ids[0], ids[1])))
    assert out.changed == [ids[1], ids[0]] and out.matched == 2


def test_terminate_by_queue_stops_running_and_waiting_jobs(app: App) -> None:
    app.catalog.put_queue("batch")
    worker = app.worker(WorkerConfig(concurrency=2, queues=("batch",), grace_seconds=5))
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        running = _submit(app, 2, "batch", ("sleep", "30"))
        deadline = time.monotonic() + 20
        while {app.jobs.get(i).state for i in running} != {JobState.RUNNING}:
            assert time.monotonic() < deadline, [app.jobs.get(i).state for i in running]
            time.sleep(0.05)
        app.catalog.update_queue("batch", enabled=False)
        waiting = _submit(app, 1, "batch")
        bystander = _submit(app, 1)
        out = app.jobs.act_on_many("terminate", JobSelection(queue="batch"), "deploy")
        assert sorted(out.changed) == sorted([*running, *waiting]) and not out.skipped
        deadline = time.monotonic() + 20
        while not all(app.jobs.get(i).state.terminal for i in running):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for job_id in running:  # killed by their worker: the reason "terminated"
            job = app.jobs.get(job_id)
            assert job.state is JobState.FAILED and job.status_reason.startswith("terminated")
        job = app.jobs.get(waiting[0])
        assert job.state is JobState.FAILED and job.status_reason == "terminated: deploy"
        assert app.jobs.get(bystander[0]).state is JobState.RUNNABLE
    finally:
        worker.request_stop(immediate=True)
        runner.join(timeout=20)


BAD = [
    pytest.param("delete", JobSelection(everything=True), "", "action", id="unknown-action"),
    pytest.param("cancel", JobSelection(), "", "filter", id="nothing-selected"),
    pytest.param("cancel", JobSelection(ids=(1,), queue="default"), "", "ids", id="ids-and-filter"),
    pytest.param("cancel", JobSelection(ids=(1,), everything=True), "", "ids", id="ids-and-all"),
    pytest.param("cancel", JobSelection(ids=(True,)), "", "ids[0]", id="bool-id"),
    pytest.param("cancel", JobSelection(states=(JobState.RUNNING,)), "", "states", id="cancel-running"),
    pytest.param("retry", JobSelection(states=(JobState.RUNNABLE,)), "", "states", id="retry-runnable"),
    pytest.param("retry", JobSelection(everything=True), "because", "reason", id="retry-reason"),
    pytest.param("cancel", JobSelection(everything=True), "x" * 1001, "reason", id="long-reason"),
    pytest.param("cancel", JobSelection(tag=""), "", "tag", id="empty-tag"),
    pytest.param("cancel", JobSelection(ids=tuple(range(1, 100_002))), "", "ids", id="too-many-ids"),
]


@pytest.mark.parametrize(("action", "selection", "reason", "field"), BAD)
def test_a_bad_selection_is_refused_naming_the_field_and_changes_nothing(
    app: App, action: str, selection: JobSelection, reason: str, field: str
) -> None:
    [job_id] = _submit(app, 1)
    with pytest.raises(errors.ValidationError) as caught:
        app.jobs.act_on_many(action, selection, reason)
    assert caught.value.field == field
    assert app.jobs.get(job_id).state is JobState.RUNNABLE


def test_an_unknown_queue_is_refused(app: App) -> None:
    with pytest.raises(errors.UnknownQueue):
        app.jobs.act_on_many("cancel", JobSelection(queue="nope"))


def test_a_filter_over_sparse_matches_skips_the_empty_windows(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_jobs, "BULK_WINDOW", 5)
    app.catalog.put_queue("rare")
    ids = _submit(app, 23)
    rare = [_submit(app, 1, "rare")[0] for _ in range(2)]
    more = _submit(app, 17)
    out = app.jobs.act_on_many("cancel", JobSelection(queue="rare"))
    assert out.changed == sorted(rare, reverse=True) and out.matched == 2
    assert {app.jobs.get(i).state for i in [*ids, *more]} == {JobState.RUNNABLE}
    assert app.jobs.act_on_many("cancel", JobSelection(queue="rare")).matched == 0


def _snapshot(app: App, ids: list[int]) -> list[tuple[JobState, str, int]]:
    """Each job's state, reason and number of events: what a dry run must leave as it was."""
    return [(app.jobs.get(i).state, app.jobs.get(i).status_reason, len(app.jobs.events(i))) for i in ids]


def _same_answer(dry: engine_jobs.BulkOutcome, real: engine_jobs.BulkOutcome) -> None:
    assert dry.dry_run and not real.dry_run
    assert (dry.matched, dry.changed, dry.unchanged, dry.skipped) == (
        real.matched,
        real.changed,
        real.unchanged,
        real.skipped,
    )


def test_a_dry_run_cancel_answers_what_the_real_one_then_does(app: App) -> None:
    """Jobs already stopping (an array job being cancelled while a child runs), finished ones
    and unknown ids are foreseen, not all reported as 'would cancel'."""
    waiting = _submit(app, 2)
    done = app.jobs.submit(SubmitRequest(command=["true"])).job.id
    app.jobs.cancel(done)
    ids = (*waiting, done, 777_777)
    before = _snapshot(app, [*waiting, done])
    dry = app.jobs.act_on_many("cancel", JobSelection(ids=ids), "tidy", dry_run=True)
    assert dry.changed == waiting and dry.unchanged == [done] and dry.matched == 3
    assert dry.skipped == [(777_777, "job 777777 does not exist")]
    assert _snapshot(app, [*waiting, done]) == before  # states, reasons and events as they were
    _same_answer(dry, app.jobs.act_on_many("cancel", JobSelection(ids=ids), "tidy"))


def test_a_dry_run_retry_foresees_refusals_and_dependencies_across_pages(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retry's refusals (a unique key now held by another job, a dependency that ended
    FAILED and is not retried too) are in the dry run's answer; a dependency retried on an
    earlier page (rolled back there) lets its dependant through, as the real run does, for
    plain jobs and for the children of N_TO_N arrays."""
    monkeypatch.setattr(engine_jobs, "BULK_PAGE", 1)  # every job a page (a transaction) of its own
    first = app.jobs.submit(SubmitRequest(command=["true"], delay_seconds=3600)).job.id
    then = app.jobs.submit(SubmitRequest(command=["true"], depends_on=[first])).job.id
    grid = app.jobs.submit(SubmitRequest(command=["true"], array_size=2, delay_seconds=3600)).job.id
    pairs = app.jobs.submit(
        SubmitRequest(command=["true"], array_size=2, depends_on=[Dependency(grid, DependencyType.N_TO_N)])
    ).job.id
    keyed = app.jobs.submit(SubmitRequest(command=["true"], unique_key="sync", delay_seconds=3600)).job.id
    app.jobs.act_on_many("cancel", JobSelection(ids=(first, grid, keyed)))
    holder = app.jobs.submit(SubmitRequest(command=["true"], unique_key="sync", delay_seconds=3600)).job.id
    assert app.jobs.get(then).state is JobState.FAILED and app.jobs.get(pairs).state is JobState.FAILED
    everything = JobSelection(states=(JobState.FAILED, JobState.CANCELLED))
    ids = [first, then, grid, pairs, keyed]
    before = _snapshot(app, ids)

    alone = app.jobs.act_on_many("retry", JobSelection(ids=(then,)), dry_run=True)
    assert alone.changed == [] and alone.skipped[0][0] == then
    assert f"depends on job {first}, which ended CANCELLED" in alone.skipped[0][1]
    dry = app.jobs.act_on_many("retry", everything, dry_run=True)
    assert dry.changed == [pairs, grid, then, first]  # newest first, as reported
    held = app.jobs.get(holder).state.value
    assert dry.skipped == [(keyed, f"unique key 'sync' is held by job {holder} ({held})")]
    assert _snapshot(app, ids) == before
    real = app.jobs.act_on_many("retry", everything)
    _same_answer(dry, real)
    assert app.jobs.get(then).state is JobState.PENDING  # waits for its dependency again
