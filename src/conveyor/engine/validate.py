"""Validation of user input: every error names the field, the value and what is allowed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from conveyor import errors
from conveyor.model import (
    Backoff,
    DefinitionSpec,
    RetryAction,
    RetryRule,
    RetryStrategy,
)
from conveyor.templates import template_fields
from conveyor.values import shown, text

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
FUNCTION_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
MAX_ARRAY = 10_000
MIN_ARRAY = 2
MAX_ATTEMPTS = 10
PRIORITY_RANGE = (-1_000_000, 1_000_000)
MAX_TIMEOUT_SECONDS = 30 * 86_400  # a job's timeout
MAX_DELAY_SECONDS = 366 * 86_400  # a submission's delay, a unique key's hold after success
MAX_VCPUS = 1024
# the times a submission or a schedule may name: every later step (a backoff, a lease, the next
# fire of a schedule) stays within what Python's datetime and both databases hold
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
TIME_RANGE = "a time from 1900-01-01 to 9000-01-01 UTC, with its offset, e.g. 2026-05-01T12:00:00+00:00"


def moment(field: str, value: datetime) -> datetime:
    """``value``, an aware time within EARLIEST..LATEST (a time near year 1 or 9999 with a
    far offset cannot even be turned into UTC), as given."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise errors.ValidationError(field, "has no time zone", TIME_RANGE)
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise errors.ValidationError(field, f"{value.isoformat()} is out of range", TIME_RANGE)
    return value


def name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise errors.ValidationError(
            field,
            f"{shown(value)} is not a valid name",
            "1-128 characters: letters, digits, _ . -, starting with a letter or digit",
        )
    return value


