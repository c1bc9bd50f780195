"""``validate.payload_json`` calls the C encoder directly: the same text as the compact
``json.JSONEncoder`` it stands for, and the same refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conveyor import errors, values

REFERENCE = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -7,
        2**70,
        1.5,
        -0.0,
        1e300,
        "",
        'é\u2603\U0001f600 "quoted" \\ \n\t',
        [],
        {},
        {"args": [1, 2.5, None, True], "kwargs": {"b": "x", "a": [{}]}},
        (1, (2, 3)),
        {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
        [[[[["deep"]]]]],
    ],
)
def test_payload_json_is_the_compact_ascii_json_of_the_value(value: Any) -> None:
    text = values.payload_json("payload", value)
    assert text == REFERENCE.encode(value)
    assert text.isascii()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"x": float("nan")}, "Out of range float values are not JSON compliant"),
        ([float("inf")], "Out of range float values are not JSON compliant"),
        ({"when": object()}, "Object of type object is not JSON serializable"),
        ({("a", "b"): 1}, "keys must be str, int, float, bool or None, not tuple"),
    ],
)
def test_a_value_that_is_not_json_is_refused_naming_the_field(value: Any, reason: str) -> None:
    with pytest.raises(errors.ValidationError, match="is not JSON-serialisable") as info:
        values.payload_json("jobs[3].payload", value)
    assert info.value.field == "jobs[3].payload"
    assert reason in str(info.value)


def test_a_circular_payload_is_refused_and_the_next_one_still_encodes() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(errors.ValidationError, match="Circular reference detected"):
        values.payload_json("payload", {"a": loop})
    shared = [1]
    assert values.payload_json("payload", [shared, shared]) == "[[1],[1]]"


def test_a_payload_nested_too_deeply_is_refused_naming_the_field_and_the_next_one_encodes() -> None:
    """The shared encoder has no check for circular references: both a payload that contains
    itself and one nested past the recursion limit end in RecursionError inside it. The
    first still gets its own message (above); this one gets a ValidationError, not a crash."""
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(errors.ValidationError, match="nested too deeply") as info:
        values.payload_json("jobs[0].payload", {"a": deep})
    assert info.value.field == "jobs[0].payload"
    assert values.payload_json("payload", [[[1]]]) == "[[[1]]]"


@pytest.mark.parametrize(
    "text",
    ["5", "-0.5e3", '"x"', "null", '[1,{"a":[]}]', " 5", "5 ", "[1] ", "\n{}\n", "NaN", b"[1,2]"],
)
def test_the_sqlite_store_reads_json_as_json_loads_does(text: str | bytes) -> None:
    """``SQLiteDialect.unjs`` runs the C scanner alone on the text the store wrote, and hands
    anything it does not take whole (surrounding space, bytes) to ``json.loads``."""
    from conveyor.store.sqlite import SQLiteDialect

    got = SQLiteDialect().unjs(text)
    want = json.loads(text)
    assert got == want or (got != got and want != want)  # NaN


@pytest.mark.parametrize("text", ["", "nope", "5 6", "[1,", "{'a': 1}"])
def test_the_sqlite_store_refuses_what_json_loads_refuses(text: str) -> None:
    from conveyor.store.sqlite import SQLiteDialect

    with pytest.raises(json.JSONDecodeError):
        SQLiteDialect().unjs(text)
    assert SQLiteDialect().unjs(None) is None


@pytest.mark.parametrize(
    "value",
    ["a\x00b", {"k": ["\ud800"]}, {"\udc00": 1}, ("x", {"y": "\ud83d"}), "\x00\U0001f600"],
)
def test_a_payload_that_is_not_unicode_text_is_refused_on_every_backend(value: Any) -> None:
    """A NUL (PostgreSQL's jsonb refuses it; SQLite kept it) or a lone surrogate (no answer can
    encode it: it used to be stored, then fail every read)."""
    with pytest.raises(errors.ValidationError) as info:
        values.payload_json("payload", value)
    assert (info.value.field, info.value.reason) == (
        "payload",
        "holds a NUL or a lone surrogate (not Unicode text)",
    )


@pytest.mark.parametrize("value", ["\U0001f600", {"\U0001f600": ["\U0001f600"]}, "\\ud800", "\\u0000"])
def test_characters_outside_the_bmp_and_escapes_spelled_out_are_text(value: Any) -> None:
    assert values.payload_json("payload", value) == REFERENCE.encode(value)
