"""The JSON Schemas of request and response bodies, and the small checker that enforces them.

The same schemas are published in ``/openapi.json``: what the document says is what the
server checks. The checker knows the subset we use (type, properties, required,
additionalProperties, items, enum, minimum/maximum, minLength/maxLength, minItems/maxItems,
anyOf, $ref, and ``x-case-insensitive``: an enum whose choices are taken in any case, as the
engine takes them, ``validate.canonical``); each error names the field path (``jobs[3].retry.attempts``), the value and
what is allowed, worded from the schema alone with the engine's words (``validate.not_a``,
``validate.span``, ...): "'echo' is not a list (allowed: a non-empty list of strings)",
"2000 is above 1024 (allowed: a number more than 0, up to 1024)", "is 513 characters
(allowed: 1-512 characters)". A submission refused here reads as the SDK on the database
(``wire.request_from_dict`` and the engine) words it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from conveyor import errors, values
from conveyor.api.schedule_schemas import SCHEDULE_SCHEMAS
from conveyor.engine import validate
from conveyor.engine.catalog import MAX_REVISION
from conveyor.engine.jobs import MAX_BULK_IDS, MAX_FILTER_STATES, MAX_KEY, MAX_NAME, MAX_REASON
from conveyor.engine.validate import (
    BACKOFFS,
    CASE_INSENSITIVE,
    DEPENDENCY_TYPES,
    JOB_STATES,
    MAX_ARGV,
    MAX_ATTEMPTS,
    MAX_DELAY_SECONDS,
    MAX_ENV_MEMORY_MB,
    MAX_ENV_VCPUS,
    MAX_FOLLOW_UP_QUEUES,
    MAX_MEMBERS,
    MAX_MEMORY_MB,
    MAX_QUEUE_ENVIRONMENTS,
    MAX_RETRY_DELAY,
    MAX_RETRY_MAX_DELAY,
    MAX_RETRY_RULES,
    MAX_TIMEOUT_SECONDS,
    MAX_VCPUS,
    PRIORITY_RANGE,
    QUEUE_PRIORITY,
    RETRY_ACTIONS,
)

S = dict[str, Any]


def ref(name: str) -> S:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: S) -> S:
    return {"anyOf": [schema, {"type": "null"}]}


def choices(names: tuple[str, ...]) -> S:
    """One of ``names``, in any case (``validate.canonical``): stored and shown as listed."""
    return {
        "type": "string",
        "enum": list(names),
        CASE_INSENSITIVE: True,
        "description": "in any case; stored as listed",
    }


# the engine's bounds, so that the schema (and /openapi.json) says what is enforced
_PRIORITY = {"type": "integer", "minimum": PRIORITY_RANGE[0], "maximum": PRIORITY_RANGE[1]}
_TIMEOUT = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_SECONDS}
_DELAY = {"type": "number", "minimum": 0, "maximum": MAX_DELAY_SECONDS}
_VCPUS = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_VCPUS}
_REVISION = {"type": "integer", "minimum": 1, "maximum": MAX_REVISION}
_MEMORY = {"type": "integer", "minimum": 0, "maximum": MAX_MEMORY_MB}
_ATTEMPTS = {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS}
_ARGV = {"type": "array", "minItems": 1, "maxItems": MAX_ARGV, "items": {"type": "string"}}
STR = {"type": "string", "maxLength": 512}
NAME = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"}
INT = {"type": "integer", "minimum": -(2**62), "maximum": 2**62}
ID = {"type": "integer", "minimum": 1, "maximum": 2**62}
TIME = {"type": "string", "format": "date-time", "maxLength": 64}
STR_MAP = {
    "type": "object",
    "maxProperties": MAX_MEMBERS,
    "additionalProperties": {"type": ["string", "number"]},
}
STATE = {
    "type": "string",
    "enum": ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"],
}

RETRY_RULE: S = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action"],
    "properties": {
        "action": choices(RETRY_ACTIONS),
        "on_exit_code": nullable({"type": "string", "maxLength": 512}),
        "on_reason": nullable({"type": "string", "maxLength": 512}),
    },
}
RETRY: S = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "attempts": _ATTEMPTS,
        "evaluate_on_exit": {"type": "array", "maxItems": MAX_RETRY_RULES, "items": RETRY_RULE},
        "backoff": choices(BACKOFFS),
        "delay_seconds": {"type": "number", "minimum": 0, "maximum": MAX_RETRY_DELAY},
        "max_delay_seconds": {"type": "number", "minimum": 0, "maximum": MAX_RETRY_MAX_DELAY},
        "jitter": {"type": "boolean"},
    },
}
SPEC: S = {
    "type": "object",
    "additionalProperties": False,
    "description": "What to run: exactly one of command (argv, {param} templates) or function (module:callable).",
    "properties": {
        "command": nullable(_ARGV),
        "function": nullable({"type": "string", "maxLength": 512}),
        "parameters": nullable(STR_MAP),
        "vcpus": _VCPUS,
        "memory_mb": _MEMORY,
        "timeout_seconds": nullable(_TIMEOUT),
        "retry": nullable({"anyOf": [_ATTEMPTS, RETRY]}),
        "environment": nullable(STR_MAP),
        "follow_up_queues": nullable(
            {"type": "array", "maxItems": MAX_FOLLOW_UP_QUEUES, "items": {"type": "string", "maxLength": 128}}
        ),
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
            "properties": {"job_id": ID, "type": choices(DEPENDENCY_TYPES)},
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
        "definition_revision": nullable(_REVISION),
        "command": nullable(_ARGV),
        "function": nullable(STR),
        "parameters": nullable(STR_MAP),
        "payload": {"description": "any JSON value; function jobs: {args: [...], kwargs: {...}}"},
        "priority": _PRIORITY,
        "run_at": nullable(TIME),
        "delay_seconds": nullable(_DELAY),
        "depends_on": {"type": "array", "maxItems": 1000, "items": DEPENDENCY},
        "array_size": nullable({"type": "integer", "minimum": 2, "maximum": 10_000}),
        "array_sequential": {"type": "boolean"},
        "unique_key": nullable({"type": "string", "minLength": 1, "maxLength": MAX_KEY}),
        "unique_ttl_seconds": nullable(_DELAY),
        "idempotency_key": nullable({"type": "string", "minLength": 1, "maxLength": MAX_KEY}),
        "timeout_seconds": nullable(_TIMEOUT),
        "retry": nullable({"anyOf": [_ATTEMPTS, RETRY]}),
        "vcpus": nullable(_VCPUS),
        "memory_mb": nullable(_MEMORY),
        "environment": nullable(STR_MAP),
        "working_dir": nullable(
            {
                "type": "string",
                "maxLength": 4096,
                "description": "an absolute path (default: a fresh directory)",
            }
        ),
        "tags": {"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 128}},
        "name": nullable({"type": "string", "minLength": 1, "maxLength": MAX_NAME}),
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
    "properties": {"reason": {"type": "string", "maxLength": MAX_REASON}},
}
# a bulk action's selection: what the engine takes on every path (wire.selection_from_dict,
# JobService.act_on_many), in its words
_SELECTION: dict[str, S] = {
    "ids": {
        "type": "array",
        "maxItems": MAX_BULK_IDS,
        "items": ID,
        "description": "these jobs (no filter then); one that names no job is skipped as unknown",
    },
    "states": {
        "type": "array",
        "maxItems": MAX_FILTER_STATES,
        "items": choices(JOB_STATES),
        "description": "filter: jobs in these states (each in any case, one per item)",
    },
    "queue": {**NAME, "description": "filter: jobs of this queue"},
    "tag": {"type": "string", "minLength": 1, "maxLength": 128, "description": "filter: jobs with this tag"},
    "all": {"type": "boolean", "description": "no filter: every job in the action's states"},
    "dry_run": {"type": "boolean", "description": "answer what would be done now, change nothing"},
}
BULK_STOP: S = {
    "type": "object",
    "additionalProperties": False,
    "properties": {**_SELECTION, "reason": {"type": "string", "maxLength": MAX_REASON}},
}
BULK_RETRY: S = {"type": "object", "additionalProperties": False, "properties": _SELECTION}
BULK_RESULT: S = {
    "type": "object",
    "required": ["action", "dry_run", "matched", "changed", "unchanged", "skipped"],
    "properties": {
        "action": {"type": "string", "enum": ["cancel", "terminate", "retry"]},
        "dry_run": {"type": "boolean"},
        "matched": {
            "type": "integer",
            "description": "jobs selected that exist",
        },
        "changed": {"type": "array", "items": ID, "description": "changed (in a dry run: would be)"},
        "unchanged": {
            "type": "array",
            "items": ID,
            "description": "nothing to do (finished meanwhile, or already asked to stop)",
        },
        "skipped": {
            "type": "array",
            "description": "left alone: unknown, or in a state the action does not take",
            "items": {
                "type": "object",
                "required": ["id", "reason"],
                "properties": {"id": {"type": "integer"}, "reason": {"type": "string"}},
            },
        },
    },
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
        "priority": {"type": "integer", "minimum": QUEUE_PRIORITY[0], "maximum": QUEUE_PRIORITY[1]},
        "enabled": {"type": "boolean"},
        "environments": {"type": "array", "minItems": 1, "maxItems": MAX_QUEUE_ENVIRONMENTS, "items": NAME},
    },
}
ENVIRONMENT_IN: S = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "max_vcpus": nullable({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_ENV_VCPUS}),
        "max_memory_mb": nullable({"type": "integer", "minimum": 1, "maximum": MAX_ENV_MEMORY_MB}),
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
EVENT: S = {
    "type": "object",
    "required": ["id", "at", "type", "data"],
    "properties": {
        "id": {"type": "integer"},
        "at": TIME,
        "type": {"type": "string", "description": "job.state, job.terminate_requested"},
        "data": {
            "type": "object",
            "description": "job.state: from (absent when the job was created), to, reason;"
            " from a worker also attempt, worker, exit_code",
        },
    },
}
EVENT_PAGE: S = {
    "type": "object",
    "required": ["events", "next_after_id"],
    "properties": {
        "events": {"type": "array", "items": ref("Event")},
        "next_after_id": nullable({"type": "integer", "description": "pass as after_id for the next page"}),
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
    "BulkStop": BULK_STOP,
    "BulkRetry": BULK_RETRY,
    "BulkResult": BULK_RESULT,
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
    "Event": EVENT,
    "EventPage": EVENT_PAGE,
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


def check(name: str, value: Any, raw: bytes | None = None) -> None:
    """Raise ``errors.ValidationError`` naming the field when ``value`` does not fit schema ``name``.

    ``raw``: the JSON text ``value`` was parsed from. In UTF-8 JSON a NUL can only get into the
    parsed value as a ``\\u0000`` escape (a raw control character in a string is refused by
    the parser), so when the text has neither that escape nor a NUL byte (UTF-16 and UTF-32
    texts always have some) the walk looking for NULs is skipped."""
    checker = _COMPILED.get(name)
    if checker is None:
        checker = _COMPILED[name] = _compile(SCHEMAS[name])
    checker(value, "")
    if raw is None or b"\\u0000" in raw or b"\x00" in raw or _SURROGATE_ESCAPE.search(raw):
        values.text("", value)


# a \uD800-\uDFFF escape: two of them make one character, one alone no character at all
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _path(base: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


Checker = Callable[[Any, str], None]
_COMPILED: dict[str, Checker] = {}


class _Mismatch(errors.ValidationError):
    """A value of another JSON type than the schema's. ``anyOf`` words those of all its
    options as one: "True is not a whole number or an object"."""

    def __init__(self, field: str, value: Any, kinds: list[str], allowed: list[str]) -> None:
        # null is how a member is left out: named only when nothing else would be
        self.value, self.kinds, self.alloweds = value, _unique(kinds), _unique(allowed)
        super().__init__(field, validate.not_a(value, " or ".join(self.kinds)), ", or ".join(self.alloweds))


def _unique(words: list[str]) -> list[str]:
    out = [w for i, w in enumerate(words) if w not in words[:i]]
    return [w for w in out if w != "null"] or out


def _target(s: S) -> S:
    """The schema ``s`` refers to (``$ref``), or ``s``."""
    while "$ref" in s:
        s = SCHEMAS[s["$ref"].rsplit("/", 1)[1]]
    return s


def describe(s: S) -> str:
    """What schema ``s`` allows, in the engine's words: "a whole number from 1 to 10", "a
    string of 1-512 characters", "a non-empty list of strings", "fixed, exponential"."""
    s = _target(s)
    if "anyOf" in s:
        return ", or ".join(_unique([describe(option) for option in s["anyOf"]]))
    if "enum" in s:
        return ", ".join(map(str, s["enum"]))
    kinds = s.get("type")
    if kinds is None:
        return "any JSON value"
    names = kinds if isinstance(kinds, list) else [kinds]
    return " or ".join(_unique([_describe_kind(kind, s) for kind in names]))


