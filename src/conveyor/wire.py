"""The JSON forms shared by the HTTP API and the SDK (snake_case, ISO-8601 times with offset).

``request_from_dict`` turns a submission object into a ``SubmitRequest``, checking the JSON
types the engine relies on; the engine then checks the values. Both edges use it, so a
submission means the same over HTTP, from the SDK on the database and in ``--from-file``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from conveyor import errors, values
from conveyor.engine import validate
from conveyor.engine.catalog import MAX_REVISION
from conveyor.engine.jobs import (
    MAX_BULK_IDS,
    MAX_FILTER_STATES,
    MAX_KEY,
    MAX_NAME,
    BulkOutcome,
    JobSelection,
    SubmitRequest,
)
from conveyor.model import (
    MAX_ID,
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


_STATES = ", ".join(validate.JOB_STATES)


def job_states(field: str, texts: Iterable[Any]) -> tuple[JobState, ...]:
    """Job states named in ``texts``, flags or query parameters: each may list several,
    comma-separated, in any case of their ASCII letters (``validate.canonical``); an empty
    text names none."""
    states: list[JobState] = []
    for text in texts:
        if not isinstance(text, str):
            raise errors.ValidationError(field, validate.not_a(text, "a string"), _STATES)
        if text:
            states.extend(
                JobState(validate.choice(field, part.strip(), validate.JOB_STATES))
                for part in text.split(",")
            )
    return tuple(states)


def selection_from_dict(body: Mapping[str, Any]) -> JobSelection:
    """A bulk action's selection from its JSON body, in the words of its schema (``BulkStop``):
    ``states`` a list of job states, each in any case, never several in one string; the
    engine checks the rest (``JobService.act_on_many``)."""
    ids, states = body.get("ids"), body.get("states")
    return JobSelection(
        ids=() if ids is None else validate.items("ids", ids, MAX_BULK_IDS, "a list of whole numbers"),
        states=()
        if states is None
        else tuple(
            JobState(validate.choice(f"states[{i}]", state, validate.JOB_STATES))
            for i, state in enumerate(
                validate.items("states", states, MAX_FILTER_STATES, "a list of strings")
            )
        ),
        queue=body.get("queue"),
        tag=body.get("tag"),
        everything=validate.boolean("all", body.get("all", False)),
    )


def job_filters(
    *,
    state: Any = None,
    queue: Any = None,
    tag: Any = None,
    array_parent_id: Any = None,
    children: Any = False,
    before_id: Any = None,
    created_after: Any = None,
    created_before: Any = None,
    limit: Any = None,
    most: int = MAX_PAGE,
) -> dict[str, Any]:
    """The filters of a job listing as ``Store.job_list`` takes them, each checked in the same
    words on every path: ``GET /v1/jobs`` (its query text read by ``query_value``), the SDK
    on either backend, ``conveyor jobs list`` (``most``: its own largest page). ``state``: a
    text or a list of texts (``job_states``); None or an empty text: no filter."""
    texts = () if state is None else state if isinstance(state, list | tuple) else (state,)
    return {
        "states": job_states("state", texts),
        "queue": None if queue is None else validate.string("queue", queue, None, 512),
        "tag": None if tag is None else validate.string("tag", tag, None, 128),
        "array_parent_id": None
        if array_parent_id is None
        else validate.integer("array_parent_id", array_parent_id, 1, MAX_ID),
        "include_children": False if children is None else validate.boolean("children", children),
        "before_id": None if before_id is None else validate.integer("before_id", before_id, 1, MAX_ID),
        "created_after": None if created_after is None else _filter_time("created_after", created_after),
        "created_before": None if created_before is None else _filter_time("created_before", created_before),
        "limit": validate.integer("limit", 50 if limit is None else limit, 1, most),
    }


_WHOLE = re.compile(r"-?[0-9]{1,1000}")


def query_value(text: str | None, whole: bool = False) -> Any:
    """A query parameter's text as ``job_filters`` takes it: an empty one is left out, a whole
    number's digits are that number (other text is refused there as the SDK's would be)."""
    if not text:
        return None
    return int(text) if whole and _WHOLE.fullmatch(text) else text


def query_flag(text: str | None) -> Any:
    """A query parameter's text as a flag (``true``, ``1``, ``yes``; ``false``, ``0``, ``no``;
    any case), as ``job_filters`` takes it: other text is refused there, an empty one left out."""
    if not text:
        return None
    return _FLAGS.get(text.lower(), text)


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _filter_time(field: str, value: Any) -> datetime:
    return validate.moment(field, _time(field, value))


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
# the bounds of the Submission schema (api/schema.py), checked here in its words: a submission
# refused by the schema over HTTP is refused the same way by the SDK on the database and in
# --from-file (tests/api/test_error_uniformity.py holds the two side by side)
_STR: dict[str, tuple[int | None, int]] = {
    "queue": (None, 512),
    "definition": (None, 512),
    "function": (None, 512),
    "unique_key": (1, MAX_KEY),
    "idempotency_key": (1, MAX_KEY),
    "name": (1, MAX_NAME),
    "working_dir": (None, 4096),
}
_INT: dict[str, tuple[int, int]] = {
    "definition_revision": (1, MAX_REVISION),
    "priority": validate.PRIORITY_RANGE,
    "array_size": (validate.MIN_ARRAY, validate.MAX_ARRAY),
    "parent_id": (1, MAX_ID),
    "memory_mb": (0, validate.MAX_MEMORY_MB),
}
_NUM: dict[str, tuple[float, float, bool]] = {  # low, high, whether low itself is refused
    "delay_seconds": (0, validate.MAX_DELAY_SECONDS, False),
    "unique_ttl_seconds": (0, validate.MAX_DELAY_SECONDS, False),
    "timeout_seconds": (0, validate.MAX_TIMEOUT_SECONDS, True),
    "vcpus": (0, validate.MAX_VCPUS, True),
}
_MAX_TAGS, _MAX_TAG = 100, 128
_MAX_DEPENDENCIES = 1000
_TIME_LENGTH = 64
_JOB_ID = validate.span(1, MAX_ID, whole=True)
_DEPENDENCY = f"{_JOB_ID}, or a {{job_id, type}} object"


def request_from_dict(data: Any, where: str = "job") -> SubmitRequest:
    """A submission object (see the OpenAPI ``Submission`` schema) as a ``SubmitRequest``."""

    def at(key: str) -> str:
        return f"{where}.{key}" if where else key

    if not isinstance(data, Mapping):
        raise errors.ValidationError(
            where or "body", validate.not_a(data, "an object"), '{"queue": ..., "command": [...]}'
        )
    given: dict[str, Any] = {}
    for key, value in data.items():
        if key not in SUBMIT_FIELDS:
            raise errors.ValidationError(
                at(str(key)), "is not a known field", ", ".join(sorted(SUBMIT_FIELDS))
            )
        if value is None and key not in ("payload",):
            continue
        if key in _STR:
            low, high = _STR[key]
            validate.string(at(key), value, low, high)
        elif key in _INT:
            validate.integer(at(key), value, *_INT[key])
        elif key in _NUM:
            low_f, high_f, low_open = _NUM[key]
            validate.number(at(key), value, low_f, high_f, low_open=low_open)
        elif key == "command":
            validate.argv(at(key), value)
        elif key == "tags":
            validate.strings(at(key), value, _MAX_TAGS, None, _MAX_TAG)
        elif key in ("parameters", "environment"):
            validate.string_map(at(key), value)
        elif key == "array_sequential":
            validate.boolean(at(key), value)
        elif key == "retry":
            if isinstance(value, int) and not isinstance(value, bool):
                validate.integer(at(key), value, 1, validate.MAX_ATTEMPTS)
            elif not isinstance(value, Mapping):
                raise errors.ValidationError(
                    at(key),
                    validate.not_a(value, "a whole number or an object"),
                    f"{validate.span(1, validate.MAX_ATTEMPTS, whole=True)}, or {validate.RETRY_FORM}",
                )
            elif not isinstance(value.get("evaluate_on_exit", []), list | tuple):
                raise errors.ValidationError(
                    at(f"{key}.evaluate_on_exit"),
                    validate.not_a(value["evaluate_on_exit"], "a list"),
                    f"a list of {validate.RULE.removeprefix('a ')}s",
                )
        elif key == "run_at":
            value = _time(at("run_at"), value)
        elif key == "depends_on":
            value = _dependencies(at("depends_on"), value)
        given[key] = value
    return SubmitRequest(**given)


def _time(field: str, value: Any) -> datetime:
    if not isinstance(value, str):
        raise errors.ValidationError(field, validate.not_a(value, "a string"), validate.ISO_TIME)
    if len(value) > _TIME_LENGTH:
        raise errors.ValidationError(field, validate.length(value), validate.characters(None, _TIME_LENGTH))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise errors.ValidationError(
            field, f"{values.shown(value)} is not an ISO-8601 time", validate.ISO_TIME
        ) from None
    if parsed.tzinfo is None:
        raise errors.ValidationError(field, f"{values.shown(value)} has no UTC offset", validate.ISO_TIME)
    return parsed


def _dependencies(field: str, value: Any) -> list[int | Dependency]:
    """Job ids, or ``{job_id, type}`` objects (the type in any case, ``validate.canonical``)."""
    if not isinstance(value, list | tuple):
        raise errors.ValidationError(
            field, validate.not_a(value, "a list"), "a list of whole numbers or {job_id, type} objects"
        )
    if len(value) > _MAX_DEPENDENCIES:
        raise errors.ValidationError(
            field, validate.count(len(value)), f"at most {_MAX_DEPENDENCIES:,} items"
        )
    deps: list[int | Dependency] = []
    for i, d in enumerate(value):
        where = f"{field}[{i}]"
        if isinstance(d, Mapping):
            if "job_id" not in d:
                raise errors.ValidationError(f"{where}.job_id", "is required", _JOB_ID)
            for key in d:
                if key not in ("job_id", "type"):
                    raise errors.ValidationError(f"{where}.{key}", "is not a known field", "job_id, type")
            job_id = validate.integer(f"{where}.job_id", d["job_id"], 1, MAX_ID)
            kind = validate.choice(f"{where}.type", d.get("type", "STANDARD"), validate.DEPENDENCY_TYPES)
            deps.append(Dependency(job_id, DependencyType(kind)))
        elif isinstance(d, int) and not isinstance(d, bool):
            deps.append(validate.integer(where, d, 1, MAX_ID))
        else:
            raise errors.ValidationError(where, validate.not_a(d, "a whole number or an object"), _DEPENDENCY)
    return deps
