"""Validation of user input: every error names the field, the value and what is allowed.

The words of a refusal live here too (``not_a``, ``beyond``, ``length``, ``span``, ...): the
engine's checks, the JSON checks of ``wire.request_from_dict`` and the HTTP schema checker
(``api/schema.py``) all word their errors with them, so that one bad value reads the same
over HTTP, from the SDK on the database and in the CLI."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from conveyor import errors
from conveyor.model import (
    Backoff,
    DefinitionSpec,
    JobState,
    RetryAction,
    RetryRule,
    RetryStrategy,
)
from conveyor.templates import template_fields
from conveyor.values import NOT_TEXT, not_text, shown, text

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
# the limits of the JSON forms, which the HTTP schema (api/schema.py) publishes and every path checks
MAX_ARGV = 1000  # items of a command
MAX_RETRY_RULES = 100  # a retry strategy's evaluate_on_exit
MAX_FOLLOW_UP_QUEUES = 100  # a definition's follow_up_queues
MAX_MEMBERS = 1000  # of parameters, environment
MAX_QUEUE_ENVIRONMENTS = 100  # a queue's compute environments
QUEUE_PRIORITY = (-1000, 1000)
MAX_ENV_VCPUS = 1_000_000  # a compute environment's max_vcpus
MAX_ENV_MEMORY_MB = 2**31 - 1  # and its max_memory_mb (an INTEGER column)
# enum-like values are taken in any case and kept in these spellings (AWS Batch: "The values
# aren't case sensitive"); the HTTP schema marks them with CASE_INSENSITIVE
RETRY_ACTIONS = ("RETRY", "EXIT")
BACKOFFS = ("fixed", "exponential")
DEPENDENCY_TYPES = ("STANDARD", "N_TO_N")
JOB_STATES = tuple(s.value for s in JobState)  # of a filter: jobs list, bulk actions
CASE_INSENSITIVE = "x-case-insensitive"
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


def canonical(value: Any, choices: Sequence[str]) -> str | None:
    """The choice ``value`` names in any case of its ASCII letters (``retry``: ``RETRY``), or
    None. The HTTP schema checker calls it too, so both paths take the same spellings."""
    if isinstance(value, str) and value.isascii():
        for choice in choices:
            if value.upper() == choice.upper():
                return choice
    return None


def choice(field: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` as the canonical spelling of one of ``choices`` (``canonical``)."""
    listed = ", ".join(choices)
    if not isinstance(value, str):
        raise errors.ValidationError(field, not_a(value, "a string"), listed)
    found = canonical(value, choices)
    if found is None:
        raise errors.ValidationError(field, not_a_choice(value), listed)
    return found


def members(field: str, value: Mapping[Any, Any], known: Iterable[str]) -> None:
    """Refuse a member of ``value`` not in ``known``: ``spec.zzz: is not a known field``."""
    names = sorted(known)
    for key in value:
        if key not in names:
            raise errors.ValidationError(
                f"{field}.{key}" if field else str(key), "is not a known field", ", ".join(names)
            )


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
    """``value`` if it is Unicode text (``values.not_text``) of ``low..high`` characters."""
    if not isinstance(value, str):
        raise errors.ValidationError(field, not_a(value, "a string"), string_kind(low, high))
    if (low is not None and len(value) < low) or (high is not None and len(value) > high):
        raise errors.ValidationError(field, length(value), characters(low, high))
    problem = not_text(value)
    if problem is not None:
        raise errors.ValidationError(field, f"contains {problem}", NOT_TEXT)
    return value


def items(field: str, value: Any, most: int, kind: str) -> tuple[Any, ...]:
    """``value`` if it is a list (a tuple too) of at most ``most`` items, worded as the schema
    words an array; ``kind``: what it describes the list as ("a list of whole numbers")."""
    if not isinstance(value, list | tuple):
        raise errors.ValidationError(field, not_a(value, "a list"), kind)
    if len(value) > most:
        raise errors.ValidationError(field, count(len(value)), f"at most {most:,} items")
    return tuple(value)


def strings(
    field: str, value: Any, most: int, low: int | None = None, high: int | None = None, *, fewest: int = 0
) -> tuple[str, ...]:
    """A list (a tuple too) of ``fewest..most`` strings of ``low..high`` characters: a command,
    tags, follow-up queues, a queue's environments."""
    kind = ARGV if fewest == 1 else "a list of strings"
    if not isinstance(value, list | tuple):
        raise errors.ValidationError(field, not_a(value, "a list"), kind)
    if len(value) < fewest:
        raise errors.ValidationError(field, count(len(value)), kind)
    if len(value) > most:
        raise errors.ValidationError(field, count(len(value)), f"at most {most:,} items")
    for i, item in enumerate(value):
        string(f"{field}[{i}]", item, low, high)
    return tuple(value)


def argv(field: str, value: Any) -> tuple[str, ...]:
    """A command: a non-empty list of strings (a tuple too), at most ``MAX_ARGV`` of them on
    every path (HTTP, the SDK, the CLI's own argv)."""
    return strings(field, value, MAX_ARGV, fewest=1)


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
    """A queue's, environment's or definition's name: the schema's string, then its pattern."""
    given = string(field, value, 1, 128)
    if not NAME_RE.fullmatch(given):
        raise errors.ValidationError(
            field,
            f"{shown(value)} is not a valid name",
            "1-128 characters: letters, digits, _ . -, starting with a letter or digit",
        )
    return given


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


