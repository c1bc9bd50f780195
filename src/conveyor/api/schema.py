"""The JSON Schemas of request and response bodies, and the small checker that enforces them.

The same schemas are published in ``/openapi.json``: what the document says is what the
server checks. The checker knows the subset we use (type, properties, required,
additionalProperties, items, enum, minimum/maximum, minLength/maxLength, minItems/maxItems,
anyOf, $ref); each error names the field path (``jobs[3].retry.attempts``).
"""

from __future__ import annotations

from typing import Any

from conveyor import errors
from conveyor.api.schedule_schemas import SCHEDULE_SCHEMAS

S = dict[str, Any]


def ref(name: str) -> S:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: S) -> S:
    return {"anyOf": [schema, {"type": "null"}]}


STR = {"type": "string", "maxLength": 512}
NAME = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"}
INT = {"type": "integer", "minimum": -(2**62), "maximum": 2**62}
ID = {"type": "integer", "minimum": 1, "maximum": 2**62}
NUM = {"type": "number", "minimum": 0, "maximum": 1e9}
TIME = {"type": "string", "format": "date-time", "maxLength": 64}
STR_MAP = {"type": "object", "maxProperties": 1000, "additionalProperties": {"type": ["string", "number"]}}
STATE = {
    "type": "string",
    "enum": ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"],
}

RETRY_RULE: S = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action"],
    "properties": {
        "action": {"type": "string", "enum": ["RETRY", "EXIT"]},
        "on_exit_code": nullable({"type": "string", "maxLength": 512}),
        "on_reason": nullable({"type": "string", "maxLength": 512}),
    },
}
RETRY: S = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "attempts": {"type": "integer", "minimum": 1, "maximum": 10},
        "evaluate_on_exit": {"type": "array", "maxItems": 100, "items": RETRY_RULE},
        "backoff": {"type": "string", "enum": ["fixed", "exponential"]},
        "delay_seconds": NUM,
        "max_delay_seconds": NUM,
        "jitter": {"type": "boolean"},
    },
}
SPEC: S = {
    "type": "object",
    "additionalProperties": False,
    "description": "What to run: exactly one of command (argv, {param} templates) or function (module:callable).",
    "properties": {
        "command": nullable({"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": "string"}}),
        "function": nullable({"type": "string", "maxLength": 512}),
        "parameters": STR_MAP,
        "vcpus": NUM,
        "memory_mb": {"type": "integer", "minimum": 0, "maximum": 16_777_216},
        "timeout_seconds": nullable(NUM),
        "retry": RETRY,
        "environment": STR_MAP,
        "follow_up_queues": {"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 128}},
        "working_dir": nullable({"type": "string", "maxLength": 4096}),
    },
}
DEPENDENCY: S = {
    "anyOf": [
        ID,
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["job_id"],
            "properties": {"job_id": ID, "type": {"type": "string", "enum": ["STANDARD", "N_TO_N"]}},
        },
    ]
}
SUBMISSION: S = {
    "type": "object",
    "additionalProperties": False,
    "description": "One job: a definition (with overrides), an ad-hoc command or a Python function.",
    "properties": {
        "queue": STR,
        "definition": nullable(STR),
        "definition_revision": nullable(ID),
        "command": nullable({"type": "array", "minItems": 1, "maxItems": 1000, "items": {"type": "string"}}),
        "function": nullable(STR),
        "parameters": nullable(STR_MAP),
        "payload": {"description": "any JSON value; function jobs: {args: [...], kwargs: {...}}"},
        "priority": INT,
        "run_at": nullable(TIME),
        "delay_seconds": nullable(NUM),
        "depends_on": {"type": "array", "maxItems": 1000, "items": DEPENDENCY},
        "array_size": nullable({"type": "integer", "minimum": 2, "maximum": 10_000}),
        "array_sequential": {"type": "boolean"},
        "unique_key": nullable(STR),
        "unique_ttl_seconds": nullable(NUM),
        "idempotency_key": nullable(STR),
        "timeout_seconds": nullable(NUM),
        "retry": nullable({"anyOf": [{"type": "integer", "minimum": 1, "maximum": 10}, RETRY]}),
        "vcpus": nullable(NUM),
        "memory_mb": nullable({"type": "integer", "minimum": 0, "maximum": 16_777_216}),
        "environment": nullable(STR_MAP),
        "tags": {"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 128}},
        "name": nullable(STR),
        "parent_id": nullable(ID),
    },
}
BATCH: S = {
    "type": "object",
    "additionalProperties": False,
    "required": ["jobs"],
    "properties": {"jobs": {"type": "array", "minItems": 1, "maxItems": 50_000, "items": ref("Submission")}},
}
REASON: S = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"reason": {"type": "string", "maxLength": 1000}},
}
DEFINITION_IN: S = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "spec"],
    "properties": {"name": NAME, "spec": ref("DefinitionSpec")},
}
QUEUE_IN: S = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
        "enabled": {"type": "boolean"},
        "environments": {"type": "array", "minItems": 1, "maxItems": 100, "items": NAME},
    },
}
ENVIRONMENT_IN: S = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "max_vcpus": nullable({"type": "number", "exclusiveMinimum": 0, "maximum": 1_000_000}),
        "max_memory_mb": nullable({"type": "integer", "minimum": 1, "maximum": 2**31 - 1}),
        "enabled": {"type": "boolean"},
    },
}
TOKEN_IN: S = {
    "type": "object",
    "additionalProperties": False,
    "required": ["scopes"],
    "properties": {
        "name": {"type": "string", "maxLength": 200},
        "scopes": {
            "type": "array",
            "minItems": 1,
            "maxItems": 50,
            "items": {"type": "string", "maxLength": 140},
            "description": "admin, read, schedules:write, checks:write, submit:<queue-glob>",
        },
        "expires_in_seconds": nullable({"type": "number", "exclusiveMinimum": 0, "maximum": 315_360_000}),
    },
}

