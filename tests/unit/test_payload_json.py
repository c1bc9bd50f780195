"""The payload's JSON text: the engine's reused C encoder gives what ``json`` gives, and the
same errors."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from conveyor import errors
from conveyor.engine import validate

_SAMPLES: list[Any] = [
    None,
    True,
    0,
    -(2**70),
    2.5,
    1e300,
    'é\u2603\n"\\',
    [],
    {},
    {"args": [1, 2.0, "x"], "kwargs": {"k": None, "n": [[{"deep": True}]]}},
    {7: "int key", 2.5: "float key", None: "null key", False: "bool key"},
    ("tuple", "is", "a", "list"),
]


@pytest.mark.parametrize("value", _SAMPLES)
def test_payload_json_is_the_compact_ascii_json_of_the_value(value: Any) -> None:
    assert validate.payload_json("payload", value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (math.nan, "Out of range float"),
        ({"x": math.inf}, "Out of range float"),
        ({"x": object()}, "not JSON serializable"),
        ({1j: 1}, "keys must be"),
    ],
)
def test_a_payload_that_is_not_json_is_refused_naming_the_field(value: Any, says: str) -> None:
    with pytest.raises(errors.ValidationError, match=says) as raised:
        validate.payload_json("jobs[3].payload", value)
    assert raised.value.field == "jobs[3].payload"


def test_a_circular_payload_is_refused_as_circular() -> None:
    loop: list[Any] = []
    loop.append({"again": loop})
    with pytest.raises(errors.ValidationError, match="Circular reference"):
        validate.payload_json("payload", loop)


def test_a_circular_payload_does_not_spoil_the_next_one() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(errors.ValidationError):
        validate.payload_json("payload", loop)
    assert validate.payload_json("payload", {"a": [1]}) == '{"a":[1]}'
