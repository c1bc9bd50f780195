"""Job rows store specs without their default fields; reading fills them back in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conveyor.model import (
    Backoff,
    DefinitionSpec,
    RetryAction,
    RetryRule,
    RetryStrategy,
    spec_from_dict,
    spec_to_dict,
    spec_to_stored,
)

_text = st.text(max_size=8)
_rules = st.lists(
    st.builds(RetryRule, st.sampled_from(RetryAction), st.none() | _text, st.none() | _text), max_size=2
).map(tuple)
_retry = st.builds(
    RetryStrategy,
    attempts=st.integers(1, 10),
    evaluate_on_exit=_rules,
    backoff=st.sampled_from(Backoff),
    delay_seconds=st.sampled_from([0.0, 1.0, 2.5]),
    max_delay_seconds=st.sampled_from([1.0, 300.0]),
    jitter=st.booleans(),
)
_specs = st.builds(
    DefinitionSpec,
    command=st.none() | st.lists(_text, max_size=3).map(tuple),
    function=st.none() | _text,
    parameters=st.dictionaries(_text, _text, max_size=2),
    vcpus=st.sampled_from([0.25, 1.0, 2.0]),
    memory_mb=st.sampled_from([0, 1, 512]),
    timeout_seconds=st.none() | st.sampled_from([0, 0.5, 30]),
    retry=st.just(RetryStrategy()) | _retry,
    environment=st.dictionaries(_text, _text, max_size=2),
    follow_up_queues=st.lists(_text, max_size=2).map(tuple),
    working_dir=st.none() | _text,
)


@given(_specs)
def test_a_stored_spec_reads_back_equal(spec: DefinitionSpec) -> None:
    assert spec_from_dict(spec_to_stored(spec)) == spec


def test_a_default_spec_stores_only_what_differs() -> None:
    assert spec_to_stored(DefinitionSpec(function="m:f")) == {"function": "m:f"}
    stored = spec_to_stored(DefinitionSpec(command=("a",), retry=RetryStrategy(attempts=3)))
    assert stored == {"command": ["a"], "retry": {"attempts": 3}}


def test_the_stored_defaults_are_pinned() -> None:
    """Stored specs leave out what equals these defaults, and reading puts back the defaults
    of the code that reads. Changing a default here would silently change every queued job
    stored before: such a change needs a migration that writes the old value into the stored
    specs first, and then this test updated."""
    assert spec_from_dict({}) == DefinitionSpec()
    assert spec_to_dict(DefinitionSpec()) == {
        "command": None,
        "function": None,
        "parameters": {},
        "vcpus": 1.0,
        "memory_mb": 0,
        "timeout_seconds": None,
        "retry": {
            "attempts": 1,
            "evaluate_on_exit": [],
            "backoff": "exponential",
            "delay_seconds": 1.0,
            "max_delay_seconds": 300.0,
            "jitter": True,
        },
        "environment": {},
        "follow_up_queues": [],
        "working_dir": None,
    }