# -- responses ---------------------------------------------------------------------------------------
_ANY_OBJ: S = {"type": "object"}
JOB: S = {
    "type": "object",
    "required": ["id", "queue", "state", "status_reason", "created_at", "attempt"],
    "properties": {
        "id": ID,
        "queue": {"type": "string"},
        "name": nullable({"type": "string"}),
        "definition": nullable({"type": "string"}),
        "definition_revision": nullable({"type": "integer"}),
        "spec": ref("DefinitionSpec"),
        "state": STATE,
        "status_reason": {"type": "string"},
        "priority": {"type": "integer"},
        "created_at": TIME,
        "updated_at": TIME,
        "run_at": nullable(TIME),
        "started_at": nullable(TIME),
        "finished_at": nullable(TIME),
        "attempt": {"type": "integer"},
        "attempts_counted": {"type": "integer"},
        "payload": {},
        "payload_ref": nullable({"type": "string"}),
        "result": {},
        "tags": {"type": "array", "items": {"type": "string"}},
        "unique_key": nullable({"type": "string"}),
        "idempotency_key": nullable({"type": "string"}),
        "parent_id": nullable({"type": "integer"}),
        "array_size": nullable({"type": "integer"}),
        "array_index": nullable({"type": "integer"}),
        "array_parent_id": nullable({"type": "integer"}),
        "depends_on": {"type": "array", "items": {"type": "integer"}},
        "worker_id": nullable({"type": "string"}),
        "lease_expires_at": nullable(TIME),
        "compute_environment": nullable({"type": "string"}),
        "terminate_requested": {"type": "boolean"},
        "explanation": {"type": "string", "description": "with ?explain=true: why the job is where it is"},
    },
}
SUBMITTED: S = {
    "type": "object",
    "required": ["job", "existing", "reason"],
    "properties": {
        "job": ref("Job"),
        "existing": {
            "type": "boolean",
            "description": "a unique or idempotency key matched this existing job",
        },
        "reason": {"type": "string"},
    },
}
BATCH_RESULT: S = {
    "type": "object",
    "required": ["jobs", "created", "existing"],
    "properties": {
        "jobs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": ID,
                    "state": STATE,
                    "existing": {"type": "boolean"},
                    "reason": {"type": "string"},
                },
            },
        },
        "created": {"type": "integer"},
        "existing": {"type": "integer"},
    },
}
JOB_PAGE: S = {
    "type": "object",
    "required": ["jobs", "next_before_id"],
    "properties": {
        "jobs": {"type": "array", "items": ref("Job")},
        "next_before_id": nullable({"type": "integer", "description": "pass as before_id for the next page"}),
    },
}
JOB_ACTION: S = {
    "type": "object",
    "required": ["job", "changed"],
    "properties": {"job": ref("Job"), "changed": {"type": "boolean"}},
}
ATTEMPT: S = {
    "type": "object",
    "properties": {
        "job_id": {"type": "integer"},
        "number": {"type": "integer"},
        "worker_id": {"type": "string"},
        "host": {"type": "string"},
        "pid": nullable({"type": "integer"}),
        "started_at": TIME,
        "stopped_at": nullable(TIME),
        "exit_code": nullable({"type": "integer"}),
        "reason": {"type": "string"},
        "compute_environment": nullable({"type": "string"}),
        "counted": {"type": "boolean"},
    },
}
QUEUE: S = {
    "type": "object",
    "required": ["name", "priority", "enabled", "environments"],
    "properties": {
        "name": {"type": "string"},
        "priority": {"type": "integer"},
        "enabled": {"type": "boolean"},
        "environments": {"type": "array", "items": {"type": "string"}},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
}
ENVIRONMENT: S = {
    "type": "object",
    "required": ["name", "enabled"],
    "properties": {
        "name": {"type": "string"},
        "max_vcpus": nullable({"type": "number"}),
        "max_memory_mb": nullable({"type": "integer"}),
        "enabled": {"type": "boolean"},
        "usage": _ANY_OBJ,
    },
}
DEFINITION: S = {
    "type": "object",
    "required": ["name", "revision", "spec", "active"],
    "properties": {
        "name": {"type": "string"},
        "revision": {"type": "integer"},
        "spec": ref("DefinitionSpec"),
        "active": {"type": "boolean"},
        "created_at": TIME,
        "created": {"type": "boolean", "description": "on register: a new revision was made"},
    },
}
WORKER: S = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "host": {"type": "string"},
        "pid": {"type": "integer"},
        "environment": {"type": "string"},
        "queues": {"type": "array", "items": {"type": "string"}},
        "concurrency": {"type": "integer"},
        "running": {"type": "integer"},
        "started_at": TIME,
        "heartbeat_at": TIME,
        "stopped_at": nullable(TIME),
    },
}
TOKEN: S = {
    "type": "object",
    "required": ["id", "name", "scopes"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "created_at": TIME,
        "expires_at": nullable(TIME),
        "revoked_at": nullable(TIME),
        "last_used_at": nullable(TIME),
        "token": {"type": "string", "description": "the secret: shown once, on create"},
        "changed": {"type": "boolean"},
    },
}
PROBLEM: S = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "field": {"type": "string", "description": "the input at fault, as a path: jobs[3].retry.attempts"},
        "allowed": {"type": "string"},
        "kind": {"type": "string"},
        "key": {"type": "string"},
        "retry_after": {"type": "number"},
    },
}

