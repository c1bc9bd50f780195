"""The JSON Schemas of the /v1/schedules bodies (part of ``schema.SCHEMAS``)."""

from __future__ import annotations

from typing import Any

S = dict[str, Any]
_TIME = {"type": "string", "format": "date-time", "maxLength": 64}
_COMMON: S = {
    "expression": {
        "type": "string",
        "minLength": 1,
        "maxLength": 256,
        "description": "cron(...), rate(...) or at(...)",
    },
    "targets": {
        "type": "array",
        "minItems": 1,
        "maxItems": 20,
        "items": {"$ref": "#/components/schemas/Submission"},
    },
    "timezone": {"type": "string", "maxLength": 64, "description": "IANA zone, e.g. Europe/Paris"},
    "start_at": {"anyOf": [_TIME, {"type": "null"}]},
    "end_at": {"anyOf": [_TIME, {"type": "null"}]},
    "window_minutes": {"type": "number", "minimum": 0, "maximum": 1440},
    "overlap": {"type": "string", "enum": ["ALLOW", "SKIP", "REPLACE"]},
    "catch_up": {"type": "string", "enum": ["SKIP", "ONCE", "ALL"]},
    "deadline_seconds": {
        "anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 31_622_400}, {"type": "null"}]
    },
    "delete_after": {"type": "boolean"},
    "description": {"type": "string", "maxLength": 2000},
    "tags": {"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 128}},
}
SCHEDULE_SCHEMAS: dict[str, S] = {
    "ScheduleIn": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "expression", "targets"],
        "properties": {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": 128,
                "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$",
            },
            **_COMMON,
            "enabled": {"type": "boolean", "description": "false: created paused"},
        },
    },
    "ScheduleUpdate": {"type": "object", "additionalProperties": False, "properties": dict(_COMMON)},
    "Schedule": {
        "type": "object",
        "required": ["name", "expression", "timezone", "state"],
        "properties": {
            "name": {"type": "string"},
            "expression": {"type": "string"},
            "timezone": {"type": "string"},
            "state": {"type": "string", "enum": ["ACTIVE", "PAUSED", "FINISHED"]},
            "targets": {"type": "array", "items": {"type": "object"}},
            "next_due_at": {"anyOf": [_TIME, {"type": "null"}]},
            "next_fires": {"type": "array", "items": {"type": "object"}},
            "changed": {"type": "boolean"},
        },
    },
    "ScheduleList": {
        "type": "object",
        "required": ["schedules"],
        "properties": {
            "schedules": {"type": "array", "items": {"$ref": "#/components/schemas/Schedule"}},
            "next_after_name": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    },
    "ScheduleHistory": {
        "type": "object",
        "required": ["history"],
        "properties": {"history": {"type": "array", "items": {"type": "object"}}},
    },
    "ScheduleNext": {
        "type": "object",
        "required": ["fires"],
        "properties": {"fires": {"type": "array", "items": {"type": "object"}}},
    },
}
