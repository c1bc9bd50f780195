"""One bad value, one sentence, on every path: the field, the value and what is allowed read
the same over HTTP (the schema checker's problem+json) and from the SDK on the database
(``wire.request_from_dict`` and the engine)."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor import errors, values, wire
from conveyor.api import schema
from conveyor.client import Client
from tests.api.conftest import Live

# (body beside a valid command, field, reason, allowed): the same answer on both transports
SAME_ON_BOTH: list[tuple[dict[str, Any], str, str, str]] = [
    ({"command": "echo"}, "command", "'echo' is not a list", "a non-empty list of strings"),
    ({"command": []}, "command", "is empty", "a non-empty list of strings"),
    ({"command": ["echo", 1]}, "command[1]", "1 is not a string", "a string"),
    ({"priority": True}, "priority", "true is not a whole number", "a whole number from -1000000 to 1000000"),
    ({"priority": 1.5}, "priority", "1.5 is not a whole number", "a whole number from -1000000 to 1000000"),
    (
        {"priority": 2_000_000},
        "priority",
        "2000000 is above 1000000",
        "a whole number from -1000000 to 1000000",
    ),
    ({"unique_key": "k" * 513}, "unique_key", "is 513 characters", "1-512 characters"),
    ({"unique_key": ""}, "unique_key", "is 0 characters", "1-512 characters"),
    ({"idempotency_key": "k" * 513}, "idempotency_key", "is 513 characters", "1-512 characters"),
    ({"name": "n" * 300}, "name", "is 300 characters", "1-256 characters"),
    ({"queue": 5}, "queue", "5 is not a string", "a string of at most 512 characters"),
    ({"tags": "nightly"}, "tags", "'nightly' is not a list", "a list of strings"),
    ({"tags": [None]}, "tags[0]", "null is not a string", "a string of at most 128 characters"),
    ({"tags": ["t" * 129]}, "tags[0]", "is 129 characters", "at most 128 characters"),
    (
        {"depends_on": "12"},
        "depends_on",
        "'12' is not a list",
        "a list of whole numbers or {job_id, type} objects",
    ),
    (
        {"depends_on": [False]},
        "depends_on[0]",
        "false is not a whole number or an object",
        "a whole number from 1 to 4611686018427387904, or a {job_id, type} object",
    ),
    ({"depends_on": [0]}, "depends_on[0]", "0 is below 1", "a whole number from 1 to 4611686018427387904"),
    (
        {"depends_on": [{"job_id": 1, "type": "X"}]},
        "depends_on[0].type",
        "'X' is not a valid choice",
        "STANDARD, N_TO_N",
    ),
    ({"delay_seconds": "5"}, "delay_seconds", "'5' is not a number", "a number from 0 to 31622400"),
    (
        {"timeout_seconds": 0},
        "timeout_seconds",
        "0 must be more than 0",
        "a number more than 0, up to 2592000",
    ),
    ({"vcpus": 2000}, "vcpus", "2000 is above 1024", "a number more than 0, up to 1024"),
    ({"array_size": 1}, "array_size", "1 is below 2", "a whole number from 2 to 10000"),
    (
        {"parent_id": 0},
        "parent_id",
        "0 is below 1",
        "a whole number from 1 to 4611686018427387904",
    ),
    ({"array_sequential": "yes"}, "array_sequential", "'yes' is not true or false", "true, false"),
    (
        {"retry": "x"},
        "retry",
        "'x' is not a whole number or an object",
        "a whole number from 1 to 10, or an object",
    ),
    ({"retry": 0}, "retry", "0 is below 1", "a whole number from 1 to 10"),
    (
        {"retry": {"backoff": "linear"}},
        "retry.backoff",
        "'linear' is not a valid choice",
        "fixed, exponential",
    ),
    (
        {"retry": {"delay_seconds": 100_000}},
        "retry.delay_seconds",
        "100000 is above 86400",
        "a number from 0 to 86400",
    ),
    (
        {"retry": {"attempts": 11}},
        "retry.attempts",
        "11 is above 10",
        "a whole number from 1 to 10",
    ),
    (
        {"retry": {"evaluate_on_exit": "x"}},
        "retry.evaluate_on_exit",
        "'x' is not a list",
        "a list of {action, on_exit_code, on_reason} objects",
    ),
    ({"parameters": [1]}, "parameters", "[1] is not an object", "an object of strings or numbers"),
    (
        {"environment": {"A": None}},
        "environment.A",
        "null is not a string or a number",
        "a string or a number",
    ),
    (
        {"run_at": 5},
        "run_at",
        "5 is not a string",
        "an ISO-8601 time with its UTC offset, e.g. 2026-05-01T12:00:00+00:00",
    ),
]


def test_a_bad_submission_reads_the_same_over_http_and_on_the_database(client: Client) -> None:
    wrong = []
    for body, field, reason, allowed in SAME_ON_BOTH:
        with pytest.raises(errors.ValidationError) as info:
            client.submit(**{"command": ["true"], **body})
        got = (info.value.field, info.value.reason, info.value.allowed, str(info.value))
        if got != (field, reason, allowed, f"{field}: {reason} (allowed: {allowed})"):
            wrong.append((body, got))
    assert wrong == []


def test_a_bad_definition_reads_the_same_over_http_and_on_the_database(client: Client) -> None:
    """Named as the HTTP body names it (``spec.…``): the database path said ``definition.…``."""
    cases: list[tuple[dict[str, Any], str, str, str]] = [
        ({"command": "echo"}, "spec.command", "'echo' is not a list", "a non-empty list of strings"),
        (
            {"command": ["x"], "vcpus": 0},
            "spec.vcpus",
            "0 must be more than 0",
            "a number more than 0, up to 1024",
        ),
        ({"function": 5}, "spec.function", "5 is not a string", "a string of at most 512 characters"),
        (
            {"command": ["x"], "follow_up_queues": "q"},
            "spec.follow_up_queues",
            "'q' is not a list",
            "a list of strings",
        ),
        (
            {"command": ["x"], "retry": {"evaluate_on_exit": [{"on_exit_code": "1"}]}},
            "spec.retry.evaluate_on_exit[0].action",
            "is required",
            "RETRY, EXIT",
        ),
    ]
    for spec, field, reason, allowed in cases:
        with pytest.raises(errors.ValidationError) as info:
            client.register_definition("d", spec)
        assert (info.value.field, info.value.reason, info.value.allowed) == (field, reason, allowed), spec


def test_a_schema_type_error_is_a_problem_with_its_allowed_member(live: Live) -> None:
    answer = live.call("POST", "/v1/jobs", {"command": "echo hi"})
    assert answer.status == 422 and answer.headers["content-type"] == "application/problem+json"
    assert {k: answer.json.get(k) for k in ("field", "allowed", "detail")} == {
        "field": "command",
        "allowed": "a non-empty list of strings",
        "detail": "command: 'echo hi' is not a list (allowed: a non-empty list of strings)",
    }
    # a batch names the submission by its place in the list
    answer = live.call(
        "POST", "/v1/jobs/batch", {"jobs": [{"command": ["x"]}, {"command": ["x"], "tags": "t"}]}
    )
    assert (answer.status, answer.json["field"], answer.json["allowed"]) == (
        422,
        "jobs[1].tags",
        "a list of strings",
    )


def test_the_engine_names_a_unique_key_by_its_length_as_it_does_an_idempotency_key(client: Client) -> None:
    """A key made too long by its {param} template is caught by the engine (the raw one fits)."""
    with pytest.raises(errors.ValidationError) as info:
        client.submit(command=["echo", "{p}"], parameters={"p": "k" * 600}, unique_key="{p}")
    assert str(info.value) == "unique_key: is 600 characters (allowed: 1-512 characters)"


def test_values_are_shown_as_json_writes_true_false_and_null() -> None:
    assert [values.shown(v) for v in (True, False, None, 1.5, "abc")] == [
        "true",
        "false",
        "null",
        "1.5",
        "'abc'",
    ]
    assert values.shown([1, True, None]) == "[1, true, null]"
    assert values.shown(("a", {"b": False})) == "['a', {'b': false}]"
    assert values.shown("x" * 100) == "'" + "x" * 36 + "..."
    assert values.shown(10**5000) == "a number"
    loop: list[Any] = []
    loop.append(loop)
    assert values.shown(loop).endswith("...")


# -- every member of a submission, generated from the schema -----------------------------------
def _options(s: dict[str, Any]) -> list[dict[str, Any]]:
    """The schemas a value of ``s`` may match (``anyOf`` flattened), null aside."""
    if "anyOf" in s:
        return [o for option in s["anyOf"] for o in _options(option)]
    return [] if s.get("type") == "null" else [s]


def _bad_values(prop: dict[str, Any]) -> list[Any]:
    """Values ``prop`` refuses: of another type, beyond its bounds, too long, too many."""
    options = _options(prop)
    types = {t for o in options for t in (o["type"] if isinstance(o["type"], list) else [o["type"]])}
    out: list[Any] = [
        next(v for v, kind in ((True, "boolean"), ({"x": 1}, "object"), ("x", "string")) if kind not in types)
    ]
    for option in options:
        for key, make in (
            ("minimum", lambda s: s["minimum"] - 1),
            ("exclusiveMinimum", lambda s: s["exclusiveMinimum"]),
            ("maximum", lambda s: s["maximum"] + 1),
            ("minLength", lambda s: "x" * (s["minLength"] - 1)),
            ("maxLength", lambda s: "x" * (s["maxLength"] + 1)),
            ("minItems", lambda s: []),
            ("maxItems", lambda s: ["x" if s["items"].get("type") == "string" else 1] * (s["maxItems"] + 1)),
            ("maxProperties", lambda s: {f"k{i}": "v" for i in range(s["maxProperties"] + 1)}),
        ):
            if key in option:
                out.append(make(option))
    return out


SUBMISSION_CASES = [
    (key, bad)
    for key, prop in schema.SUBMISSION["properties"].items()
    if key != "payload"  # any JSON value
    for bad in _bad_values(prop)
]


@pytest.mark.parametrize(
    ("key", "bad"), SUBMISSION_CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(SUBMISSION_CASES)]
)
def test_each_schema_refusal_of_a_submission_reads_as_the_database_path_words_it(key: str, bad: Any) -> None:
    """The schema checker words its errors from the schema alone; ``wire.request_from_dict``
    (the SDK on the database, --from-file) must say the same for the same member."""
    body = {"command": ["true"], key: bad} if key != "command" else {key: bad}
    with pytest.raises(errors.ValidationError) as over_http:
        schema.check("Submission", body)
    with pytest.raises(errors.ValidationError) as on_database:
        wire.request_from_dict(body, "")
    http, db = over_http.value, on_database.value
    assert (db.field, db.reason, db.allowed) == (http.field, http.reason, http.allowed)
    assert http.allowed, http
    assert values.shown(bad) in http.reason or http.reason.startswith(("is ", "has "))
