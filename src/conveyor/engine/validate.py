"""Validation of user input: every error names the field, the value and what is allowed.

The words of a refusal live here too (``not_a``, ``beyond``, ``length``, ``span``, ...): the
engine's checks, the JSON checks of ``wire.request_from_dict`` and the HTTP schema checker
(``api/schema.py``) all word their errors with them, so that one bad value reads the same
over HTTP, from the SDK on the database and in the CLI."""

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
MAX_MEMORY_MB = 16_777_216
MAX_RETRY_DELAY = 86_400  # a retry strategy's delay_seconds
MAX_RETRY_MAX_DELAY = 7 * 86_400  # and its max_delay_seconds
MAX_ARGV = 1000  # items of a command in a JSON body (the HTTP schema's limit; wire checks it too)
# the times a submission or a schedule may name: every later step (a backoff, a lease, the next
# fire of a schedule) stays within what Python's datetime and both databases hold
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
TIME_RANGE = "a time from 1900-01-01 to 9000-01-01 UTC, with its offset, e.g. 2026-05-01T12:00:00+00:00"
ISO_TIME = "an ISO-8601 time with its UTC offset, e.g. 2026-05-01T12:00:00+00:00"


# -- the words of a refusal --------------------------------------------------------------------
# "<value> is not <a kind>", "<value> is below <low>", "is <n> characters", "is empty", "has
# <n> items", each with what is allowed. A kind is what a JSON value is: its name in a
# message, and in the plural (a list of them).
KINDS = {
    "integer": ("a whole number", "whole numbers"),
    "number": ("a number", "numbers"),
    "string": ("a string", "strings"),
    "boolean": ("true or false", "true or false values"),
    "array": ("a list", "lists"),
    "object": ("an object", "objects"),
    "null": ("null", "nulls"),
}
ARGV = "a non-empty list of strings"  # what a command is (the schema's words for its array)
RULE = "a {action, on_exit_code, on_reason} object"  # one of a retry's evaluate_on_exit
RETRY_FORM = "an object"  # a retry strategy (more members than a message lists)
STRING_MAP = "an object of strings or numbers"  # parameters, environment
STRING_OR_NUMBER = "a string or a number"


def not_a(value: Any, kind: str) -> str:
    """``'abc' is not a whole number``: the value is of another JSON type than ``kind``."""
    return f"{shown(value)} is not {kind}"


def not_a_choice(value: Any) -> str:
    return f"{shown(value)} is not a valid choice"


def figure(x: float) -> str:
    """A bound in full: 2592000, not 2.592e+06; 0.5 as it is."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e18 else repr(x)


def span(low: float | None, high: float | None, *, whole: bool, low_open: bool = False) -> str:
    """What a number may be, in words: "a whole number from 1 to 10", "a number more than
    0, up to 1024"."""
    kind = "a whole number" if whole else "a number"
    if low is not None and low_open:
        return f"{kind} more than {figure(low)}" + (f", up to {figure(high)}" if high is not None else "")
    if low is not None and high is not None:
        return f"{kind} from {figure(low)} to {figure(high)}"
    if low is not None:
        return f"{kind} from {figure(low)}"
    return f"{kind} up to {figure(high)}" if high is not None else kind


def beyond(value: Any, low: float | None, high: float | None, *, low_open: bool = False) -> str | None:
    """Why the number ``value`` is outside its bounds ("5 is above 3"), or None."""
    if value != value:
        return f"{shown(value)} is not a number"
    if low is not None and low_open and value <= low:
        return f"{shown(value)} must be more than {figure(low)}"
    if low is not None and value < low:
        return f"{shown(value)} is below {figure(low)}"
    if high is not None and value > high:
        return f"{shown(value)} is above {figure(high)}"
    return None


def length(value: str) -> str:
    """``is 513 characters``: the text is not repeated back, its length says what is wrong."""
    return f"is {len(value):,} characters"


def characters(low: int | None, high: int | None) -> str:
    """The lengths a string may have: "1-512 characters", "at most 512 characters"."""
    if high is None:
        return f"at least {low} characters" if low else "any length"
    return f"{low}-{high} characters" if low else f"at most {high} characters"


def string_kind(low: int | None = None, high: int | None = None) -> str:
    """What a string may be: "a string of 1-512 characters"."""
    return "a string" if low is None and high is None else f"a string of {characters(low, high)}"


def count(n: int) -> str:
    """``is empty``, ``has 1,001 items``: the size of a refused list."""
    return "is empty" if n == 0 else f"has {n:,} item{'' if n == 1 else 's'}"