def _describe_kind(kind: str, s: S) -> str:
    if kind in ("integer", "number"):
        above = s.get("exclusiveMinimum")
        return validate.span(
            s.get("minimum") if above is None else above,
            s.get("maximum"),
            whole=kind == "integer",
            low_open=above is not None,
        )
    if kind == "string":
        if s.get("format") == "date-time":
            return validate.ISO_TIME
        return validate.string_kind(s.get("minLength"), s.get("maxLength"))
    if kind == "boolean":
        return "true, false"
    if kind == "array":
        fewest = s.get("minItems") or 0
        what = "a non-empty list" if fewest == 1 else f"a list of at least {fewest}" if fewest else "a list"
        if "items" not in s:
            return what + (" items" if fewest > 1 else "")
        return f"{what} of {_plural(s['items'])}" if fewest <= 1 else f"{what} {_plural(s['items'])}"
    if kind == "object":
        shape = _shape(s)
        if shape is not None:
            return f"a {shape} object"
        extra = s.get("additionalProperties")
        return (
            f"an object of {_plural(extra)}"
            if isinstance(extra, dict) and not s.get("properties")
            else "an object"
        )
    return validate.KINDS[kind][0]


def _shape(s: S) -> str | None:
    """``{job_id, type}``: the members of a closed object small enough to list."""
    props = s.get("properties") or {}
    if s.get("additionalProperties") is False and 0 < len(props) <= 3:
        return "{" + ", ".join(props) + "}"
    return None


