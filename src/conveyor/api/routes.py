"""Every route once: the Starlette routes and the OpenAPI document are both built from ``OPERATIONS``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from conveyor.api import catalog, jobs, schedules
from conveyor.api.http import Handler
from conveyor.api.schema import ref
from conveyor.engine.jobs import MAX_EVENTS_PAGE
from conveyor.model import MAX_ID


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" or "query"
    schema: dict[str, Any]
    description: str = ""


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    handler: Handler | None
    summary: str
    tag: str
    body: str | None = None  # schema name of the JSON body
    body_required: bool = True
    ok: int = 200
    response: str | None = None  # schema name of the success body
    params: tuple[Param, ...] = ()
    raw: Callable[[Request], Awaitable[Response]] | None = None  # a handler that adapts itself
    text: bool = False  # the success body is text/plain
    extra_status: tuple[int, ...] = field(default=())

    @property
    def operation_id(self) -> str:
        target = self.raw if self.raw is not None else self.handler
        assert target is not None
        return target.__name__


JOB_ID = Param("job_id", "path", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "job id")
NAME = Param(
    "name",
    "path",
    {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
    "name",
)
TOKEN_ID = Param("token_id", "path", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "token id")


def q(name: str, schema: dict[str, Any], description: str = "") -> Param:
    return Param(name, "query", schema, description)


BOOL = {"type": "boolean"}
TIME_Q = {"type": "string", "format": "date-time"}

OPERATIONS: list[Op] = [
    # jobs
    Op(
        "POST", "/v1/jobs", jobs.submit, "Submit a job (200 with existing=true when a unique or idempotency key matched)",
        "jobs", body="Submission", ok=201, response="Submitted", extra_status=(200,), raw=jobs.submit_endpoint,
    ),
    Op(
        "POST", "/v1/jobs/batch", jobs.submit_batch, "Submit many jobs in one transaction (all or none)",
        "jobs", body="SubmissionBatch", ok=201, response="BatchResult", extra_status=(200,),
    ),
    Op(
        "GET", "/v1/jobs", jobs.list_jobs, "List jobs, newest first; page on with before_id", "jobs",
        response="JobPage",
        params=(
            q("state", {"type": "string", "maxLength": 200}, "comma-separated states"),
            q("queue", {"type": "string", "maxLength": 512}),
            q("tag", {"type": "string", "maxLength": 128}),
            q("array_parent_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
            q("children", BOOL, "list array children too (else their array job stands for them)"),
            q("created_after", TIME_Q),
            q("created_before", TIME_Q),
            q("before_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, "cursor: next_before_id of the last page"),
            q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
    ),
    Op(
        "GET", "/v1/jobs/{job_id}", jobs.get_job, "One job", "jobs", response="Job",
        params=(JOB_ID, q("explain", BOOL, "add why the job is where it is")),
    ),
    Op(
        "POST", "/v1/jobs/cancel", jobs.cancel_jobs,
        "Cancel many jobs that have not started: listed ids, or every job a filter matches", "jobs",
        body="BulkStop", response="BulkResult",
    ),
    Op(
        "POST", "/v1/jobs/terminate", jobs.terminate_jobs,
        "Terminate many jobs: listed ids, or every job a filter matches", "jobs",
        body="BulkStop", response="BulkResult",
    ),
    Op(
        "POST", "/v1/jobs/retry", jobs.retry_jobs,
        "Retry many FAILED or CANCELLED jobs: listed ids, or every job a filter matches", "jobs",
        body="BulkRetry", response="BulkResult",
    ),
    Op(
        "POST", "/v1/jobs/{job_id}/cancel", jobs.cancel_job, "Cancel a job that has not started (idempotent)",
        "jobs", body="Reason", body_required=False, response="JobAction", params=(JOB_ID,),
    ),
    Op(
        "POST", "/v1/jobs/{job_id}/terminate", jobs.terminate_job, "Stop a running job (its process group is killed)",
        "jobs", body="Reason", body_required=False, response="JobAction", params=(JOB_ID,),
    ),
    Op(
        "POST", "/v1/jobs/{job_id}/retry", jobs.retry_job, "Run a FAILED or CANCELLED job again", "jobs",
        response="JobAction", params=(JOB_ID,),
    ),
    Op(
        "GET", "/v1/jobs/{job_id}/attempts", jobs.job_attempts, "A job's attempts", "jobs",
        response="AttemptList", params=(JOB_ID,),
    ),
    Op(
        "GET", "/v1/jobs/{job_id}/events", jobs.job_events,
        "A job's history (state changes with from, to and reason), oldest first; page on with after_id",
        "jobs", response="EventPage",
        params=(
            JOB_ID,
            q("after_id", {"type": "integer", "minimum": 0, "maximum": MAX_ID}, "cursor: next_after_id of the last page"),
            q("limit", {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS_PAGE}),
        ),
    ),
    Op(
        "GET", "/v1/jobs/{job_id}/logs", None, "A job's captured output; follow=true streams until the job ends",
        "jobs", raw=jobs.job_logs, text=True,
        params=(JOB_ID, q("attempt", {"type": "integer", "minimum": 1, "maximum": 10000}), q("follow", BOOL)),
    ),
    # definitions
    Op(
        "GET", "/v1/definitions", catalog.list_definitions, "Job definitions (active revisions)", "definitions",
        response="DefinitionList", params=(q("include_inactive", BOOL),),
    ),
    Op(
        "POST", "/v1/definitions", catalog.register_definition,
        "Register a definition: a new revision when the spec changed (201), else the current one (200)",
        "definitions", body="DefinitionIn", ok=201, response="Definition", extra_status=(200,),
    ),
    Op(
        "GET", "/v1/definitions/{name}", catalog.get_definition, "One definition (its latest or the given revision; `active` says whether it may run)",
        "definitions", response="Definition",
        params=(NAME, q("revision", {"type": "integer", "minimum": 1, "maximum": 2**31})),
    ),
    Op(
        "DELETE", "/v1/definitions/{name}", catalog.deactivate_definition, "Deactivate a definition",
        "definitions", ok=204, params=(NAME,),
    ),
    # queues
    Op("GET", "/v1/queues", catalog.list_queues, "Queues with job counts per state", "queues", response="QueueList"),
    Op("GET", "/v1/queues/{name}", catalog.get_queue, "One queue", "queues", response="Queue", params=(NAME,)),
    Op(
        "PUT", "/v1/queues/{name}", catalog.put_queue, "Create (201) or update (200) a queue", "queues",
        body="QueueIn", response="Queue", params=(NAME,), extra_status=(201,),
    ),
    Op("DELETE", "/v1/queues/{name}", catalog.delete_queue, "Delete a queue with no unfinished jobs", "queues", ok=204, params=(NAME,)),
    # compute environments
    Op(
        "GET", "/v1/environments", catalog.list_environments, "Compute environments with capacity in use",
        "environments", response="EnvironmentList",
    ),
    Op(
        "GET", "/v1/environments/{name}", catalog.get_environment, "One compute environment", "environments",
        response="Environment", params=(NAME,),
    ),
    Op(
        "PUT", "/v1/environments/{name}", catalog.put_environment, "Create (201) or update (200) a compute environment",
        "environments", body="EnvironmentIn", response="Environment", params=(NAME,), extra_status=(201,),
    ),
    Op(
        "DELETE", "/v1/environments/{name}", catalog.delete_environment, "Delete a compute environment no queue uses",
        "environments", ok=204, params=(NAME,),
    ),
    # workers
    Op(
        "GET", "/v1/workers", catalog.list_workers, "Live workers with heartbeats, capacity and running jobs",
        "workers", response="WorkerList", params=(q("include_stopped", BOOL),),
    ),
    # schedules
    Op(
        "GET", "/v1/schedules", schedules.list_schedules, "Schedules by name; page on with after_name", "schedules",
        response="ScheduleList",
        params=(
            q("state", {"type": "string", "enum": ["ACTIVE", "PAUSED", "FINISHED"]}),
            q("tag", {"type": "string", "maxLength": 128}),
            q("after_name", {"type": "string", "maxLength": 128}),
            q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
        ),
    ),
    Op(
        "POST", "/v1/schedules", schedules.create_schedule, "Create a schedule (schedules:write and submit on its targets' queues)",
        "schedules", body="ScheduleIn", ok=201, response="Schedule",
    ),
    Op("GET", "/v1/schedules/{name}", schedules.get_schedule, "One schedule", "schedules", response="Schedule", params=(NAME,)),
    Op(
        "PATCH", "/v1/schedules/{name}", schedules.update_schedule, "Change a schedule; next times are recomputed",
        "schedules", body="ScheduleUpdate", response="Schedule", params=(NAME,),
    ),
    Op("DELETE", "/v1/schedules/{name}", schedules.delete_schedule, "Delete a schedule", "schedules", ok=204, params=(NAME,)),
    Op(
        "POST", "/v1/schedules/{name}/pause", schedules.pause_schedule, "Pause (idempotent)", "schedules",
        response="Schedule", params=(NAME,),
    ),
    Op(
        "POST", "/v1/schedules/{name}/resume", schedules.resume_schedule, "Resume (idempotent)", "schedules",
        response="Schedule", params=(NAME,),
    ),
    Op(
        "GET", "/v1/schedules/{name}/history", schedules.schedule_history, "Fires and skips, newest first", "schedules",
        response="ScheduleHistory", params=(NAME, q("limit", {"type": "integer", "minimum": 1, "maximum": 1000})),
    ),
    Op(
        "GET", "/v1/schedules/{name}/next", schedules.schedule_next, "The next fire times (nominal and due)", "schedules",
        response="ScheduleNext", params=(NAME, q("count", {"type": "integer", "minimum": 1, "maximum": 100})),
    ),
    # tokens
    Op(
        "GET", "/v1/tokens", catalog.list_tokens, "Tokens (never their secrets)", "tokens",
        response="TokenList", params=(q("include_revoked", BOOL),),
    ),
    Op(
        "POST", "/v1/tokens", catalog.create_token, "Create a token; the secret is in the answer, once",
        "tokens", body="TokenIn", ok=201, response="Token",
    ),
    Op(
        "DELETE", "/v1/tokens/{token_id}", catalog.revoke_token, "Revoke a token (idempotent)", "tokens",
        response="Token", params=(TOKEN_ID,),
    ),
]  # fmt: skip

LISTS = {
    "AttemptList": ("attempts", "Attempt"),
    "DefinitionList": ("definitions", "Definition"),
    "QueueList": ("queues", "Queue"),
    "EnvironmentList": ("environments", "Environment"),
    "WorkerList": ("workers", "Worker"),
    "TokenList": ("tokens", "Token"),
}


def list_schemas() -> dict[str, dict[str, Any]]:
    return {
        name: {
            "type": "object",
            "required": [key],
            "properties": {key: {"type": "array", "items": ref(item)}},
        }
        for name, (key, item) in LISTS.items()
    }