def string(field: str, value: Any, low: int | None = None, high: int | None = None) -> str:
    """``value`` if it is a string of ``low..high`` characters."""
    if not isinstance(value, str):
        raise errors.ValidationError(field, not_a(value, "a string"), string_kind(low, high))
    if (low is not None and len(value) < low) or (high is not None and len(value) > high):
        raise errors.ValidationError(field, length(value), characters(low, high))
    return value


def argv(field: str, value: Any, most: int | None = None) -> tuple[str, ...]:
    """A command: a non-empty list of strings (a tuple too), at most ``most`` of them (the
    JSON forms' limit; the CLI's own argv has none)."""
    if not isinstance(value, list | tuple):
        raise errors.ValidationError(field, not_a(value, "a list"), ARGV)
    if not value:
        raise errors.ValidationError(field, count(0), ARGV)
    if most is not None and len(value) > most:
        raise errors.ValidationError(field, count(len(value)), f"at most {most:,} items")
    for i, arg in enumerate(value):
        if not isinstance(arg, str):
            raise errors.ValidationError(f"{field}[{i}]", not_a(arg, "a string"), "a string")
    return tuple(value)


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
        raise errors.ValidationError(field, not_a(value, "a whole number"), span(low, high, whole=True))
    if not low <= value <= high:
        raise errors.ValidationError(field, str(beyond(value, low, high)), span(low, high, whole=True))
    return int(value)