def integer(field: str, value: Any, low: int, high: int) -> int:
    """``value`` if it is an int (not a bool) in ``low..high``. A string is refused, not
    converted: the SDK on the database must take what ``POST /v1/...`` takes (its schema
    refuses "5" where a number goes); the CLI converts its flags before they come here."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.ValidationError(field, f"{shown(value)} is not a whole number", f"{low}..{high}")
    if not low <= value <= high:
        raise errors.ValidationError(field, f"{shown(value)} is out of range", f"{low}..{high}")
    return int(value)


def number(field: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    # float(True) is 1.0 (a flag where a number goes) and float("30") is 30.0: both refused,
    # as the HTTP schema refuses them
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.ValidationError(field, f"{shown(value)} is not a number", f"{low:g}..{high:g}")
    try:
        out = float(value)
    except OverflowError:  # an int beyond any float
        out = float("inf")
    if out != out or out > high or out < low or (low_open and out <= low):
        allowed = f"more than {low:g}, up to {high:g}" if low_open else f"{low:g}..{high:g}"
        raise errors.ValidationError(field, f"{shown(value)} is out of range", allowed)
    return out


def boolean(field: str, value: Any) -> bool:
    """``value`` if it is True or False: ``bool("false")`` is True, and "no" stored as text
    read back as enabled."""
    if type(value) is not bool:
        raise errors.ValidationError(field, f"{shown(value)} is not true or false", "true, false")
    return value


def parameters(field: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise errors.ValidationError(field, "must be an object of name -> string", '{"name": "value"}')
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not PARAM_RE.match(k):
            raise errors.ValidationError(
                f"{field}.{k}",
                "is not a valid parameter name",
                "letters, digits and _, not starting with a digit",
            )
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise errors.ValidationError(
                f"{field}.{k}", f"{shown(v)} is not a string or number", "strings (numbers are converted)"
            )
        out[k] = str(v)
    text(field, out)
    return out


def environment(field: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise errors.ValidationError(field, "must be an object of NAME -> string", '{"NAME": "value"}')
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k):
            raise errors.ValidationError(
                f"{field}.{k}", "is not a valid environment variable name", "letters, digits, _"
            )
        if k.startswith("CONVEYOR_"):
            raise errors.ValidationError(
                f"{field}.{k}", "CONVEYOR_* variables are set by the worker", "other names"
            )
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise errors.ValidationError(
                f"{field}.{k}", f"{shown(v)} is not a string or number", "strings (numbers are converted)"
            )
        out[k] = str(v)
    text(field, out)
    return out


def retry_strategy(field: str, value: Any, default: RetryStrategy | None = None) -> RetryStrategy:
    base = default or RetryStrategy()
    if value is None:
        return base
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"attempts": value}
    if not isinstance(value, Mapping):
        raise errors.ValidationError(field, "must be an object", '{"attempts": 3, "evaluate_on_exit": [...]}')
    known = {"attempts", "evaluate_on_exit", "backoff", "delay_seconds", "max_delay_seconds", "jitter"}
    for k in value:
        if k not in known:
            raise errors.ValidationError(
                f"{field}.{k}", "is not a known retry option", ", ".join(sorted(known))
            )
    rules = []
    for i, rule in enumerate(value.get("evaluate_on_exit") or []):
        f = f"{field}.evaluate_on_exit[{i}]"
        if not isinstance(rule, Mapping):
            raise errors.ValidationError(f, "must be an object", '{"action": "RETRY", "on_exit_code": "1*"}')
        action = str(rule.get("action", "")).upper()
        if action not in ("RETRY", "EXIT"):
            raise errors.ValidationError(
                f"{f}.action", f"{rule.get('action')!r} is not an action", "RETRY, EXIT"
            )
        for key in rule:
            if key not in ("action", "on_exit_code", "on_reason"):
                raise errors.ValidationError(
                    f"{f}.{key}", "is not a known field", "action, on_exit_code, on_reason"
                )
        code, reason = rule.get("on_exit_code"), rule.get("on_reason")
        if reason is not None and not isinstance(reason, str):
            raise errors.ValidationError(
                f"{f}.on_reason", f"{shown(reason)} is not a glob", 'e.g. "timed out*"'
            )
        if code is None and reason is None:
            raise errors.ValidationError(
                f, "needs on_exit_code or on_reason (globs)", 'e.g. on_exit_code: "137"'
            )
        if code is not None and not re.match(r"^[0-9*?\[\]-]{1,512}$", str(code)):
            raise errors.ValidationError(
                f"{f}.on_exit_code", f"{shown(code)} is not an exit code glob", "digits and * ? [ ]"
            )
        rules.append(
            RetryRule(
                RetryAction(action),
                None if code is None else str(code),
                None if reason is None else str(reason),
            )
        )
    backoff = str(value.get("backoff", base.backoff.value)).lower()
    if backoff not in ("fixed", "exponential"):
        raise errors.ValidationError(
            f"{field}.backoff", f"{shown(backoff)} is not a backoff", "fixed, exponential"
        )
    return RetryStrategy(
        attempts=integer(f"{field}.attempts", value.get("attempts", base.attempts), 1, MAX_ATTEMPTS),
        evaluate_on_exit=tuple(rules) if "evaluate_on_exit" in value else base.evaluate_on_exit,
        backoff=Backoff(backoff),
        delay_seconds=number(
            f"{field}.delay_seconds", value.get("delay_seconds", base.delay_seconds), 0, 86_400
        ),
        max_delay_seconds=number(
            f"{field}.max_delay_seconds",
            value.get("max_delay_seconds", base.max_delay_seconds),
            0,
            7 * 86_400,
        ),
        jitter=boolean(f"{field}.jitter", value.get("jitter", base.jitter)),
    )


def definition_spec(value: Mapping[str, Any], field: str = "definition") -> DefinitionSpec:
    """Build a spec from plain data (CLI flags, JSON bodies); errors name ``field.<key>``,
    or ``<key>`` alone when ``field`` is empty (a single submission's own fields)."""
    pre = f"{field}." if field else ""
    known = {
        "command", "function", "parameters", "vcpus", "memory_mb", "timeout_seconds", "retry",
        "environment", "follow_up_queues", "working_dir",
    }  # fmt: skip
    for k in value:
        if k not in known:
            raise errors.ValidationError(f"{pre}{k}", "is not a known field", ", ".join(sorted(known)))
    command, function = value.get("command"), value.get("function")
    if (command is None) == (function is None):
        raise errors.ValidationError(
            field or "command",
            "needs exactly one of command or function",
            "command: [argv...] or function: module:callable",
        )
    argv: tuple[str, ...] | None = None
    if command is not None:
        if (
            not isinstance(command, list | tuple)
            or not command
            or not all(isinstance(a, str) for a in command)
        ):
            raise errors.ValidationError(
                f"{pre}command",
                "must be a non-empty list of strings (argv)",
                '["python", "job.py", "{input}"]',
            )
        argv = tuple(command)
        if not argv[0].strip():
            raise errors.ValidationError(
                f"{pre}command", "names no program (its first item is empty)", '["python", "job.py"]'
            )
        text(f"{pre}command", argv)
        template_fields(argv)
    if function is not None and (not isinstance(function, str) or not FUNCTION_RE.match(function)):
        raise errors.ValidationError(
            f"{pre}function", f"{shown(function)} is not a callable path", "module.path:callable"
        )
    timeout = value.get("timeout_seconds")
    queues = value.get("follow_up_queues") or ()
    if not isinstance(queues, list | tuple):
        raise errors.ValidationError(
            f"{pre}follow_up_queues", "must be a list of queue names or globs", '["reports", "sync-*"]'
        )
    text(f"{pre}follow_up_queues", queues)
    working_dir = value.get("working_dir")
    if working_dir is not None:
        if not isinstance(working_dir, str) or not working_dir:
            raise errors.ValidationError(
                f"{pre}working_dir", f"{shown(working_dir)} is not a directory path", "a non-empty path"
            )
        text(f"{pre}working_dir", working_dir)
        if not working_dir.startswith("/"):  # relative to what? each worker's own directory
            raise errors.ValidationError(
                f"{pre}working_dir",
                f"{shown(working_dir)} is a relative path",
                "an absolute path, e.g. /srv/app",
            )
    return DefinitionSpec(
        command=argv,
        function=function,
        parameters=parameters(f"{pre}parameters", value.get("parameters")),
        vcpus=number(f"{pre}vcpus", value.get("vcpus", 1), 0, MAX_VCPUS, low_open=True),
        memory_mb=integer(f"{pre}memory_mb", value.get("memory_mb", 0), 0, 16_777_216),
        timeout_seconds=None
        if timeout is None
        else number(f"{pre}timeout_seconds", timeout, 0, MAX_TIMEOUT_SECONDS, low_open=True),
        retry=retry_strategy(f"{pre}retry", value.get("retry")),
        environment=environment(f"{pre}environment", value.get("environment")),
        follow_up_queues=tuple(str(q) for q in queues),
        working_dir=working_dir,
    )