SCHEMAS: dict[str, S] = {
    "Submission": SUBMISSION,
    "SubmissionBatch": BATCH,
    "Reason": REASON,
    "DefinitionSpec": SPEC,
    "RetryStrategy": RETRY,
    "DefinitionIn": DEFINITION_IN,
    "QueueIn": QUEUE_IN,
    "EnvironmentIn": ENVIRONMENT_IN,
    "TokenIn": TOKEN_IN,
    "Job": JOB,
    "Submitted": SUBMITTED,
    "BatchResult": BATCH_RESULT,
    "JobPage": JOB_PAGE,
    "JobAction": JOB_ACTION,
    "Attempt": ATTEMPT,
    "Queue": QUEUE,
    "Environment": ENVIRONMENT,
    "Definition": DEFINITION,
    "Worker": WORKER,
    "Token": TOKEN,
    "Problem": PROBLEM,
    **SCHEDULE_SCHEMAS,
}


_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is(kind: str, value: Any) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def check(name: str, value: Any) -> None:
    """Raise ``errors.ValidationError`` naming the field when ``value`` does not fit schema ``name``."""
    _check(SCHEMAS[name], value, "")
    _no_nul(value, "")


def _no_nul(value: Any, at: str) -> None:
    """No NUL characters anywhere (PostgreSQL text and JSONB cannot hold them), free-form payloads too."""
    if isinstance(value, str):
        if "\x00" in value:
            raise errors.ValidationError(at or "body", "contains a NUL character")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_nul(item, _path(at, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise errors.ValidationError(at or "body", "a member name contains a NUL character")
            _no_nul(item, _path(at, key))


def _path(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


def _check(s: S, value: Any, at: str) -> None:
    where = at or "body"
    if "$ref" in s:
        _check(SCHEMAS[s["$ref"].rsplit("/", 1)[1]], value, at)
        return
    if "anyOf" in s:
        failures = []
        for option in s["anyOf"]:
            try:
                _check(option, value, at)
                return
            except errors.ValidationError as exc:
                failures.append(exc)
        # the most specific failure: the one whose type matched
        deepest = max(failures, key=lambda e: len(e.field))
        raise deepest
    kinds = s.get("type")
    if kinds is not None:
        options = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(k, value) for k in options):
            raise errors.ValidationError(where, f"must be {' or '.join(options)}", None)
    if "enum" in s and value not in s["enum"]:
        raise errors.ValidationError(where, f"{value!r} is not allowed", ", ".join(map(str, s["enum"])))
    if _is("number", value):
        if "minimum" in s and value < s["minimum"]:
            raise errors.ValidationError(where, f"{value} is below {s['minimum']}")
        if "exclusiveMinimum" in s and value <= s["exclusiveMinimum"]:
            raise errors.ValidationError(where, f"{value} must be more than {s['exclusiveMinimum']}")
        if "maximum" in s and value > s["maximum"]:
            raise errors.ValidationError(where, f"{value} is above {s['maximum']}")
        if isinstance(value, float) and value != value:
            raise errors.ValidationError(where, "is not a number")
    if isinstance(value, str):
        if "maxLength" in s and len(value) > s["maxLength"]:
            raise errors.ValidationError(where, f"is longer than {s['maxLength']} characters")
        if "minLength" in s and len(value) < s["minLength"]:
            raise errors.ValidationError(where, f"is shorter than {s['minLength']} characters")
        if "\x00" in value:
            raise errors.ValidationError(where, "contains a NUL character")
    if isinstance(value, list):
        if "minItems" in s and len(value) < s["minItems"]:
            raise errors.ValidationError(where, f"needs at least {s['minItems']} item(s)")
        if "maxItems" in s and len(value) > s["maxItems"]:
            raise errors.ValidationError(where, f"has more than {s['maxItems']} items")
        if "items" in s:
            for i, item in enumerate(value):
                _check(s["items"], item, _path(at, i))
    if isinstance(value, dict):
        if "maxProperties" in s and len(value) > s["maxProperties"]:
            raise errors.ValidationError(where, f"has more than {s['maxProperties']} members")
        props: dict[str, S] = s.get("properties", {})
        for key in s.get("required", ()):
            if key not in value:
                raise errors.ValidationError(_path(at, key), "is required")
        extra = s.get("additionalProperties", True)
        for key, item in value.items():
            if "\x00" in key:
                raise errors.ValidationError(where, "a member name contains a NUL character")
            if key in props:
                _check(props[key], item, _path(at, key))
            elif extra is False:
                raise errors.ValidationError(_path(at, key), "is not a known field", ", ".join(sorted(props)))
            elif isinstance(extra, dict):
                _check(extra, item, _path(at, key))