def _plural(s: S) -> str:
    """What a list of ``s`` holds: "strings", "whole numbers or {job_id, type} objects"."""
    s = _target(s)
    if "anyOf" in s:
        return " or ".join(_unique([_plural(option) for option in s["anyOf"]]))
    kinds = s.get("type")
    if kinds is None:
        return "JSON values"
    names = kinds if isinstance(kinds, list) else [kinds]
    words = []
    for kind in names:
        shape = _shape(s) if kind == "object" else None
        words.append(f"{shape} objects" if shape else validate.KINDS[kind][1])
    return " or ".join(_unique(words))


def _compile(s: S) -> Checker:
    """A schema as one function: only the rules the schema has are looked at, once per value.

    Rules run in a fixed order (type, enum, number bounds, string, array, object), so an
    invalid value is always reported by the same rule.
    """
    if "$ref" in s:
        name = s["$ref"].rsplit("/", 1)[1]

        def by_ref(value: Any, at: str) -> None:  # resolved at the first call: schemas may recurse
            checker = _COMPILED.get(name)
            if checker is None:
                checker = _COMPILED[name] = _compile(SCHEMAS[name])
            checker(value, at)

        return by_ref
    if "anyOf" in s:
        options = [_compile(option) for option in s["anyOf"]]

        def any_of(value: Any, at: str) -> None:
            failures = []
            for option in options:
                try:
                    option(value, at)
                    return
                except errors.ValidationError as exc:
                    failures.append(exc)
            where = at or "body"
            deeper = [e for e in failures if not (isinstance(e, _Mismatch) and e.field == where)]
            if not deeper:  # of no option's type: one message naming them all
                mismatches = [e for e in failures if isinstance(e, _Mismatch)]
                raise _Mismatch(
                    where,
                    value,
                    [k for e in mismatches for k in e.kinds],
                    [a for e in mismatches for a in e.alloweds],
                )
            # the most specific failure: of an option whose type matched
            raise max(deeper, key=lambda e: len(e.field))

        return any_of
    rules: list[Checker] = []
    kinds = s.get("type")
    if kinds is not None:
        names = kinds if isinstance(kinds, list) else [kinds]
        tests = [functools.partial(_is, k) for k in names]
        nouns = [validate.KINDS[k][0] for k in names]
        allowed = describe(s)

        def typed(value: Any, at: str) -> None:
            for test in tests:
                if test(value):
                    return
            raise _Mismatch(at or "body", value, nouns, [allowed])

        rules.append(typed)
    if "enum" in s:
        allowed_values, listed = s["enum"], ", ".join(map(str, s["enum"]))
        any_case = bool(s.get(CASE_INSENSITIVE))

        def enum(value: Any, at: str) -> None:
            if value not in allowed_values and not (any_case and validate.canonical(value, allowed_values)):
                raise errors.ValidationError(at or "body", validate.not_a_choice(value), listed)

        rules.append(enum)
    # a rule is left out only where it could never fire: the type rule refuses its values
    typed_as: set[str] | None = None if kinds is None else set(kinds if isinstance(kinds, list) else [kinds])

    def may_be(kind: str) -> bool:
        return typed_as is None or kind in typed_as

    if may_be("number") or any(k in s for k in ("minimum", "exclusiveMinimum", "maximum")):
        rules += _number_rules(s)
    if may_be("string") or "maxLength" in s or "minLength" in s:
        rules += _string_rules(s)
    if any(k in s for k in ("minItems", "maxItems", "items")):
        rules += _array_rules(s)
    if may_be("object") or any(
        k in s for k in ("maxProperties", "properties", "required", "additionalProperties")
    ):
        rules += _object_rules(s)
    if not rules:
        return _anything
    if len(rules) == 1:
        return rules[0]

    def all_of(value: Any, at: str) -> None:
        for rule in rules:
            rule(value, at)

    return all_of


