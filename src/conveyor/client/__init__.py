"""The Python SDK: ``Client`` over HTTP or straight on the database, ``AsyncClient``, ``@task``.

    client = conveyor.Client("http://127.0.0.1:8080", token)      # or Client.from_database(url)
    job = client.submit(queue="reports", command=["/opt/jobs/report.sh", "{day}"], parameters={"day": "mon"})
    job.wait(timeout=60)

Inside a running job, ``Client.from_env()`` uses the job's own ``CONVEYOR_URL`` and short-lived
``CONVEYOR_TOKEN`` (else ``CONVEYOR_DATABASE_URL``) and records the job as the parent of what
it submits. Results are the API's JSON forms (plain dicts, snake_case).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from conveyor import errors
from conveyor.app import App
from conveyor.client.backends import Backend, HttpBackend, LocalBackend
from conveyor.client.tasks import MapHandle, Task, task

__all__ = ["AsyncClient", "AsyncJobHandle", "Client", "JobFailed", "JobHandle", "MapHandle", "Task", "task"]

JSONObject = dict[str, Any]
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


class JobFailed(errors.ConveyorError):
    """The job did not succeed."""

    def __init__(self, job: Mapping[str, Any]) -> None:
        self.job = dict(job)
        super().__init__(f"job {job['id']} {job['state']}: {job.get('status_reason') or 'no reason given'}")


class JobHandle:
    """A submitted job: ``.id``, ``.status()``, ``.wait()``, ``.result()``, ``.logs()``."""

    def __init__(self, client: Client, job_id: int, existing: bool = False, reason: str = "") -> None:
        self.client, self.id, self.existing, self.reason = client, job_id, existing, reason

    def __repr__(self) -> str:
        return f"JobHandle(id={self.id}{', existing' if self.existing else ''})"

    def get(self) -> JSONObject:
        return self.client.get(self.id)

    def status(self) -> str:
        """The job's state: SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED, FAILED, CANCELLED."""
        return str(self.get()["state"])

    def wait(self, timeout: float | None = None) -> JSONObject:
        """Block until the job has finished (raises ``TimeoutError`` after ``timeout`` seconds)."""
        return self.client.wait(self.id, timeout)

    def result(self, timeout: float | None = None) -> Any:
        """The function's return value once the job succeeded; ``JobFailed`` otherwise."""
        job = self.wait(timeout)
        if job["state"] != "SUCCEEDED":
            raise JobFailed(job)
        return job["result"]

    def logs(self) -> str:
        return self.client.logs(self.id)

    def cancel(self, reason: str = "") -> JSONObject:
        return self.client.cancel(self.id, reason)