def string_map(field: str, value: Any) -> bool:
    """Whether ``value`` (parameters, an environment) is given: None is not; else it must be
    an object of at most ``MAX_MEMBERS`` members, all Unicode text."""
    if value is None:
        return False
    if not isinstance(value, Mapping):
        raise errors.ValidationError(field, not_a(value, "an object"), STRING_MAP)
    if len(value) > MAX_MEMBERS:
        raise errors.ValidationError(field, f"has {len(value):,} members", f"at most {MAX_MEMBERS:,} members")
    text(field, value if isinstance(value, dict) else dict(value))
    return True


def parameters(field: str, value: Any) -> dict[str, str]:
    if not string_map(field, value):
        return {}
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
    return out


def environment(field: str, value: Any) -> dict[str, str]:
    if not string_map(field, value):
        return {}
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
    return out


def retry_strategy(field: str, value: Any, default: RetryStrategy | None = None) -> RetryStrategy:
    """A submission's or a definition's retry: attempts alone (a whole number), or a strategy
    (an object); null leaves ``default``."""
    base = default or RetryStrategy()
    if value is None:
        return base
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"attempts": integer(field, value, 1, MAX_ATTEMPTS)}
    if not isinstance(value, Mapping):
        raise errors.ValidationError(
            field,
            not_a(value, "a whole number or an object"),
            f"{span(1, MAX_ATTEMPTS, whole=True)}, or {RETRY_FORM}",
        )
    members(
        field,
        value,
        ("attempts", "evaluate_on_exit", "backoff", "delay_seconds", "max_delay_seconds", "jitter"),
    )
    rules = []
    given_rules = value.get("evaluate_on_exit")
    rules_kind = f"a list of {RULE.removeprefix('a ')}s"
    if not isinstance(given_rules, list | tuple):
        if "evaluate_on_exit" in value:
            raise errors.ValidationError(
                f"{field}.evaluate_on_exit", not_a(given_rules, "a list"), rules_kind
            )
        given_rules = []
    if len(given_rules) > MAX_RETRY_RULES:
        raise errors.ValidationError(
            f"{field}.evaluate_on_exit", count(len(given_rules)), f"at most {MAX_RETRY_RULES:,} items"
        )
    for i, rule in enumerate(given_rules):
        f = f"{field}.evaluate_on_exit[{i}]"
        if not isinstance(rule, Mapping):
            raise errors.ValidationError(f, not_a(rule, "an object"), RULE)
        if "action" not in rule:
            raise errors.ValidationError(f"{f}.action", "is required", ", ".join(RETRY_ACTIONS))
        members(f, rule, ("action", "on_exit_code", "on_reason"))
        action = choice(f"{f}.action", rule["action"], RETRY_ACTIONS)
        code, reason = rule.get("on_exit_code"), rule.get("on_reason")
        if reason is not None:
            string(f"{f}.on_reason", reason, None, 512)
        if code is not None:  # a glob, as AWS Batch's onExitCode: a string, "137" not 137
            string(f"{f}.on_exit_code", code, None, 512)
        if code is None and reason is None:
            raise errors.ValidationError(
                f, "needs on_exit_code or on_reason (globs)", 'e.g. on_exit_code: "137"'
            )
        if code is not None and not re.fullmatch(r"[0-9*?\[\]-]{1,512}", code):
            raise errors.ValidationError(
                f"{f}.on_exit_code", f"{shown(code)} is not an exit code glob", "digits and * ? [ ]"
            )
        rules.append(RetryRule(RetryAction(action), code, reason))
    backoff = choice(f"{field}.backoff", value.get("backoff", base.backoff.value), BACKOFFS)
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
    if not value.startswith("/"):  # relative to what? each worker's own directory
        raise errors.ValidationError(
            field, f"{shown(value)} is a relative path", "an absolute path, e.g. /srv/app"
        )
    return str(value)


def definition_spec(value: Any, field: str = "spec") -> DefinitionSpec:
    """Build a spec from plain data (CLI flags, JSON bodies); errors name ``field.<key>``
    (``spec.vcpus``, as the HTTP schema names the member of ``POST /v1/definitions``), or
    ``<key>`` alone when ``field`` is empty (a single submission's own fields). A member given
    as null is left out, as in a submission."""
    pre = f"{field}." if field else ""
    if not isinstance(value, Mapping):
        raise errors.ValidationError(field or "body", not_a(value, "an object"), "an object")
    members(
        field,
        value,
        (
            "command", "function", "parameters", "vcpus", "memory_mb", "timeout_seconds", "retry",
            "environment", "follow_up_queues", "working_dir",
        ),
    )  # fmt: skip
    command, function = value.get("command"), value.get("function")
    if (command is None) == (function is None):
        raise errors.ValidationError(
            field or "command",
            "needs exactly one of command or function",
            "command: [argv...] or function: module:callable",
        )
    args: tuple[str, ...] | None = None
    if command is not None:
        where = f"{pre}command"
        args = argv(where, command)
        if not args[0].strip():
            raise errors.ValidationError(
                where, "names no program (its first item is empty)", '["python", "job.py"]'
            )
        template_fields(args, where, indexed=True)
    if function is not None and not FUNCTION_RE.fullmatch(string(f"{pre}function", function, None, 512)):
        raise errors.ValidationError(
            f"{pre}function", f"{shown(function)} is not a callable path", "module.path:callable"
        )
    timeout = value.get("timeout_seconds")
    queues = value.get("follow_up_queues")
    if queues is not None:
        queues = strings(f"{pre}follow_up_queues", queues, MAX_FOLLOW_UP_QUEUES, None, 128)
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
        follow_up_queues=queues or (),
        working_dir=working_dir,
    )
