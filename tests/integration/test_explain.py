"""What `jobs show` says a RUNNABLE job waits for, where it said something untrue."""

from __future__ import annotations

from conveyor.app import App
from conveyor.engine.jobs import SubmitRequest
from conveyor.model import WorkerInfo


def _worker(app: App, environment: str, queues: tuple[str, ...]) -> None:
    now = app.clock.now()
    name = f"w-explain-{environment}-{'-'.join(queues) or 'all'}"
    app.store.worker_register(WorkerInfo(name, "host", 1, environment, queues, 1, now, now, None))


def test_a_queue_no_live_worker_serves_is_named(app: App) -> None:
    """It said "waiting for a free worker slot ... 0 running on 1 worker(s)": the one worker
    of the environment served another queue, and the job waited for ever."""
    app.catalog.put_environment("e1")
    app.catalog.put_queue("q", environments=["e1"])
    app.catalog.put_queue("other", environments=["e1"])
    _worker(app, "e1", ("q",))
    job = app.jobs.submit(SubmitRequest(queue="other", command=["true"])).job
    assert app.jobs.explain(job) == (
        "no worker in environment `e1` serves queue `other` (its workers serve q;"
        " start one: conveyor worker --environment e1 --queues other)"
    )
    _worker(app, "e1", ())  # now one serves every queue
    assert app.jobs.explain(job).startswith("waiting for a free worker slot in environment `e1`")


def test_a_job_bigger_than_its_environment_became_says_so(app: App) -> None:
    """Its environment was made smaller after it was submitted: it said "(2 of 2 free)"."""
    app.catalog.put_environment("mem", max_vcpus=8, max_memory_mb=4096)
    app.catalog.put_queue("mq", environments=["mem"])
    job = app.jobs.submit(SubmitRequest(queue="mq", command=["true"], vcpus=6, memory_mb=3000)).job
    _worker(app, "mem", ())
    app.catalog.update_environment("mem", max_vcpus=2)
    assert app.jobs.explain(job) == "needs 6 vCPUs, more than environment `mem` has (2)"
    app.catalog.update_environment("mem", max_vcpus=8, max_memory_mb=1024)
    assert app.jobs.explain(job) == "needs 3000 MB, more than environment `mem` has (1024 MB)"


def test_jobs_of_higher_priority_queues_sharing_the_environment_count_as_ahead(app: App) -> None:
    """It said "0 job(s) ahead in queue `low`" while 3 jobs of a priority-10 queue on the same
    environment would all start before it."""
    app.catalog.put_environment("shared", max_vcpus=1)
    app.catalog.put_queue("low", priority=0, environments=["shared"])
    app.catalog.put_queue("high", priority=10, environments=["shared"])
    app.catalog.put_queue("elsewhere", priority=20, environments=["default"])
    _worker(app, "shared", ())
    for _ in range(3):
        app.jobs.submit(SubmitRequest(queue="high", command=["true"]))
    app.jobs.submit(SubmitRequest(queue="elsewhere", command=["true"]))
    job = app.jobs.submit(SubmitRequest(queue="low", command=["true"])).job
    assert app.jobs.explain(job) == (
        "waiting for a free worker slot in environment `shared`: 0 job(s) ahead in queue `low`"
        " and 3 in queues of higher priority (high), 0 running on 1 worker(s)"
    )
    app.catalog.update_queue("high", enabled=False)  # a disabled queue's jobs start nowhere
    assert app.jobs.explain(job) == (
        "waiting for a free worker slot in environment `shared`: 0 job(s) ahead in queue `low`,"
        " 0 running on 1 worker(s)"
    )