class Client:
    """Conveyor over HTTP (``Client(url, token)``) or on the store (``Client.from_database(url)``)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        backend: Backend | None = None,
        parent_id: int | None = None,
    ) -> None:
        if backend is None:
            if not url or not token:
                raise errors.ValidationError(
                    "client",
                    "needs a server URL and a token",
                    "Client(url, token), Client.from_database(url)",
                )
            backend = HttpBackend(url, token, timeout)
        self.backend = backend
        self.parent_id = parent_id  # recorded on submissions (set by from_env inside a job)

    @classmethod
    def from_database(
        cls, url: str | None = None, *, blob_dir: str | None = None, wait_for_database: bool = False
    ) -> Client:
        """Straight on the store (no server): the database URL is the credential.
        ``wait_for_database``: a PostgreSQL server that refuses gets 10 s to accept."""
        return cls(
            backend=LocalBackend(App.open(url, blob_dir=blob_dir, wait_for_database=wait_for_database))
        )

    @classmethod
    def from_app(cls, app: App) -> Client:
        """On an already opened ``App`` (not closed with the client)."""
        return cls(backend=LocalBackend(app, owned=False))

    @classmethod
    def from_env(cls) -> Client:
        """Inside a running job: CONVEYOR_URL + CONVEYOR_TOKEN, else CONVEYOR_DATABASE_URL."""
        parent = _current_job_id()
        url, token = os.environ.get("CONVEYOR_URL"), os.environ.get("CONVEYOR_TOKEN")
        if url and token:
            return cls(url, token, parent_id=parent)
        from conveyor.worker.context import current

        ctx = current.get(None)  # an inline job: the worker's own store
        database = (ctx.database_url if ctx is not None else "") or os.environ.get("CONVEYOR_DATABASE_URL")
        if database:
            blob_dir = (ctx.blob_dir if ctx is not None else "") or os.environ.get("CONVEYOR_BLOB_DIR")
            # a job's database was up when the job started: a refusal now is a restart
            client = cls.from_database(database, blob_dir=blob_dir, wait_for_database=True)
            client.parent_id = parent
            return client
        raise errors.ConveyorError(
            "no Conveyor to talk to: set CONVEYOR_URL and CONVEYOR_TOKEN, or CONVEYOR_DATABASE_URL"
        )

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs ----------------------------------------------------------------------------------
    def _body(self, fields: Mapping[str, Any]) -> JSONObject:
        body = {k: v for k, v in fields.items() if v is not None or k == "payload"}
        if "payload" in body and body["payload"] is None:
            del body["payload"]
        if self.parent_id is not None:
            body.setdefault("parent_id", self.parent_id)
        try:
            json.dumps(body, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise errors.ValidationError(
                "payload", f"is not JSON-serialisable: {exc}", "JSON values"
            ) from None
        return body

    def submit(self, queue: str = "default", **fields: Any) -> JobHandle:
        """Submit one job; ``fields`` are the Submission members (command, function, definition, ...)."""
        answer = self.backend.submit(self._body({"queue": queue, **fields}))
        return JobHandle(self, int(answer["job"]["id"]), bool(answer["existing"]), str(answer["reason"]))

    def submit_many(self, submissions: Iterable[Mapping[str, Any]]) -> list[JobHandle]:
        """Submit many jobs in one transaction (all or none)."""
        bodies = [self._body(s) for s in submissions]
        if not bodies:
            return []
        answer = self.backend.submit_many(bodies)
        return [JobHandle(self, int(r["id"]), bool(r["existing"]), str(r["reason"])) for r in answer["jobs"]]

    def get(self, job_id: int, explain: bool = False) -> JSONObject:
        return self.backend.get_job(job_id, explain)

    def jobs(
        self,
        *,
        state: str | Iterable[str] | None = None,
        queue: str | None = None,
        tag: str | None = None,
        array_parent_id: int | None = None,
        children: bool = False,
        before_id: int | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        limit: int = 50,
    ) -> JSONObject:
        """One page of jobs, newest first: ``{"jobs": [...], "next_before_id": ...}``. Array
        children are listed with ``children=True`` (with the other jobs) or ``array_parent_id``
        (one array job's); otherwise their array job stands for them. ``state``: a state in
        any case, several comma-separated, or a list of them; ``created_after``,
        ``created_before``: ISO-8601 times with their offset."""
        return self.backend.list_jobs(
            {
                "state": state
                if isinstance(state, str | list | tuple) or not isinstance(state, Iterable)
                else list(state),
                "queue": queue,
                "tag": tag,
                "array_parent_id": array_parent_id,
                "children": children,
                "before_id": before_id,
                "created_after": created_after,
                "created_before": created_before,
                "limit": limit,
            }
        )

    def cancel(self, job_id: int, reason: str = "") -> JSONObject:
        return self.backend.job_action(job_id, "cancel", reason)

    def terminate(self, job_id: int, reason: str = "") -> JSONObject:
        return self.backend.job_action(job_id, "terminate", reason)

    def retry(self, job_id: int) -> JSONObject:
        return self.backend.job_action(job_id, "retry")

    def cancel_many(self, ids: Iterable[int] = (), *, reason: str = "", **selection: Any) -> JSONObject:
        """Cancel the jobs listed, or every job a filter matches (``queue=``, ``states=[...]``,
        ``tag=``; ``all=True``: every one; ``dry_run=True``: change nothing). Answers
        ``{"changed": [...], "unchanged": [...], "skipped": [{"id", "reason"}], ...}``."""
        return self._bulk("cancel", ids, reason, selection)

    def terminate_many(self, ids: Iterable[int] = (), *, reason: str = "", **selection: Any) -> JSONObject:
        """``cancel_many``, terminating: running jobs are killed, waiting ones fail."""
        return self._bulk("terminate", ids, reason, selection)

    def retry_many(self, ids: Iterable[int] = (), **selection: Any) -> JSONObject:
        """``cancel_many``, retrying FAILED (``states=["CANCELLED"]``: cancelled) jobs."""
        return self._bulk("retry", ids, None, selection)

    def _bulk(
        self, action: str, ids: Iterable[int], reason: str | None, selection: Mapping[str, Any]
    ) -> JSONObject:
        unknown = set(selection) - {"queue", "states", "tag", "all", "dry_run"}
        if unknown:
            raise errors.ValidationError(
                sorted(unknown)[0], "is not a selection field", "queue, states, tag, all, dry_run"
            )
        body: dict[str, Any] = {k: v for k, v in selection.items() if v is not None}
        if isinstance(body.get("states"), str):
            body["states"] = [body["states"]]
        listed = list(ids)
        if listed:
            body["ids"] = listed
        if reason:
            body["reason"] = reason
        return self.backend.bulk_action(action, body)

    def attempts(self, job_id: int) -> list[JSONObject]:
        return self.backend.attempts(job_id)

    def events(self, job_id: int, *, after_id: int = 0, limit: int = 1000) -> JSONObject:
        """One page of the job's history, oldest first: ``{"events": [{"id", "at", "type",
        "data"}, ...], "next_after_id": ...}``; a state change's ``data`` holds ``from``, ``to``
        and ``reason``. Page on with ``after_id=next_after_id`` while it is not None."""
        return self.backend.events(job_id, after_id, limit)

    def logs(self, job_id: int, attempt: int | None = None) -> str:
        return self.backend.logs(job_id, attempt).decode(errors="replace")

    def follow_logs(self, job_id: int, attempt: int | None = None) -> Iterator[bytes]:
        """The log as it is written, until the job has finished."""
        return self.backend.follow_logs(job_id, attempt)

    def wait(self, job_id: int, timeout: float | None = None) -> JSONObject:
        """Poll until the job has finished; ``TimeoutError`` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.02
        while True:
            job = self.get(job_id)
            if job["state"] in TERMINAL:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job['state']} after {timeout:g} s")
            pause = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            delay = min(delay * 1.5, 0.5)

    # -- catalogue -----------------------------------------------------------------------------
    def queues(self) -> list[JSONObject]:
        return self.backend.catalog("queues")

    def put_queue(self, name: str, **fields: Any) -> JSONObject:
        """Create or update a queue (priority, enabled, environments)."""
        return self.backend.put("queues", name, fields)

    def environments(self) -> list[JSONObject]:
        return self.backend.catalog("environments")

    def put_environment(self, name: str, **fields: Any) -> JSONObject:
        """Create or update a compute environment (max_vcpus, max_memory_mb, enabled)."""
        return self.backend.put("environments", name, fields)

    def definitions(self) -> list[JSONObject]:
        return self.backend.catalog("definitions")

    def register_definition(self, name: str, spec: Mapping[str, Any]) -> JSONObject:
        return self.backend.register_definition(name, spec)

    def workers(self) -> list[JSONObject]:
        return self.backend.catalog("workers")


