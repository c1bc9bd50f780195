"""The SDK: Client over HTTP and on the database, AsyncClient, @task submit/map/wait/result."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from typing import Any

import pytest

import conveyor
from conveyor import errors
from conveyor.client import Client, JobFailed
from tests.api import tasks_mod
from tests.api.conftest import Live


def test_client_submits_waits_and_reads_logs_the_same_way_on_both_backends(
    client: Client, live: Live
) -> None:
    live.worker()
    handle = client.submit(command=[sys.executable, "-c", "print('hello from the job')"], tags=["sdk"])
    job = handle.wait(timeout=20)
    assert job["state"] == "SUCCEEDED"
    assert handle.status() == "SUCCEEDED"
    assert handle.logs() == "hello from the job\n"
    assert client.attempts(handle.id)[0]["exit_code"] == 0
    page = client.jobs(tag="sdk")
    assert [j["id"] for j in page["jobs"]] == [handle.id]
    assert b"".join(client.follow_logs(handle.id)) == b"hello from the job\n"
    assert [q["name"] for q in client.queues()] == ["default"]
    assert client.put_queue("speedy", priority=5)["priority"] == 5
    assert client.register_definition("d1", {"command": ["true"]})["revision"] == 1
    assert client.definitions()[0]["name"] == "d1"
    assert client.environments()[0]["name"] == "default"
    later = {"command": ["true"], "delay_seconds": 600}
    many = client.submit_many([later, {**later, "queue": "speedy"}])
    assert len(many) == 2
    assert client.cancel(many[0].id)["job"]["state"] == "CANCELLED"
    assert client.retry(many[0].id)["job"]["state"] in ("SUBMITTED", "RUNNABLE")


def test_client_errors_come_back_as_conveyor_error_families(client: Client) -> None:
    with pytest.raises(errors.ValidationError) as bad:
        client.submit(queue="nope", command=["true"])
    assert bad.value.field == "queue"
    with pytest.raises(errors.NotFound):
        client.get(987654)
    with pytest.raises(errors.ValidationError) as not_json:
        client.submit(command=["true"], payload={"when": datetime.now()})
    assert not_json.value.field == "payload"
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(errors.ValidationError) as too_deep:
        client.submit(command=["true"], payload=deep)
    assert too_deep.value.field == "payload" and "recursion" in too_deep.value.reason
    with pytest.raises(errors.ValidationError) as task_too_deep:
        tasks_mod.add.bind(client).submit(deep)  # type: ignore[arg-type]
    assert task_too_deep.value.field == "add: args[0]"


def test_task_stays_callable_and_submit_map_wait_result_work(client: Client, live: Live) -> None:
    assert tasks_mod.add(2, 3) == 5
    assert tasks_mod.add.__conveyor_wrapped__ is tasks_mod.add.fn
    live.worker()
    add = tasks_mod.add.bind(client)
    handle = add.submit(2, b=40)
    assert handle.result(timeout=20) == 42
    assert isinstance(handle.logs(), str)  # inline jobs do not capture print()
    job = client.get(handle.id)
    assert job["spec"]["function"] == "tests.api.tasks_mod:add"
    assert job["payload"] == {"args": [2], "kwargs": {"b": 40}}
    assert job["spec"]["retry"]["attempts"] == 2
    assert job["spec"]["timeout_seconds"] == 30
    batch = tasks_mod.square.bind(client).map(range(5))
    assert len(batch.id) == 5
    assert batch.result(timeout=20) == [0, 1, 4, 9, 16]
    assert batch.status() == ["SUCCEEDED"] * 5
    with pytest.raises(JobFailed, match="it broke"):
        tasks_mod.boom.bind(client).submit().result(timeout=20)


def test_task_unique_key_is_filled_from_the_arguments(client: Client) -> None:
    sync = tasks_mod.sync_client.bind(client)
    first = sync.submit(7)
    again = sync.submit(client_id=7, full=True)
    other = sync.submit(8)
    assert again.existing is True
    assert again.id == first.id
    assert other.id != first.id
    assert client.get(first.id)["unique_key"] == "client:7"


def test_task_arguments_must_be_json_serialisable(client: Client) -> None:
    with pytest.raises(errors.ValidationError) as exc:
        tasks_mod.add.bind(client).submit({1, 2})  # type: ignore[arg-type]
    assert exc.value.field == "add: args[0]"
    assert "set" in exc.value.reason


def test_what_could_only_be_a_mistake_is_refused_the_same_way_on_both_backends(client: Client) -> None:
    """Each of these was taken, in-process at least: a call the function cannot take (it
    failed when a worker ran it), one string as tags (one tag per letter), "no" and "false"
    where a flag goes (both stored as on)."""
    add: Any = tasks_mod.add.bind(client)  # the calls below are wrong on purpose
    for args, kwargs in (((1, 2, 3), {}), ((), {"c": 1})):
        with pytest.raises(errors.ValidationError) as exc:
            add.submit(*args, **kwargs)
        assert exc.value.field == "args" and exc.value.reason.startswith("add(a, b=0): ")
    with pytest.raises(errors.ValidationError) as exc:
        conveyor.task(tags="nightly")(tasks_mod.square.fn)
    assert exc.value.field == "tags"
    with pytest.raises(errors.ValidationError) as exc:
        client.submit(command=["true"], tags="nightly")
    assert exc.value.field == "tags"
    with pytest.raises(errors.ValidationError) as exc:
        client.put_queue("q-flag", enabled="no")
    assert exc.value.field == "enabled"
    with pytest.raises(errors.ValidationError) as exc:
        client.submit(command=["true"], retry={"attempts": 2, "jitter": "false"})
    assert exc.value.field == "retry.jitter"
    assert client.jobs()["jobs"] == []
    # in-process, these listed every job, raised ValueError, or ran a dry run as a real one
    cases: list[tuple[dict[str, Any], str]] = [
        ({"limit": 0}, "limit"),
        ({"limit": 10**20}, "limit"),
        ({"state": "FOO"}, "state"),
    ]
    for query, field in cases:
        with pytest.raises(errors.ValidationError) as exc:
            client.jobs(**query)
        assert exc.value.field == field, query
    for selection, field in (({"all": "yes"}, "all"), ({"all": True, "dry_run": "no"}, "dry_run")):
        with pytest.raises(errors.ValidationError) as exc:
            client.cancel_many(**selection)
        assert exc.value.field == field, selection


def test_numbers_written_as_strings_are_refused_the_same_way_on_both_backends(client: Client) -> None:
    """In-process, ``retry={"attempts": "3"}``, a queue's ``priority="5"`` or a definition's
    ``"vcpus": "2"`` were converted and stored, where the HTTP schema refuses them."""
    calls: list[tuple[Any, str]] = [
        (lambda: client.submit(command=["true"], retry={"attempts": "3"}), "retry.attempts"),
        (lambda: client.submit(command=["true"], retry={"delay_seconds": "2"}), "retry.delay_seconds"),
        (lambda: client.put_queue("q-num", priority="5"), "priority"),
        (lambda: client.put_environment("e-num", max_vcpus="4"), "max_vcpus"),
        (lambda: client.register_definition("d-num", {"command": ["true"], "vcpus": "2"}), "vcpus"),
        (
            lambda: client.register_definition("d-num", {"command": ["true"], "timeout_seconds": 10**400}),
            "timeout_seconds",
        ),
    ]
    for call, field in calls:
        with pytest.raises(errors.ValidationError) as exc:
            call()
        assert exc.value.field.endswith(field), (exc.value.field, field)
        assert len(str(exc.value)) < 300
    assert client.jobs()["jobs"] == []
    assert [q["name"] for q in client.queues()] == ["default"]
    assert [e["name"] for e in client.environments()] == ["default"]
    assert client.definitions() == []


def test_bulk_cancel_retry_and_terminate_the_same_way_on_both_backends(client: Client) -> None:
    ids = [client.submit(command=["true"], delay_seconds=3600, tags=["batch"]).id for _ in range(3)]
    extra = client.submit(command=["true"], delay_seconds=3600).id
    dry = client.cancel_many(tag="batch", dry_run=True)
    assert dry["dry_run"] and dry["changed"] == sorted(ids, reverse=True)
    done = client.cancel_many(tag="batch", reason="not tonight")
    assert done["changed"] == sorted(ids, reverse=True)
    assert client.get(ids[0])["status_reason"] == "not tonight"
    assert client.retry_many(states="CANCELLED", tag="batch")["changed"] == sorted(ids, reverse=True)
    out = client.terminate_many([extra, 987_654])
    assert out["changed"] == [extra]
    assert out["skipped"] == [{"id": 987_654, "reason": "job 987654 does not exist"}]
    with pytest.raises(errors.ValidationError) as caught:
        client.cancel_many()
    assert caught.value.field == "filter"
    with pytest.raises(errors.ValidationError) as caught:
        client.cancel_many(queues="default")
    assert caught.value.field == "queues"


def test_async_client_runs_the_same_methods(live: Live) -> None:
    live.worker()

    async def main() -> tuple[str, str]:
        async with conveyor.AsyncClient(live.url, live.admin) as ac:
            handle = await ac.submit(command=["echo", "async"])
            job = await ac.wait(handle.id, timeout=20)
            return job["state"], await ac.logs(handle.id)

    assert asyncio.run(main()) == ("SUCCEEDED", "async\n")


def test_an_async_clients_handles_are_awaitable_and_leave_the_loop_free(live: Live) -> None:
    """``await ac.submit()`` answers a handle whose wait/result/logs are awaited: a tick on
    the same event loop goes on while the job runs (a blocking wait would stop it)."""
    live.worker()

    async def main() -> tuple[str, object, str, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async with conveyor.AsyncClient(live.url, live.admin) as ac:
            ticker = asyncio.create_task(tick())
            handle = await ac.submit(command=["sh", "-c", "sleep 0.5; echo done"])
            job = await handle.wait(timeout=20)
            ticker.cancel()
            many = await ac.submit_many([{"function": "builtins:abs", "payload": {"args": [-3]}}])
            return job["state"], await many[0].result(timeout=20), await handle.logs(), ticks

    state, result, logs, ticks = asyncio.run(main())
    assert (state, result, logs) == ("SUCCEEDED", 3, "done\n")
    assert ticks >= 10  # ~50 in the half second the job ran


def test_from_env_uses_url_and_token_else_the_database(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_URL", live.url)
    monkeypatch.setenv("CONVEYOR_TOKEN", live.admin)
    monkeypatch.delenv("CONVEYOR_JOB_ID", raising=False)
    with Client.from_env() as over_http:
        assert over_http.queues()[0]["name"] == "default"
        assert over_http.parent_id is None
    monkeypatch.delenv("CONVEYOR_URL")
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", live.app.url)
    monkeypatch.setenv("CONVEYOR_JOB_ID", "12")
    with Client.from_env() as on_db:
        assert on_db.parent_id == 12
        assert on_db.queues()[0]["name"] == "default"


def test_logs_of_an_attempt_never_had_or_of_an_array_job_are_refused_alike(client: Client) -> None:
    """Over HTTP and on the database: the field, why, and what is allowed."""
    job = client.submit(command=["true"], delay_seconds=3600).id
    with pytest.raises(errors.ValidationError) as caught:
        client.logs(job, attempt=1)
    assert (caught.value.field, caught.value.allowed) == ("attempt", "none yet: the job has not started")
    array = client.submit(command=["true"], array_size=2, delay_seconds=3600).id
    with pytest.raises(errors.ValidationError) as caught:
        client.logs(array)
    assert caught.value.field == "job_id" and f"jobs list --array {array}" in str(caught.value.allowed)
    assert client.logs(job) == ""  # all attempts: none yet, nothing to say


def test_a_submission_names_its_working_directory_on_both_transports(client: Client, tmp_path: Any) -> None:
    job = client.submit(command=["./run.sh"], working_dir=str(tmp_path)).get()
    assert job["spec"]["working_dir"] == str(tmp_path)
    with pytest.raises(errors.ValidationError) as caught:
        client.submit(command=["./run.sh"], working_dir="relative/dir")
    assert (caught.value.field, caught.value.allowed) == ("working_dir", "an absolute path, e.g. /srv/app")
    with pytest.raises(errors.ValidationError) as caught:
        client.submit(command=["./run.sh"], working_dir=7)
    assert caught.value.field == "working_dir"
