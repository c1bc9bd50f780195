"""/v1/jobs: submit one or many, list, get, cancel, terminate, retry, attempts, logs (follow streams)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from conveyor import errors, wire
from conveyor.api.http import ApiConfig, Call, Reply, bearer, error_response
from conveyor.app import App
from conveyor.engine.jobs import SubmitRequest
from conveyor.model import Job, JobState

MAX_PAGE = 1000


def _authorise_submission(call: Call, req: SubmitRequest, field: str) -> SubmitRequest:
    p = call.principal
    if p.job_id is not None:
        if req.parent_id is not None and req.parent_id != p.job_id:
            raise errors.Forbidden(f"a job token may only submit follow-ups of its own job {p.job_id}")
        req = replace(req, parent_id=p.job_id)
    if not p.may_submit(req.queue):
        raise errors.Forbidden(
            f"token {p.name or p.token_id!r} may not submit to queue {req.queue!r} ({field}); "
            f"its scopes: {', '.join(p.scopes) or 'none'}"
        )
    return req


def submit(call: Call) -> Reply:
    req = _authorise_submission(call, wire.request_from_dict(call.body, ""), "queue")
    result = call.app.jobs.submit(req)
    body = {"job": wire.job_to_dict(result.job), "existing": result.existing, "reason": result.reason}
    return Reply(body, 200 if result.existing else 201, {"Location": f"/v1/jobs/{result.job.id}"})


def submit_batch(call: Call) -> Reply:
    reqs = [
        _authorise_submission(call, wire.request_from_dict(item, f"jobs[{i}]"), f"jobs[{i}].queue")
        for i, item in enumerate(call.body["jobs"])
    ]
    results = call.app.jobs.submit_many(reqs)
    created = sum(not r.existing for r in results)
    return Reply(
        {
            "jobs": [
                {"id": r.job.id, "state": r.job.state.value, "existing": r.existing, "reason": r.reason}
                for r in results
            ],
            "created": created,
            "existing": len(results) - created,
        },
        201 if created else 200,
    )


def _readable(call: Call, job_id: int) -> Job:
    job = call.app.jobs.get(job_id)
    call.require(call.principal.may_read_job(job), f"read job {job_id}")
    return job


def list_jobs(call: Call) -> Reply:
    p = call.principal
    queue = call.q_str("queue")
    if not p.reader:
        call.require(
            p.job_id is None and queue is not None and p.may_submit(queue),
            "list jobs (a submit token lists one of its queues: ?queue=NAME)",
        )
    states: list[JobState] = []
    for text in call.query.getlist("state"):
        for part in text.split(","):
            try:
                states.append(JobState(part.strip().upper()))
            except ValueError:
                raise errors.ValidationError(
                    "state", f"{part!r} is not a job state", ", ".join(s.value for s in JobState)
                ) from None
    limit = call.q_int("limit", 50, 1, MAX_PAGE)
    assert limit is not None
    jobs = call.app.store.job_list(
        states=states,
        queue=queue,
        tag=call.q_str("tag", 128),
        array_parent_id=call.q_int("array_parent_id", None, 1, 2**62),
        before_id=call.q_int("before_id", None, 1, 2**62),
        created_after=wire_time(call, "created_after"),
        created_before=wire_time(call, "created_before"),
        limit=limit,
    )
    next_id = jobs[-1].id if len(jobs) == limit else None
    return Reply({"jobs": [wire.job_to_dict(j) for j in jobs], "next_before_id": next_id})


def wire_time(call: Call, name: str) -> Any:
    text = call.q_str(name, 64)
    if text is None:
        return None
    return wire._time(name, text)


def get_job(call: Call) -> Reply:
    job = _readable(call, call.id_param("job_id"))
    body = wire.job_to_dict(job)
    if call.q_bool("explain"):
        body["explanation"] = call.app.jobs.explain(job)
    return Reply(body)


def _manage(call: Call, what: str) -> Job:
    job_id = call.id_param("job_id")
    job = call.app.jobs.get(job_id)
    call.require(call.principal.may_manage_job(job), f"{what} job {job_id}")
    return job


def cancel_job(call: Call) -> Reply:
    job = _manage(call, "cancel")
    reason = (call.body or {}).get("reason", "")
    done, changed = call.app.jobs.cancel(job.id, reason)
    return Reply({"job": wire.job_to_dict(done), "changed": changed})


def terminate_job(call: Call) -> Reply:
    job = _manage(call, "terminate")
    reason = (call.body or {}).get("reason", "")
    done, changed = call.app.jobs.terminate(job.id, reason)
    return Reply({"job": wire.job_to_dict(done), "changed": changed})


def retry_job(call: Call) -> Reply:
    job = _manage(call, "retry")
    return Reply({"job": wire.job_to_dict(call.app.jobs.retry(job.id)), "changed": True})


def job_attempts(call: Call) -> Reply:
    job = _readable(call, call.id_param("job_id"))
    return Reply({"attempts": [wire.attempt_to_dict(a) for a in call.app.store.job_attempts(job.id)]})


# -- logs --------------------------------------------------------------------------------------------


class _LogCursor:
    """Reads a job's log from a position; marks where attempts begin."""

    def __init__(self, app: App, job: Job, attempt: int | None) -> None:
        self.app, self.job, self.attempt = app, job, attempt
        self.pos = (0, -1)

    def read(self) -> tuple[bytes, bool]:
        """New bytes, and whether the job had finished before they were read (nothing more will come)."""
        job = self.app.jobs.get(self.job.id)
        chunks = self.app.store.log_read(job.id, self.attempt, self.pos)
        out: list[bytes] = []
        for attempt, seq, data in chunks:
            if self.attempt is None and attempt != self.pos[0] and job.attempt > 1:
                out.append(f"--- attempt {attempt} ---\n".encode())
            out.append(data)
            self.pos = (attempt, seq)
        return b"".join(out), job.state.terminal


async def job_logs(request: Request) -> Response:
    """Logs need their own adapter: with ?follow=true the body streams until the job finishes."""
    state = request.app.state
    app: App = state.conveyor
    config: ApiConfig = state.config
    try:
        secret = bearer(request)

        def open_cursor() -> tuple[_LogCursor, bool]:
            principal = app.tokens.verify(secret)
            state.limiter.take(principal.token_id)
            call = Call(app, config, principal, request.path_params, request.query_params)
            job = _readable(call, call.id_param("job_id"))
            return _LogCursor(app, job, call.q_int("attempt", None, 0, 10_000)), call.q_bool("follow")

        cursor, follow = await run_in_threadpool(open_cursor)
        first, finished = await run_in_threadpool(cursor.read)
    except Exception as exc:
        return error_response(exc)
    media = "text/plain; charset=utf-8"
    if not follow:
        return Response(first, media_type=media)

    async def stream() -> AsyncIterator[bytes]:
        data, done = first, finished
        while True:
            if data:
                yield data
            if done:
                return
            await anyio.sleep(config.log_poll_seconds)
            data, done = await run_in_threadpool(cursor.read)
            if done and not data:
                return

    return StreamingResponse(stream(), media_type=media, headers={"Cache-Control": "no-store"})
