"""The JSON forms shared by the HTTP API and the SDK (snake_case, ISO-8601 times with offset).

``request_from_dict`` turns a submission object into a ``SubmitRequest``, checking the JSON
types the engine relies on; the engine then checks the values. Both edges use it, so a
submission means the same over HTTP, from the SDK on the database and in ``--from-file``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from conveyor import errors
from conveyor.engine import validate
from conveyor.engine.jobs import BulkOutcome, JobSelection, SubmitRequest
from conveyor.model import (
    Attempt,
    ComputeEnvironment,
    Dependency,
    DependencyType,
    EnvironmentUsage,
    Event,
    Inserted,
    Job,
    JobDefinition,
    JobState,
    Queue,
    WorkerInfo,
    spec_to_dict,
)
from conveyor.store.tokens import Token

JSONObject = dict[str, Any]


MAX_PAGE = 1000  # jobs listed at once (GET /v1/jobs, the SDK's jobs())


def when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job_to_dict(job: Job) -> JSONObject:
    return {
        "id": job.id,
        "queue": job.queue,
        "name": job.name,
        "definition": job.definition,
        "definition_revision": job.definition_revision,
        "spec": spec_to_dict(job.spec),
        "state": job.state.value,
        "status_reason": job.status_reason,
        "priority": job.priority,
        "created_at": when(job.created_at),
        "updated_at": when(job.updated_at),
        "run_at": when(job.run_at),
        "started_at": when(job.started_at),
        "finished_at": when(job.finished_at),
        "attempt": job.attempt,
        "attempts_counted": job.attempts_counted,
        "payload": job.payload,
        "payload_ref": job.payload_ref,
        "result": job.result,
        "tags": list(job.tags),
        "unique_key": job.unique_key,
        "idempotency_key": job.idempotency_key,
        "parent_id": job.parent_id,
        "array_size": job.array_size,
        "array_index": job.array_index,
        "array_parent_id": job.array_parent_id,
        "depends_on": list(job.depends_on),
        "worker_id": job.worker_id,
        "lease_expires_at": when(job.lease_expires_at),
        "compute_environment": job.compute_environment,
        "terminate_requested": job.terminate_requested,
    }


def batch_to_dict(results: Sequence[Inserted]) -> JSONObject:
    """The answer to a bulk submission: each job's id and state, and the counts."""
    created = sum(not r.existing for r in results)
    return {
        "jobs": [
            {"id": r.id, "state": r.state.value, "existing": r.existing, "reason": r.reason} for r in results
        ],
        "created": created,
        "existing": len(results) - created,
    }


def job_states(field: str, texts: Iterable[str]) -> tuple[JobState, ...]:
    """Job states named in ``texts`` (each may list several, comma-separated; any case)."""
    states: list[JobState] = []
    for text in texts:
        for part in text.split(","):
            try:
                states.append(JobState(part.strip().upper()))
            except ValueError:
                raise errors.ValidationError(
                    field, f"{part!r} is not a job state", ", ".join(s.value for s in JobState)
                ) from None
    return tuple(states)


def selection_from_dict(body: Mapping[str, Any]) -> JobSelection:
    """A bulk action's selection from its JSON body (checked against its schema by the API)."""
    return JobSelection(
        ids=tuple(body.get("ids") or ()),
        states=job_states("states", body.get("states") or ()),
        queue=body.get("queue"),
        tag=body.get("tag"),
        everything=validate.boolean("all", body.get("all", False)),
    )


def bulk_to_dict(out: BulkOutcome) -> JSONObject:
    """The answer to a bulk cancel, terminate or retry."""
    return {
        "action": out.action,
        "dry_run": out.dry_run,
        "matched": out.matched,
        "changed": out.changed,
        "unchanged": out.unchanged,
        "skipped": [{"id": job_id, "reason": why} for job_id, why in out.skipped],
    }


def attempt_to_dict(a: Attempt) -> JSONObject:
    return {
        "job_id": a.job_id,
        "number": a.number,
        "worker_id": a.worker_id,
        "host": a.host,
        "pid": a.pid,
        "started_at": when(a.started_at),
        "stopped_at": when(a.stopped_at),
        "exit_code": a.exit_code,
        "reason": a.reason,
        "compute_environment": a.compute_environment,
        "counted": a.counted,
    }


def event_to_dict(e: Event) -> JSONObject:
    """A job's event: ``data`` of a state change holds ``from`` (absent when the job was
    created, and in events written by versions before it was added), ``to``, ``reason`` and, from a worker, ``attempt``, ``worker``, ``exit_code``."""
    return {"id": e.id, "at": when(e.at), "type": e.type, "data": e.data}


def queue_to_dict(q: Queue, counts: Mapping[str, int] | None = None) -> JSONObject:
    out: JSONObject = {
        "name": q.name,
        "priority": q.priority,
        "enabled": q.enabled,
        "environments": list(q.environments),
    }
    if counts is not None:
        out["counts"] = dict(counts)
    return out


def environment_to_dict(e: ComputeEnvironment, usage: EnvironmentUsage | None = None) -> JSONObject:
    out: JSONObject = {
        "name": e.name,
        "max_vcpus": e.max_vcpus,
        "max_memory_mb": e.max_memory_mb,
        "enabled": e.enabled,
    }
    if usage is not None:
        out["usage"] = {
            "used_vcpus": usage.used_vcpus,
            "used_memory_mb": usage.used_memory_mb,
            "running": usage.running,
            "live_workers": usage.live_workers,
        }
    return out


