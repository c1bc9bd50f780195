"""Worker behaviour end to end: draining, priorities, capacity, relations, payloads, shutdown."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from conveyor import errors
from conveyor.app import App
from conveyor.engine.jobs import Limits, SubmitRequest
from conveyor.model import Dependency, DependencyType, JobState
from conveyor.store import open_store

from . import jobs_fixtures as fx
from .helpers import WorkerThread, config, python, run_burst, wait_for_state


def fn(name: str, **kw: object) -> SubmitRequest:
    return SubmitRequest(function=fx.path(name), **kw)  # type: ignore[arg-type]


def test_burst_worker_runs_everything_runnable_and_returns(app: App) -> None:
    ids = [r.job.id for r in app.jobs.submit_many([fn("add", payload={"args": [i, i]}) for i in range(6)])]
    stats = run_burst(app, concurrency=3)
    assert (stats.claimed, stats.succeeded, stats.failed) == (6, 6, 0)
    assert [app.jobs.get(i).result for i in ids] == [0, 2, 4, 6, 8, 10]
    assert app.store.worker_list(app.clock.now()) == [], "the worker recorded its stop"


def test_job_of_a_higher_priority_queue_runs_before_earlier_low_priority_jobs(
    app: App, tmp_path: Path
) -> None:
    order = tmp_path / "order"
    app.catalog.put_queue("urgent", priority=10)
    for i in range(3):
        app.jobs.submit(fn("append_line", parameters={"file": str(order), "text": f"low-{i}"}))
    app.jobs.submit(fn("append_line", queue="urgent", parameters={"file": str(order), "text": "urgent"}))
    run_burst(app, concurrency=1)
    assert order.read_text().split() == ["urgent", "low-0", "low-1", "low-2"]


def test_worker_never_runs_more_jobs_at_once_than_its_concurrency(app: App, tmp_path: Path) -> None:
    folder = tmp_path / "intervals"
    folder.mkdir()
    app.jobs.submit_many(
        [fn("record_interval", parameters={"folder": str(folder), "seconds": "0.15"}) for _ in range(7)]
    )
    active_seen: list[int] = []
    with WorkerThread(app, config(concurrency=2, burst=True)) as wt:
        while wt.thread.is_alive():
            active_seen.append(
                len(app.store.job_list(states=[JobState.STARTING, JobState.RUNNING], limit=100))
            )
            wt.thread.join(0.02)
    assert wt.stats is not None and wt.stats.succeeded == 7
    assert max(active_seen) <= 2
    intervals = [json.loads(p.read_text()) for p in folder.iterdir()]
    assert len(intervals) == 7
    events = sorted(
        itertools.chain(((s, 1) for s, _ in intervals), ((e, -1) for _, e in intervals)),
        key=lambda ev: (ev[0], ev[1]),
    )
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2, f"expected 2 jobs at once at most (and at least once), saw {peak}"


def test_dependant_job_runs_only_after_its_dependency_succeeded(app: App, tmp_path: Path) -> None:
    order = tmp_path / "order"
    first = app.jobs.submit(
        fn("append_line", parameters={"file": str(order), "text": "first", "seconds": "0.3"})
    ).job
    second = app.jobs.submit(
        fn("append_line", parameters={"file": str(order), "text": "second"}, depends_on=[first.id])
    ).job
    assert second.state is JobState.PENDING
    run_burst(app, concurrency=4)
    a, b = app.jobs.get(first.id), app.jobs.get(second.id)
    assert (a.state, b.state) == (JobState.SUCCEEDED, JobState.SUCCEEDED)
    assert order.read_text().split() == ["first", "second"]
    assert a.finished_at is not None and b.started_at is not None and b.started_at >= a.finished_at


def test_dependant_of_a_failed_job_fails_without_running(app: App) -> None:
    first = app.jobs.submit(fn("fail", parameters={"message": "no"})).job
    second = app.jobs.submit(fn("add", payload={"args": [1, 1]}, depends_on=[first.id])).job
    run_burst(app)
    job = app.jobs.get(second.id)
    assert job.state is JobState.FAILED
    assert job.status_reason == f"dependency job {first.id} ended FAILED"
    assert app.jobs.attempts(second.id) == []


def test_sequential_array_children_run_one_after_another_in_index_order(app: App, tmp_path: Path) -> None:
    order = tmp_path / "order"
    parent = app.jobs.submit(
        fn(
            "append_array_index",
            parameters={"file": str(order), "seconds": "0.05"},
            array_size=4,
            array_sequential=True,
        )
    ).job
    run_burst(app, concurrency=4)
    assert app.jobs.get(parent.id).state is JobState.SUCCEEDED
    assert order.read_text().split() == ["0", "1", "2", "3"]
    children = sorted(app.store.job_list(array_parent_id=parent.id), key=lambda j: j.array_index or 0)
    for before, after in itertools.pairwise(children):
        assert before.finished_at is not None and after.started_at is not None
        assert after.started_at >= before.finished_at


def test_array_job_succeeds_once_every_child_succeeded(app: App, tmp_path: Path) -> None:
    order = tmp_path / "order"
    parent = app.jobs.submit(fn("append_array_index", parameters={"file": str(order)}, array_size=5)).job
    assert parent.state is JobState.PENDING
    stats = run_burst(app, concurrency=3)
    job = app.jobs.get(parent.id)
    assert job.state is JobState.SUCCEEDED
    assert job.status_reason == "all children succeeded"
    assert sorted(order.read_text().split()) == ["0", "1", "2", "3", "4"]
    assert stats.claimed == 5


def test_second_submit_with_a_unique_key_returns_the_unfinished_job(app: App) -> None:
    req = fn("add", payload={"args": [1, 2]}, unique_key="sync:client-7")
    first = app.jobs.submit(req)
    second = app.jobs.submit(req)
    assert not first.existing
    assert second.existing and second.job.id == first.job.id
    assert "held by job" in second.reason
    run_burst(app)
    assert app.jobs.get(first.job.id).state is JobState.SUCCEEDED
    third = app.jobs.submit(req)
    assert not third.existing and third.job.id != first.job.id


def test_payload_over_256_kib_goes_to_the_blob_store_and_reaches_the_function_intact(app: App) -> None:
    payload = {"rows": [f"row {i:06d} " + "x" * 40 for i in range(6000)]}
    job = app.jobs.submit(fn("digest", payload=payload)).job
    assert job.payload is None and job.payload_ref is not None
    assert job.payload_ref.startswith("sha256:")
    run_burst(app)
    done = app.jobs.get(job.id)
    assert done.state is JobState.SUCCEEDED, done.status_reason
    assert done.result == fx.digest(payload)
    assert done.result["bytes"] > 256 * 1024


def test_small_payload_stays_inline(app: App) -> None:
    job = app.jobs.submit(fn("digest", payload={"small": True})).job
    assert job.payload == {"small": True} and job.payload_ref is None


def test_payload_over_the_maximum_is_refused_and_nothing_is_stored(db_url: str, tmp_path: Path) -> None:
    limits = Limits(max_payload_bytes=64 * 1024, inline_payload_bytes=1024)
    with App(store=open_store(db_url), url=db_url, blob_dir=tmp_path / "blobs", limits=limits) as small:
        with pytest.raises(errors.ValidationError) as raised:
            small.jobs.submit(fn("digest", payload={"data": "x" * 70_000}))
        assert raised.value.field == "payload"
        assert "at most 65,536 bytes" in str(raised.value)
        assert small.store.job_list() == []
        assert not (tmp_path / "blobs").exists() or not any((tmp_path / "blobs").rglob("*"))


def test_graceful_stop_lets_a_short_running_job_finish(app: App) -> None:
    job_id = app.jobs.submit(SubmitRequest(command=python("import time; time.sleep(0.6)"))).job.id
    with WorkerThread(app, config(burst=False, grace_seconds=5)) as wt:
        wait_for_state(app, job_id, JobState.RUNNING)
        wt.worker.request_stop()
        wt.join(5)
    job = app.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED, job.status_reason
    assert wt.stats is not None and wt.stats.succeeded == 1


def test_graceful_stop_requeues_a_job_longer_than_the_grace_without_consuming_an_attempt(app: App) -> None:
    job_id = app.jobs.submit(SubmitRequest(command=python("import time; time.sleep(30)"))).job.id
    with WorkerThread(app, config(burst=False, grace_seconds=0.3)) as wt:
        wait_for_state(app, job_id, JobState.RUNNING)
        wt.worker.request_stop()
        wt.join(5)
    job = app.jobs.get(job_id)
    assert job.state is JobState.RUNNABLE, job.status_reason
    assert job.status_reason.startswith("requeued: worker")
    assert (job.attempt, job.attempts_counted) == (1, 0)
    [attempt] = app.jobs.attempts(job_id)
    assert not attempt.counted and attempt.reason.startswith("requeued")


def test_requeued_job_runs_to_completion_on_the_next_worker(app: App) -> None:
    job_id = app.jobs.submit(
        SubmitRequest(
            command=python("import os, time; time.sleep(30 if os.environ['CONVEYOR_ATTEMPT'] == '1' else 0)")
        )
    ).job.id
    with WorkerThread(app, config(burst=False, grace_seconds=0.2)) as wt:
        wait_for_state(app, job_id, JobState.RUNNING)
        wt.worker.request_stop()
        wt.join(5)
    run_burst(app)
    job = app.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED, job.status_reason
    assert (job.attempt, job.attempts_counted) == (2, 1)


def test_array_children_receive_the_parents_blob_payload(app: App) -> None:
    payload = {"blob": "y" * 300_000}
    parent = app.jobs.submit(fn("digest", payload=payload, array_size=2)).job
    assert parent.payload_ref is not None
    run_burst(app)
    assert app.jobs.get(parent.id).state is JobState.SUCCEEDED
    children = app.store.job_list(array_parent_id=parent.id)
    assert [c.result for c in children] == [fx.digest(payload)] * 2


def test_failed_job_releases_its_unique_key(app: App) -> None:
    req = fn("fail", parameters={"message": "no"}, unique_key="report:7")
    first = app.jobs.submit(req).job
    run_burst(app)
    assert app.jobs.get(first.id).state is JobState.FAILED
    again = app.jobs.submit(req)
    assert not again.existing and again.job.id != first.id


def test_failed_child_of_a_sequential_array_fails_the_children_after_it(app: App) -> None:
    code = "import os, sys; sys.exit(1 if os.environ['CONVEYOR_ARRAY_INDEX'] == '1' else 0)"
    parent = app.jobs.submit(SubmitRequest(command=python(code), array_size=3, array_sequential=True)).job
    run_burst(app, concurrency=3)
    children = sorted(app.store.job_list(array_parent_id=parent.id), key=lambda j: j.array_index or 0)
    assert [c.state for c in children] == [JobState.SUCCEEDED, JobState.FAILED, JobState.FAILED]
    assert children[1].status_reason == "exit code 1"
    assert children[2].status_reason == f"dependency job {children[1].id} ended FAILED"
    assert app.jobs.attempts(children[2].id) == []
    done = app.jobs.get(parent.id)
    assert done.state is JobState.FAILED
    assert done.status_reason == "2 of 3 children did not succeed"


def test_n_to_n_dependency_pairs_array_children_by_index(app: App, tmp_path: Path) -> None:
    order = tmp_path / "order"
    first = app.jobs.submit(
        fn("append_array_index", parameters={"file": str(order), "seconds": "0.1"}, array_size=2)
    ).job
    second = app.jobs.submit(
        fn(
            "append_array_index",
            parameters={"file": str(order)},
            array_size=2,
            depends_on=[Dependency(first.id, DependencyType.N_TO_N)],
        )
    ).job
    run_burst(app, concurrency=4)
    assert app.jobs.get(second.id).state is JobState.SUCCEEDED
    a = {c.array_index: c for c in app.store.job_list(array_parent_id=first.id)}
    b = {c.array_index: c for c in app.store.job_list(array_parent_id=second.id)}
    for i in (0, 1):
        finished, started = a[i].finished_at, b[i].started_at
        assert finished is not None and started is not None and started >= finished
    assert sorted(order.read_text().split()) == ["0", "0", "1", "1"]