def _anything(value: Any, at: str) -> None:
    return None


def _number_rules(s: S) -> list[Checker]:
    above = s.get("exclusiveMinimum")
    low, high = s.get("minimum") if above is None else above, s.get("maximum")
    whole = s.get("type") == "integer"
    allowed = validate.span(low, high, whole=whole, low_open=above is not None)

    def number(value: Any, at: str) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return
        why = validate.beyond(value, low, high, low_open=above is not None)
        if why is not None:
            raise errors.ValidationError(at or "body", why, allowed)

    return [number]


def _string_rules(s: S) -> list[Checker]:
    longest, shortest = s.get("maxLength"), s.get("minLength")
    allowed = validate.characters(shortest, longest)

    def string(value: Any, at: str) -> None:
        if not isinstance(value, str):
            return
        if (longest is not None and len(value) > longest) or (shortest is not None and len(value) < shortest):
            raise errors.ValidationError(at or "body", validate.length(value), allowed)
        problem = values.not_text(value)
        if problem is not None:
            raise errors.ValidationError(at or "body", f"contains {problem}", values.NOT_TEXT)

    return [string]


def _array_rules(s: S) -> list[Checker]:
    fewest, most = s.get("minItems"), s.get("maxItems")
    item_check = _compile(s["items"]) if "items" in s else None
    allowed = describe(s) if "type" in s else f"at least {fewest} items"

    def array(value: Any, at: str) -> None:
        if not isinstance(value, list):
            return
        if fewest is not None and len(value) < fewest:
            raise errors.ValidationError(at or "body", validate.count(len(value)), allowed)
        if most is not None and len(value) > most:
            raise errors.ValidationError(at or "body", validate.count(len(value)), f"at most {most:,} items")
        if item_check is not None:
            for i, item in enumerate(value):
                item_check(item, f"{at}[{i}]")

    return [array]