def definition_to_dict(d: JobDefinition) -> JSONObject:
    return {
        "name": d.name,
        "revision": d.revision,
        "spec": spec_to_dict(d.spec),
        "active": d.active,
        "created_at": when(d.created_at),
    }


def worker_to_dict(w: WorkerInfo) -> JSONObject:
    return {
        "id": w.id,
        "host": w.host,
        "pid": w.pid,
        "environment": w.environment,
        "queues": list(w.queues),
        "concurrency": w.concurrency,
        "running": w.running,
        "started_at": when(w.started_at),
        "heartbeat_at": when(w.heartbeat_at),
        "stopped_at": when(w.stopped_at),
    }


def token_to_dict(t: Token) -> JSONObject:
    return {
        "id": t.id,
        "name": t.name,
        "scopes": list(t.scopes),
        "created_at": when(t.created_at),
        "expires_at": when(t.expires_at),
        "revoked_at": when(t.revoked_at),
        "last_used_at": when(t.last_used_at),
    }


# -- submissions ------------------------------------------------------------------------------

SUBMIT_FIELDS = frozenset(f for f in SubmitRequest.__dataclass_fields__ if f != "extra")
_STR = ("queue", "definition", "function", "unique_key", "idempotency_key", "name")
_INT = ("definition_revision", "priority", "array_size", "parent_id", "memory_mb")
_NUM = ("delay_seconds", "unique_ttl_seconds", "timeout_seconds", "vcpus")


def request_from_dict(data: Any, where: str = "job") -> SubmitRequest:
    """A submission object (see the OpenAPI ``Submission`` schema) as a ``SubmitRequest``."""

    def fail(key: str, reason: str, allowed: str | None = None) -> errors.ValidationError:
        return errors.ValidationError(f"{where}.{key}" if where else key, reason, allowed)

    if not isinstance(data, Mapping):
        raise errors.ValidationError(
            where or "body", "must be a JSON object", '{"queue": ..., "command": [...]}'
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in SUBMIT_FIELDS:
            raise fail(str(key), "is not a known field", ", ".join(sorted(SUBMIT_FIELDS)))
        if value is None and key not in ("payload",):
            continue
        if key in _STR:
            if not isinstance(value, str) or len(value) > 512:
                raise fail(key, "must be a string of at most 512 characters")
        elif key in _INT:
            if isinstance(value, bool) or not isinstance(value, int):
                raise fail(key, f"{value!r} is not a whole number")
        elif key in _NUM:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise fail(key, f"{value!r} is not a number")
        elif key == "command":
            if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
                raise fail(key, "must be a non-empty list of strings (argv)", '["echo", "hello"]')
        elif key == "tags":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise fail(key, "must be a list of strings")
        elif key in ("parameters", "environment"):
            if not isinstance(value, Mapping):
                raise fail(key, "must be an object")
        elif key == "array_sequential":
            if not isinstance(value, bool):
                raise fail(key, "must be true or false")
        elif key == "retry":
            if isinstance(value, bool) or not isinstance(value, int | Mapping):
                raise fail(key, "must be a number of attempts or a retry strategy object")
            if isinstance(value, Mapping) and not isinstance(value.get("evaluate_on_exit", []), list):
                raise fail(f"{key}.evaluate_on_exit", "must be a list of rules")
        elif key == "run_at":
            value = _time(f"{where}.run_at" if where else "run_at", value)
        elif key == "depends_on":
            value = _dependencies(f"{where}.depends_on" if where else "depends_on", value)
        values[key] = value
    return SubmitRequest(**values)


def _time(field: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise errors.ValidationError(
            field, "must be an ISO-8601 time string", "e.g. 2026-05-01T12:00:00+00:00"
        )
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise errors.ValidationError(
            field, f"{value!r} is not an ISO-8601 time", "e.g. 2026-05-01T12:00:00+00:00"
        ) from None
    if parsed.tzinfo is None:
        raise errors.ValidationError(field, f"{value!r} has no UTC offset", "e.g. 2026-05-01T12:00:00Z")
    return parsed


def _dependencies(field: str, value: Any) -> list[int | Dependency]:
    if not isinstance(value, list):
        raise errors.ValidationError(field, "must be a list of job ids or {job_id, type} objects")
    deps: list[int | Dependency] = []
    for i, d in enumerate(value):
        if isinstance(d, Mapping):
            job_id, kind = d.get("job_id"), str(d.get("type", "STANDARD")).upper()
            if isinstance(job_id, bool) or not isinstance(job_id, int):
                raise errors.ValidationError(f"{field}[{i}].job_id", f"{job_id!r} is not a job id")
            if kind not in DependencyType.__members__:
                raise errors.ValidationError(
                    f"{field}[{i}].type", f"{kind!r} is not a dependency type", "STANDARD, N_TO_N"
                )
            deps.append(Dependency(job_id, DependencyType(kind)))
        elif isinstance(d, int) and not isinstance(d, bool):
            deps.append(d)
        else:
            raise errors.ValidationError(f"{field}[{i}]", f"{d!r} is not a job id")
    return deps
