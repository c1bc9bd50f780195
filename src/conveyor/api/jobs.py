"""/v1/jobs: submit one or many, list, get, cancel, terminate, retry, attempts, events, logs (follow streams)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from conveyor import errors, wire
from conveyor.api.group import GroupCommit
from conveyor.api.http import (
    ApiConfig,
    Call,
    RateLimiter,
    Reply,
    authorised_call,
    bearer,
    error_response,
    read_request,
    render,
)
from conveyor.app import App
from conveyor.engine.jobs import MAX_EVENTS_PAGE, SubmitRequest
from conveyor.engine.tokens import Principal
from conveyor.model import MAX_ID, InsertResult, Job

MAX_PAGE = wire.MAX_PAGE


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
    return _submitted(call.app.jobs.submit(req))


def _submitted(result: InsertResult) -> Reply:
    body = {"job": wire.job_to_dict(result.job), "existing": result.existing, "reason": result.reason}
    return Reply(body, 200 if result.existing else 201, {"Location": f"/v1/jobs/{result.job.id}"})


# -- single submissions, group-committed ------------------------------------------------------------

# A submission with one of these answers from what the store holds (an existing job, a held
# key, a dependency's state): it takes the ungrouped path, where its answer cannot depend on
# which other requests happened to share its transaction.
_KEYED = ("unique_key", "idempotency_key", "depends_on", "array_size")


@dataclass(frozen=True, slots=True)
class Pending:
    """One single submission waiting for its group: what ``submit`` would get, unverified."""

    secret: str
    body: Any
    query: QueryParams
    principal: Principal | None = None  # verified already (read_request): not verified again


def groupable(body: Any) -> bool:
    return isinstance(body, dict) and not any(body.get(key) for key in _KEYED)


def submit_group(
    app: App, config: ApiConfig, limiter: RateLimiter, items: list[Pending]
) -> list[Reply | BaseException]:
    """Answer each single submission exactly as ``submit`` alone would, inserting them together.

    Each item is verified, rate-limited, read and authorised on its own; those that pass are
    inserted in one ``submit_many`` transaction. When that refuses one (a Conveyor error) or
    the database refuses the statement, nothing was inserted (all or none), so
    the others are tried again and get their own answers: one bad submission never fails
    another. A store outage is every item's answer, as it would have been; so is any other
    error, which may have come after the commit: submitting again could store a job twice.
    """
    out: list[Reply | BaseException | None] = [None] * len(items)
    calls: list[tuple[int, Call, SubmitRequest]] = []
    for i, item in enumerate(items):
        try:
            call = authorised_call(
                app, config, limiter, item.secret, {}, item.query, item.body, item.principal
            )
            calls.append(
                (i, call, _authorise_submission(call, wire.request_from_dict(item.body, ""), "queue"))
            )
        except Exception as exc:
            out[i] = exc
    while len(calls) > 1:
        try:
            results = app.jobs.submit_many([req for _, _, req in calls])
        except errors.StoreUnavailable as exc:
            for i, _, _ in calls:
                out[i] = exc
            calls = []
        except errors.ValidationError as exc:  # names the refused one: answer it alone, group the rest
            culprit = _culprit(exc, len(calls))
            if culprit is None:
                break
            i, call, req = calls.pop(culprit)
            out[i] = _submit_alone(call, req)
        except Exception as exc:
            # Conveyor's own refusals (a key held, a dependency unknown) and the database's come
            # from inside the transaction, rolled back: find the refused one, one by one
            if isinstance(exc, errors.ConveyorError) or app.store.is_database_error(exc):
                break
            for i, _, _ in calls:  # perhaps stored: never twice
                out[i] = exc
            calls = []
        else:
            for (i, _, _), result in zip(calls, results, strict=True):
                out[i] = _submitted(result)
            calls = []
    for i, call, req in calls:
        out[i] = _submit_alone(call, req)
    return [answer if answer is not None else RuntimeError("no answer") for answer in out]


def _submit_alone(call: Call, req: SubmitRequest) -> Reply | Exception:
    try:
        return _submitted(call.app.jobs.submit(req))
    except Exception as exc:
        return exc


_ITEM = re.compile(r"jobs\[(\d+)\]\.")


def _culprit(exc: errors.ValidationError, count: int) -> int | None:
    """The position of the submission a batch validation error names (``jobs[3].queue``)."""
    match = _ITEM.match(exc.field or "")
    if match is None or int(match.group(1)) >= count:
        return None
    return int(match.group(1))


async def submit_endpoint(request: Request) -> Response:
    """POST /v1/jobs: plain submissions are group-committed, keyed ones go one by one."""
    state = request.app.state
    try:
        secret, principal, parsed = await read_request(
            request, "Submission", True, state.config.max_body_bytes
        )
        group: GroupCommit[Pending, Reply] | None = state.submit_group
        if group is not None and groupable(parsed):
            result: Reply | Any = await group(Pending(secret, parsed, request.query_params, principal))
        else:

            def work() -> Reply:
                call = authorised_call(
                    state.conveyor,
                    state.config,
                    state.limiter,
                    secret,
                    {},
                    request.query_params,
                    parsed,
                    principal,
                )
                return submit(call)

            result = await run_in_threadpool(work)
    except Exception as exc:
        return error_response(exc)
    return render(result)


submit_endpoint.__name__ = submit.__name__
submit_endpoint.__doc__ = submit.__doc__


def submit_batch(call: Call) -> Reply:
    reqs = [
        _authorise_submission(call, wire.request_from_dict(item, f"jobs[{i}]"), f"jobs[{i}].queue")
        for i, item in enumerate(call.body["jobs"])
    ]
    out = wire.batch_to_dict(call.app.jobs.submit_many_brief(reqs))
    return Reply(out, 201 if out["created"] else 200)


def _readable(call: Call, job_id: int) -> Job:
    job = call.app.jobs.get(job_id)
    call.require(call.principal.may_read_job(job), f"read job {job_id}")
    return job


def list_jobs(call: Call) -> Reply:
    p = call.principal
    queue = call.query.get("queue")
    if not p.reader:
        call.require(
            p.job_id is None and queue is not None and p.may_submit(queue),
            "list jobs (a submit token lists one of its queues: ?queue=NAME)",
        )
    q = call.query
    filters = wire.job_filters(
        state=q.getlist("state"),
        queue=queue,
        tag=q.get("tag"),
        array_parent_id=wire.query_value(q.get("array_parent_id"), whole=True),
        # array children are left out unless asked for, as the CLI does: an array job stands
        # for them (a state filter may match them alone: ?children=true)
        children=wire.query_flag(q.get("children")),
        before_id=wire.query_value(q.get("before_id"), whole=True),
        created_after=wire.query_value(q.get("created_after")),
        created_before=wire.query_value(q.get("created_before")),
        limit=wire.query_value(q.get("limit"), whole=True),
    )
    jobs = call.app.store.job_list(**filters)
    next_id = jobs[-1].id if len(jobs) == filters["limit"] else None
    return Reply({"jobs": [wire.job_to_dict(j) for j in jobs], "next_before_id": next_id})


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


def _bulk(call: Call, action: str) -> Reply:
    body = call.body or {}
    p = call.principal
    sel = wire.selection_from_dict(body)
    what = f"{action} jobs"
    call.require(p.job_id is None, what)
    if not p.admin:  # a submit token manages the jobs of its queues
        if sel.ids:
            queues = call.app.store.job_queues([i for i in sel.ids if 1 <= i <= MAX_ID])
            for job_id, queue in queues.items():
                call.require(
                    p.may_submit(queue), f"{action} job {job_id} (it is not in a queue this token submits to)"
                )
        else:
            call.require(
                sel.queue is not None and p.may_submit(sel.queue),
                f'{what} (a submit token selects one of its queues: "queue": NAME)',
            )
    out = call.app.jobs.act_on_many(action, sel, body.get("reason", ""), bool(body.get("dry_run", False)))
    return Reply(wire.bulk_to_dict(out))


def cancel_jobs(call: Call) -> Reply:
    return _bulk(call, "cancel")


def terminate_jobs(call: Call) -> Reply:
    return _bulk(call, "terminate")


def retry_jobs(call: Call) -> Reply:
    return _bulk(call, "retry")


def job_attempts(call: Call) -> Reply:
    job = _readable(call, call.id_param("job_id"))
    return Reply({"attempts": [wire.attempt_to_dict(a) for a in call.app.store.job_attempts(job.id)]})


def job_events(call: Call) -> Reply:
    job = _readable(call, call.id_param("job_id"))
    limit = call.q_int("limit", MAX_EVENTS_PAGE, 1, MAX_EVENTS_PAGE)
    assert limit is not None
    events = call.app.jobs.events(job.id, call.q_int("after_id", 0, 0, MAX_ID) or 0, limit)
    return Reply(
        {
            "events": [wire.event_to_dict(e) for e in events],
            "next_after_id": events[-1].id if len(events) == limit else None,
        }
    )


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
            attempt = call.q_int("attempt", None, 1, 10_000)
            return _LogCursor(app, app.jobs.log_job(job.id, attempt), attempt), call.q_bool("follow")

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