def _object_rules(s: S) -> list[Checker]:
    most = s.get("maxProperties")
    props = {key: _compile(sub) for key, sub in s.get("properties", {}).items()}
    required = {
        key: describe(s["properties"][key]) if key in props else None for key in s.get("required", ())
    }
    extra = s.get("additionalProperties", True)
    extra_check = _compile(extra) if isinstance(extra, dict) else None
    known = ", ".join(sorted(props))

    def obj(value: Any, at: str) -> None:
        if not isinstance(value, dict):
            return
        if most is not None and len(value) > most:
            raise errors.ValidationError(
                at or "body", f"has {len(value):,} members", f"at most {most:,} members"
            )
        for key, allowed in required.items():
            if key not in value:
                raise errors.ValidationError(_path(at, key), "is required", allowed)
        for key, item in value.items():
            problem = values.not_text(key)
            if problem is not None:
                raise errors.ValidationError(
                    at or "body", f"has a member name that contains {problem}", values.NOT_TEXT
                )
            prop = props.get(key)
            if prop is not None:
                prop(item, f"{at}.{key}" if at else key)
            elif extra is False:
                raise errors.ValidationError(_path(at, key), "is not a known field", known)
            elif extra_check is not None:
                extra_check(item, _path(at, key))

    return [obj]