def number(field: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    # float(True) is 1.0 (a flag where a number goes) and float("30") is 30.0: both refused,
    # as the HTTP schema refuses them
    allowed = span(low, high, whole=False, low_open=low_open)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.ValidationError(field, not_a(value, "a number"), allowed)
    try:
        out = float(value)
    except OverflowError:  # an int beyond any float
        out = float("inf")
    if out != out or out > high or out < low or (low_open and out <= low):
        raise errors.ValidationError(field, str(beyond(value, low, high, low_open=low_open)), allowed)
    return out


def boolean(field: str, value: Any) -> bool:
    """``value`` if it is True or False: ``bool("false")`` is True, and "no" stored as text
    read back as enabled."""
    if type(value) is not bool:
        raise errors.ValidationError(field, not_a(value, "true or false"), "true, false")
    return value


def parameters(field: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise errors.ValidationError(field, not_a(value, "an object"), STRING_MAP)
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not PARAM_RE.match(k):
            raise errors.ValidationError(
                f"{field}.{k}",
                "is not a valid parameter name",
                "letters, digits and _, not starting with a digit",
            )
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise errors.ValidationError(f"{field}.{k}", not_a(v, STRING_OR_NUMBER), STRING_OR_NUMBER)
        out[k] = str(v)
    text(field, out)
    return out


def environment(field: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise errors.ValidationError(field, not_a(value, "an object"), STRING_MAP)
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
            raise errors.ValidationError(f"{field}.{k}", not_a(v, STRING_OR_NUMBER), STRING_OR_NUMBER)
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
        # the words of a submission's retry (attempts, or a strategy), which a definition's takes too
        raise errors.ValidationError(
            field,
            not_a(value, "a whole number or an object"),
            f"{span(1, MAX_ATTEMPTS, whole=True)}, or {RETRY_FORM}",
        )
    known = {"attempts", "evaluate_on_exit", "backoff", "delay_seconds", "max_delay_seconds", "jitter"}
    for k in value:
        if k not in known:
            raise errors.ValidationError(f"{field}.{k}", "is not a known field", ", ".join(sorted(known)))
    rules = []
    given_rules = value.get("evaluate_on_exit")
    if given_rules is not None and not isinstance(given_rules, list | tuple):
        raise errors.ValidationError(
            f"{field}.evaluate_on_exit", not_a(given_rules, "a list"), f"a list of {RULE.removeprefix('a ')}s"
        )
    for i, rule in enumerate(given_rules or []):
        f = f"{field}.evaluate_on_exit[{i}]"
        if not isinstance(rule, Mapping):
            raise errors.ValidationError(f, not_a(rule, "an object"), RULE)
        if "action" not in rule:
            raise errors.ValidationError(f"{f}.action", "is required", "RETRY, EXIT")
        for key in rule:
            if key not in ("action", "on_exit_code", "on_reason"):
                raise errors.ValidationError(
                    f"{f}.{key}", "is not a known field", "action, on_exit_code, on_reason"
                )
        given = rule["action"]
        if not isinstance(given, str):
            raise errors.ValidationError(f"{f}.action", not_a(given, "a string"), "RETRY, EXIT")
        action = given.upper()
        if action not in ("RETRY", "EXIT"):
            raise errors.ValidationError(f"{f}.action", not_a_choice(given), "RETRY, EXIT")
        code, reason = rule.get("on_exit_code"), rule.get("on_reason")
        if reason is not None:
            string(f"{f}.on_reason", reason, None, 512)
        if isinstance(code, str):  # a number is taken as its digits
            string(f"{f}.on_exit_code", code, None, 512)
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
    given_backoff = value.get("backoff", base.backoff.value)
    if not isinstance(given_backoff, str):
        raise errors.ValidationError(
            f"{field}.backoff", not_a(given_backoff, "a string"), "fixed, exponential"
        )
    backoff = given_backoff.lower()
    if backoff not in ("fixed", "exponential"):
        raise errors.ValidationError(f"{field}.backoff", not_a_choice(given_backoff), "fixed, exponential")
    return RetryStrategy(
        attempts=integer(f"{field}.attempts", value.get("attempts", base.attempts), 1, MAX_ATTEMPTS),
        evaluate_on_exit=tuple(rules) if "evaluate_on_exit" in value else base.evaluate_on_exit,
        backoff=Backoff(backoff),
        delay_seconds=number(
            f"{field}.delay_seconds", value.get("delay_seconds", base.delay_seconds), 0, MAX_RETRY_DELAY
        ),
        max_delay_seconds=number(
            f"{field}.max_delay_seconds",
            value.get("max_delay_seconds", base.max_delay_seconds),
            0,
            MAX_RETRY_MAX_DELAY,
        ),
        jitter=boolean(f"{field}.jitter", value.get("jitter", base.jitter)),
    )


def directory(field: str, value: Any) -> str | None:
    """A job's working directory: None (a fresh one per attempt) or an absolute path."""
    if value is None:
        return None
    if not string(field, value, None, 4096):
        raise errors.ValidationError(field, f"{shown(value)} is not a directory path", "a non-empty path")
    text(field, value)
    if not value.startswith("/"):  # relative to what? each worker's own directory
        raise errors.ValidationError(
            field, f"{shown(value)} is a relative path", "an absolute path, e.g. /srv/app"
        )
    return str(value)


def definition_spec(value: Mapping[str, Any], field: str = "spec") -> DefinitionSpec:
    """Build a spec from plain data (CLI flags, JSON bodies); errors name ``field.<key>``
    (``spec.vcpus``, as the HTTP schema names the member of ``POST /v1/definitions``), or
    ``<key>`` alone when ``field`` is empty (a single submission's own fields)."""
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
    args: tuple[str, ...] | None = None
    if command is not None:
        args = argv(f"{pre}command", command)
        if not args[0].strip():
            raise errors.ValidationError(
                f"{pre}command", "names no program (its first item is empty)", '["python", "job.py"]'
            )
        text(f"{pre}command", args)
        template_fields(args)
    if function is not None and not FUNCTION_RE.match(string(f"{pre}function", function, None, 512)):
        raise errors.ValidationError(
            f"{pre}function", f"{shown(function)} is not a callable path", "module.path:callable"
        )
    timeout = value.get("timeout_seconds")
    queues = value.get("follow_up_queues") or ()
    if not isinstance(queues, list | tuple):
        raise errors.ValidationError(f"{pre}follow_up_queues", not_a(queues, "a list"), "a list of strings")
    for i, q in enumerate(queues):
        string(f"{pre}follow_up_queues[{i}]", q, None, 128)
    text(f"{pre}follow_up_queues", queues)
    working_dir = directory(f"{pre}working_dir", value.get("working_dir"))
    return DefinitionSpec(
        command=args,
        function=function,
        parameters=parameters(f"{pre}parameters", value.get("parameters")),
        vcpus=number(f"{pre}vcpus", value.get("vcpus", 1), 0, MAX_VCPUS, low_open=True),
        memory_mb=integer(f"{pre}memory_mb", value.get("memory_mb", 0), 0, MAX_MEMORY_MB),
        timeout_seconds=None
        if timeout is None
        else number(f"{pre}timeout_seconds", timeout, 0, MAX_TIMEOUT_SECONDS, low_open=True),
        retry=retry_strategy(f"{pre}retry", value.get("retry")),
        environment=environment(f"{pre}environment", value.get("environment")),
        follow_up_queues=tuple(str(q) for q in queues),
        working_dir=working_dir,
    )