class AsyncJobHandle:
    """A job submitted through ``AsyncClient``: ``JobHandle``'s methods, awaitable."""

    def __init__(self, client: AsyncClient, job_id: int, existing: bool = False, reason: str = "") -> None:
        self.client, self.id, self.existing, self.reason = client, job_id, existing, reason

    def __repr__(self) -> str:
        return f"AsyncJobHandle(id={self.id}{', existing' if self.existing else ''})"

    async def get(self) -> JSONObject:
        return await self.client.get(self.id)

    async def status(self) -> str:
        return str((await self.get())["state"])

    async def wait(self, timeout: float | None = None) -> JSONObject:
        """Until the job has finished (``TimeoutError`` after ``timeout`` seconds), without
        blocking the event loop."""
        return await self.client.wait(self.id, timeout)

    async def result(self, timeout: float | None = None) -> Any:
        job = await self.wait(timeout)
        if job["state"] != "SUCCEEDED":
            raise JobFailed(job)
        return job["result"]

    async def logs(self) -> str:
        return await self.client.logs(self.id)

    async def cancel(self, reason: str = "") -> JSONObject:
        return await self.client.cancel(self.id, reason)


class AsyncClient:
    """The same methods as ``Client``, awaitable: each runs the sync client in a thread."""

    def __init__(
        self, url: str | None = None, token: str | None = None, *, client: Client | None = None
    ) -> None:
        self.sync = client or Client(url, token)

    @classmethod
    def from_database(cls, url: str | None = None) -> AsyncClient:
        return cls(client=Client.from_database(url))

    @classmethod
    def from_env(cls) -> AsyncClient:
        return cls(client=Client.from_env())

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def submit(self, queue: str = "default", **fields: Any) -> AsyncJobHandle:
        h = await asyncio.to_thread(self.sync.submit, queue, **fields)
        return AsyncJobHandle(self, h.id, h.existing, h.reason)

    async def submit_many(self, submissions: Iterable[Mapping[str, Any]]) -> list[AsyncJobHandle]:
        handles = await asyncio.to_thread(self.sync.submit_many, list(submissions))
        return [AsyncJobHandle(self, h.id, h.existing, h.reason) for h in handles]

    async def get(self, job_id: int, explain: bool = False) -> JSONObject:
        return await asyncio.to_thread(self.sync.get, job_id, explain)

    async def jobs(self, **filters: Any) -> JSONObject:
        return await asyncio.to_thread(lambda: self.sync.jobs(**filters))

    async def cancel(self, job_id: int, reason: str = "") -> JSONObject:
        return await asyncio.to_thread(self.sync.cancel, job_id, reason)

    async def terminate(self, job_id: int, reason: str = "") -> JSONObject:
        return await asyncio.to_thread(self.sync.terminate, job_id, reason)

    async def retry(self, job_id: int) -> JSONObject:
        return await asyncio.to_thread(self.sync.retry, job_id)

    async def cancel_many(self, ids: Iterable[int] = (), *, reason: str = "", **selection: Any) -> JSONObject:
        return await asyncio.to_thread(lambda: self.sync.cancel_many(list(ids), reason=reason, **selection))

    async def terminate_many(
        self, ids: Iterable[int] = (), *, reason: str = "", **selection: Any
    ) -> JSONObject:
        return await asyncio.to_thread(
            lambda: self.sync.terminate_many(list(ids), reason=reason, **selection)
        )

    async def retry_many(self, ids: Iterable[int] = (), **selection: Any) -> JSONObject:
        return await asyncio.to_thread(lambda: self.sync.retry_many(list(ids), **selection))

    async def attempts(self, job_id: int) -> list[JSONObject]:
        return await asyncio.to_thread(self.sync.attempts, job_id)

    async def events(self, job_id: int, *, after_id: int = 0, limit: int = 1000) -> JSONObject:
        return await asyncio.to_thread(lambda: self.sync.events(job_id, after_id=after_id, limit=limit))

    async def logs(self, job_id: int, attempt: int | None = None) -> str:
        return await asyncio.to_thread(self.sync.logs, job_id, attempt)

    async def wait(self, job_id: int, timeout: float | None = None) -> JSONObject:
        return await asyncio.to_thread(self.sync.wait, job_id, timeout)

    async def queues(self) -> list[JSONObject]:
        return await asyncio.to_thread(self.sync.queues)

    async def put_queue(self, name: str, **fields: Any) -> JSONObject:
        return await asyncio.to_thread(lambda: self.sync.put_queue(name, **fields))

    async def environments(self) -> list[JSONObject]:
        return await asyncio.to_thread(self.sync.environments)

    async def definitions(self) -> list[JSONObject]:
        return await asyncio.to_thread(self.sync.definitions)

    async def register_definition(self, name: str, spec: Mapping[str, Any]) -> JSONObject:
        return await asyncio.to_thread(self.sync.register_definition, name, spec)

    async def workers(self) -> list[JSONObject]:
        return await asyncio.to_thread(self.sync.workers)


def _current_job_id() -> int | None:
    """The running job's id (``current_job``: the worker's context in inline jobs, else
    CONVEYOR_JOB_ID), or None outside a job."""
    from conveyor.worker.context import current_job

    ctx = current_job()
    return None if ctx is None else ctx.job_id
