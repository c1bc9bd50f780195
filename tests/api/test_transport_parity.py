"""The SDK on the database takes and refuses what HTTP takes and refuses, in the same words.

Each input goes to a real server over HTTP and straight to the database (``LocalBackend``);
both must accept it with the same stored result, or refuse it naming the same field, reason
and allowed values. Definitions, queues, environments and submissions; and, generated from
the schemas, every member's refusals."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from conveyor import errors
from conveyor.api import schema
from conveyor.client import Client
from conveyor.engine import validate
from tests.api.conftest import Live
from tests.api.test_error_uniformity import _bad_values

NUL = "Unicode text without NUL"
TEMPLATES = "{name} placeholders; {{ and }} for braces"
C = ["true"]
Refused = tuple[str, str, str]  # field, reason, allowed
Expected = Refused | dict[str, Any]  # a refusal, or members of what is stored


def outcome(run: Callable[[], dict[str, Any]]) -> tuple[Any, ...]:
    try:
        return ("accepted", run())
    except errors.ValidationError as exc:
        return ("refused", exc.field, exc.reason, exc.allowed)


_names = itertools.count()


def compare(both: tuple[Client, Client], run: Callable[[Client, str], dict[str, Any]]) -> tuple[Any, ...]:
    """Run on both paths (each under a fresh name); the one outcome, or a failure showing both."""
    over_http, on_database = (outcome(functools.partial(run, c, f"n{next(_names)}")) for c in both)
    assert over_http == on_database, f"\nhttp:     {over_http}\ndatabase: {on_database}"
    return over_http


def check(got: tuple[Any, ...], expected: Expected) -> None:
    if isinstance(expected, dict):
        assert got[0] == "accepted", got
        assert {k: got[1][k] for k in expected} == expected
    else:
        assert got == ("refused", *expected)


def _rule(**members: Any) -> dict[str, Any]:
    return {"evaluate_on_exit": [{"action": "RETRY", "on_exit_code": "1", **members}]}


_RETRY_DEFAULTS = {"backoff": "exponential", "delay_seconds": 1.0, "jitter": True, "max_delay_seconds": 300.0}

# (spec, expected): the enum choices in any case, stored as the canonical spelling
DEFINITION_CASES: list[tuple[Any, Expected]] = [
    (
        {"command": C, "retry": _rule(action="retry")},
        {
            "retry": {
                "attempts": 1,
                **_RETRY_DEFAULTS,
                "evaluate_on_exit": [_rule()["evaluate_on_exit"][0] | {"on_reason": None}],
            }
        },
    ),
    (
        {"command": C, "retry": {"evaluate_on_exit": [{"action": "Exit", "on_reason": "x*"}]}},
        {
            "retry": {
                "attempts": 1,
                **_RETRY_DEFAULTS,
                "evaluate_on_exit": [{"action": "EXIT", "on_exit_code": None, "on_reason": "x*"}],
            }
        },
    ),
    (
        {"command": C, "retry": {"backoff": "FIXED"}},
        {"retry": {"attempts": 1, **_RETRY_DEFAULTS, "backoff": "fixed", "evaluate_on_exit": []}},
    ),
    (
        {"command": C, "retry": _rule(action="retried")},
        ("spec.retry.evaluate_on_exit[0].action", "'retried' is not a valid choice", "RETRY, EXIT"),
    ),
    (  # ASCII letters in any case: a dotless i is not an i
        {"command": C, "retry": _rule(action="ex\u0131t")},
        ("spec.retry.evaluate_on_exit[0].action", "'ex\u0131t' is not a valid choice", "RETRY, EXIT"),
    ),
    # the retry strategy: attempts alone (a whole number), or an object
    ({"command": C, "retry": 3}, {"retry": {"attempts": 3, **_RETRY_DEFAULTS, "evaluate_on_exit": []}}),
    ({"command": C, "retry": 0}, ("spec.retry", "0 is below 1", "a whole number from 1 to 10")),
    (
        {"command": C, "retry": True},
        (
            "spec.retry",
            "true is not a whole number or an object",
            "a whole number from 1 to 10, or an object",
        ),
    ),
    (
        {"command": C, "retry": {"attempts": 2.0}},
        ("spec.retry.attempts", "2.0 is not a whole number", "a whole number from 1 to 10"),
    ),
    (
        {"command": C, "retry": {"attempts": False}},
        ("spec.retry.attempts", "false is not a whole number", "a whole number from 1 to 10"),
    ),
    (
        {"command": C, "retry": _rule(on_exit_code=137)},
        (
            "spec.retry.evaluate_on_exit[0].on_exit_code",
            "137 is not a string",
            "a string of at most 512 characters",
        ),
    ),
    (
        {"command": C, "retry": {"evaluate_on_exit": _rule()["evaluate_on_exit"] * 101}},
        ("spec.retry.evaluate_on_exit", "has 101 items", "at most 100 items"),
    ),
    # null is how a member is left out
    (
        {"command": C, "retry": None, "parameters": None, "environment": None, "follow_up_queues": None},
        {"parameters": {}, "environment": {}, "follow_up_queues": []},
    ),
    (
        {"command": C, "follow_up_queues": ""},
        ("spec.follow_up_queues", "'' is not a list", "a list of strings"),
    ),
    ("x", ("spec", "'x' is not an object", "an object")),
    # sizes
    (
        {"command": ["x"] * 1001},
        ("spec.command", "has 1,001 items", "at most 1,000 items"),
    ),
    (
        {"command": C, "parameters": {f"p{i}": "v" for i in range(1001)}},
        ("spec.parameters", "has 1,001 members", "at most 1,000 members"),
    ),
    (
        {"command": C, "follow_up_queues": ["a*"] * 101},
        ("spec.follow_up_queues", "has 101 items", "at most 100 items"),
    ),
    # text that is not Unicode text, named where it is
    ({"command": ["x", "a\x00"]}, ("spec.command[1]", "contains a NUL character", NUL)),
    (
        {"command": ["x", "a\ud800"]},
        ("spec.command[1]", "contains a lone UTF-16 surrogate (\\ud800-\\udfff escapes come in pairs)", NUL),
    ),
    ({"function": "m:f\x00"}, ("spec.function", "contains a NUL character", NUL)),
    ({"command": C, "parameters": {"p": "a\x00"}}, ("spec.parameters.p", "contains a NUL character", NUL)),
    (
        {"command": C, "parameters": {"p\x00": "a"}},
        ("spec.parameters", "has a member name that contains a NUL character", NUL),
    ),
    ({"command": C, "environment": {"A": "\x00"}}, ("spec.environment.A", "contains a NUL character", NUL)),
    (
        {"command": C, "retry": _rule(on_reason="a\x00")},
        ("spec.retry.evaluate_on_exit[0].on_reason", "contains a NUL character", NUL),
    ),
    (
        {"command": C, "follow_up_queues": ["a\x00*"]},
        ("spec.follow_up_queues[0]", "contains a NUL character", NUL),
    ),
    ({"command": C, "working_dir": "/a\x00"}, ("spec.working_dir", "contains a NUL character", NUL)),
    # a bad template or an unknown follow-up queue is named at its item, not at the list
    (
        {"command": ["echo", "{day}", "{x.y}"]},
        ("spec.command[2]", "'{x.y}': {x.y} is not a plain placeholder", TEMPLATES),
    ),
    (
        {"command": ["echo", "a}"]},
        ("spec.command[1]", "'a}': Single '}' encountered in format string", TEMPLATES),
    ),
    (
        {"command": C, "follow_up_queues": ["default", "sync-*", "nope"]},
        ("spec.follow_up_queues[2]", "queue 'nope' does not exist", "default"),
    ),
]


@pytest.mark.parametrize(
    ("spec", "expected"), DEFINITION_CASES, ids=[str(i) for i in range(len(DEFINITION_CASES))]
)
def test_a_definition_is_taken_or_refused_alike_over_http_and_on_the_database(
    both: tuple[Client, Client], spec: Any, expected: Expected
) -> None:
    got = compare(both, lambda c, name: c.register_definition(name, spec)["spec"])
    check(got, expected)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a\x00", ("name", "contains a NUL character", NUL)),
        ("", ("name", "is 0 characters", "1-128 characters")),
        ("d" * 129, ("name", "is 129 characters", "1-128 characters")),
        (5, ("name", "5 is not a string", "a string of 1-128 characters")),
    ],
)
def test_a_bad_definition_name_reads_alike(both: tuple[Client, Client], name: Any, expected: Refused) -> None:
    check(compare(both, lambda c, _: c.register_definition(name, {"command": C})), expected)


# (submission beside a valid command, expected)
SUBMISSION_CASES: list[tuple[dict[str, Any], Expected]] = [
    (
        {"retry": _rule(action="exit")},
        {
            "retry": {
                "attempts": 1,
                **_RETRY_DEFAULTS,
                "evaluate_on_exit": [{"action": "EXIT", "on_exit_code": "1", "on_reason": None}],
            }
        },
    ),
    (
        {"retry": {"backoff": "Fixed"}},
        {"retry": {"attempts": 1, **_RETRY_DEFAULTS, "backoff": "fixed", "evaluate_on_exit": []}},
    ),
    (
        {"retry": _rule(on_exit_code=1)},
        ("retry.evaluate_on_exit[0].on_exit_code", "1 is not a string", "a string of at most 512 characters"),
    ),
    (
        {"retry": {"evaluate_on_exit": _rule()["evaluate_on_exit"] * 101}},
        ("retry.evaluate_on_exit", "has 101 items", "at most 100 items"),
    ),
    ({"command": ["x"] * 1001}, ("command", "has 1,001 items", "at most 1,000 items")),
    # a tuple is sent as a list over HTTP: the database takes it too
    ({"tags": ("a",)}, {"tags": ["a"]}),
    ({"retry": {"evaluate_on_exit": tuple(_rule()["evaluate_on_exit"])}}, {"state": "RUNNABLE"}),
    # text that is not Unicode text, named where it is
    ({"command": ["x", "a\x00"]}, ("command[1]", "contains a NUL character", NUL)),
    ({"name": "a\x00"}, ("name", "contains a NUL character", NUL)),
    ({"tags": ["a", "b\x00"]}, ("tags[1]", "contains a NUL character", NUL)),
    (
        {"tags": ["\ud800"]},
        ("tags[0]", "contains a lone UTF-16 surrogate (\\ud800-\\udfff escapes come in pairs)", NUL),
    ),
    ({"unique_key": "k\x00"}, ("unique_key", "contains a NUL character", NUL)),
    ({"idempotency_key": "k\x00"}, ("idempotency_key", "contains a NUL character", NUL)),
    ({"queue": "q\x00"}, ("queue", "contains a NUL character", NUL)),
    ({"command": None, "definition": "d\x00"}, ("definition", "contains a NUL character", NUL)),
    ({"command": None, "function": "m:f\x00"}, ("function", "contains a NUL character", NUL)),
    ({"payload": {"a": ["b\x00"]}}, ("payload.a[0]", "contains a NUL character", NUL)),
    ({"payload": {"a\x00": 1}}, ("payload", "has a member name that contains a NUL character", NUL)),
    ({"parameters": {"p\x00": "v"}}, ("parameters", "has a member name that contains a NUL character", NUL)),
    ({"environment": {"A": "\x00"}}, ("environment.A", "contains a NUL character", NUL)),
    ({"working_dir": "/a\x00"}, ("working_dir", "contains a NUL character", NUL)),
    (
        {"retry": _rule(on_reason="\x00")},
        ("retry.evaluate_on_exit[0].on_reason", "contains a NUL character", NUL),
    ),
    ({"command": ["x", "{p!r}"]}, ("command[1]", "'{p!r}': {p!r} is not a plain placeholder", TEMPLATES)),
]


@pytest.mark.parametrize(
    ("body", "expected"), SUBMISSION_CASES, ids=[str(i) for i in range(len(SUBMISSION_CASES))]
)
def test_a_submission_is_taken_or_refused_alike_over_http_and_on_the_database(
    both: tuple[Client, Client], body: dict[str, Any], expected: Expected
) -> None:
    def run(c: Client, _: str) -> dict[str, Any]:
        job = c.get(c.submit(**{"command": C, **body}).id)
        return {**job["spec"], "tags": job["tags"], "state": job["state"]}

    check(compare(both, run), expected)


def test_a_dependency_type_is_taken_in_any_case(both: tuple[Client, Client]) -> None:
    first = both[0].submit(command=C, array_size=2).id

    def run(c: Client, _: str) -> dict[str, Any]:
        job = c.get(c.submit(command=C, depends_on=[{"job_id": first, "type": "n_to_n"}], array_size=2).id)
        return {k: job[k] for k in ("depends_on", "array_size", "state")}

    assert compare(both, run) == ("accepted", {"depends_on": [first], "array_size": 2, "state": "PENDING"})


# (members, whether the queue exists already, expected)
QUEUE_CASES: list[tuple[dict[str, Any], bool, Expected]] = [
    (
        {"environments": "spot"},
        False,
        ("environments", "'spot' is not a list", "a non-empty list of strings"),
    ),
    ({"environments": []}, True, ("environments", "is empty", "a non-empty list of strings")),
    ({"environments": None}, True, ("environments", "null is not a list", "a non-empty list of strings")),
    (
        {"environments": {"spot": 1}},
        False,
        ("environments", "{'spot': 1} is not a list", "a non-empty list of strings"),
    ),
    ({"environments": [5]}, False, ("environments[0]", "5 is not a string", "a string of 1-128 characters")),
    ({"environments": [""]}, False, ("environments[0]", "is 0 characters", "1-128 characters")),
    ({"environments": ["e" * 129]}, True, ("environments[0]", "is 129 characters", "1-128 characters")),
    ({"environments": ["spot\x00"]}, False, ("environments[0]", "contains a NUL character", NUL)),
    (
        {"environments": [f"e{i}" for i in range(101)]},
        False,
        ("environments", "has 101 items", "at most 100 items"),
    ),
    (
        {"environments": ["spot", "spot"]},
        False,
        ("environments", "lists an environment twice", "distinct names in fallback order"),
    ),
    (
        {"environments": ["nope"]},
        True,
        ("environments", "compute environment 'nope' does not exist", "default, spot"),
    ),
    ({"environments": ("spot", "default")}, True, {"environments": ["spot", "default"]}),
    (
        {"priority": None},
        True,
        ("priority", "null is not a whole number", "a whole number from -1000 to 1000"),
    ),
    ({"enabled": None}, True, ("enabled", "null is not true or false", "true, false")),
    ({"enabled": "no"}, False, ("enabled", "'no' is not true or false", "true, false")),
    ({"paused": True}, True, ("paused", "is not a known field", "enabled, environments, priority")),
    ({"priority": 5}, True, {"priority": 5, "enabled": True, "environments": ["default"]}),
]


@pytest.mark.parametrize(
    ("body", "existing", "expected"), QUEUE_CASES, ids=[str(i) for i in range(len(QUEUE_CASES))]
)
def test_a_queue_is_taken_or_refused_alike_over_http_and_on_the_database(
    live: Live, both: tuple[Client, Client], body: dict[str, Any], existing: bool, expected: Expected
) -> None:
    def run(c: Client, name: str) -> dict[str, Any]:
        if existing:
            live.app.catalog.put_queue(name)
        return {k: v for k, v in c.put_queue(name, **body).items() if k != "name"}

    check(compare(both, run), expected)


ENVIRONMENT_CASES: list[tuple[dict[str, Any], bool, Expected]] = [
    (
        {"max_memory_mb": 2**31},
        False,
        ("max_memory_mb", "2147483648 is above 2147483647", "a whole number from 1 to 2147483647"),
    ),
    ({"max_memory_mb": 0}, True, ("max_memory_mb", "0 is below 1", "a whole number from 1 to 2147483647")),
    ({"cpus": 4}, True, ("cpus", "is not a known field", "enabled, max_memory_mb, max_vcpus")),
    ({"max_vcpus": None, "max_memory_mb": 2**31 - 1}, True, {"max_vcpus": None, "max_memory_mb": 2**31 - 1}),
]


@pytest.mark.parametrize(
    ("body", "existing", "expected"), ENVIRONMENT_CASES, ids=[str(i) for i in range(len(ENVIRONMENT_CASES))]
)
def test_an_environment_is_taken_or_refused_alike_over_http_and_on_the_database(
    live: Live, both: tuple[Client, Client], body: dict[str, Any], existing: bool, expected: Expected
) -> None:
    def run(c: Client, name: str) -> dict[str, Any]:
        if existing:
            live.app.catalog.put_environment(name, max_vcpus=4)
        return {k: v for k, v in c.put_environment(name, **body).items() if k != "name"}

    check(compare(both, run), expected)


@pytest.mark.parametrize("name", ["", "a b", "q" * 129, "q\x00"])
def test_a_bad_queue_or_environment_name_reads_alike(both: tuple[Client, Client], name: str) -> None:
    for run in (lambda c, _: c.put_queue(name), lambda c, _: c.put_environment(name)):
        assert compare(both, run)[0] == "refused"


# -- every member, generated from the schemas -----------------------------------------------------
def _generated(name: str) -> list[tuple[str, Any]]:
    return [
        (key, bad) for key, prop in schema.SCHEMAS[name]["properties"].items() for bad in _bad_values(prop)
    ]


SPEC_MEMBERS = _generated("DefinitionSpec")


@pytest.mark.parametrize(
    ("key", "bad"), SPEC_MEMBERS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(SPEC_MEMBERS)]
)
def test_each_schema_refusal_of_a_definition_reads_as_the_engine_words_it(key: str, bad: Any) -> None:
    spec = {key: bad} if key in ("command", "function") else {"command": C, key: bad}
    with pytest.raises(errors.ValidationError) as over_http:
        schema.check("DefinitionIn", {"name": "d", "spec": spec})
    with pytest.raises(errors.ValidationError) as on_database:
        validate.definition_spec(spec)
    http, db = over_http.value, on_database.value
    assert (db.field, db.reason, db.allowed) == (http.field, http.reason, http.allowed)


CATALOG_MEMBERS = [("queues", k, bad) for k, bad in _generated("QueueIn")] + [
    ("environments", k, bad) for k, bad in _generated("EnvironmentIn")
]


@pytest.mark.parametrize(
    ("kind", "key", "bad"),
    CATALOG_MEMBERS,
    ids=[f"{kind}-{k}-{i}" for i, (kind, k, _) in enumerate(CATALOG_MEMBERS)],
)
def test_each_schema_refusal_of_a_queue_or_environment_reads_alike(
    both: tuple[Client, Client], kind: str, key: str, bad: Any
) -> None:
    def run(c: Client, name: str) -> dict[str, Any]:
        return (c.put_queue if kind == "queues" else c.put_environment)(name, **{key: bad})

    assert compare(both, run)[0] == "refused"
