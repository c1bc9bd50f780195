"""``{param}`` placeholders in commands and unique keys: plain names only."""

from __future__ import annotations

import pytest

from conveyor import errors
from conveyor.templates import render_command, render_text, template_fields


def test_plain_placeholders_and_doubled_braces_are_filled() -> None:
    argv = ("echo", "{day}", "{{literal}}", "a{n}b{n}")
    assert template_fields(argv) == {"day", "n"}
    assert render_command(argv, {"day": "mon", "n": "1"}) == ["echo", "mon", "{literal}", "a1b1"]
    assert render_text("unique_key", "sync-{user_1}", {"user_1": "7"}) == "sync-7"


@pytest.mark.parametrize(
    ("arg", "shown"),
    [
        ("{x.__class__}", "{x.__class__}"),  # attribute access
        ("{x[0]}", "{x[0]}"),  # item access
        ("{x:>999999999}", "{x:>999999999}"),  # a gigabyte of padding
        ("{x!r}", "{x!r}"),
        ("{}", "{}"),  # positional
        ("{0}", "{0}"),
    ],
)
def test_anything_but_a_plain_name_is_refused_naming_the_field(arg: str, shown: str) -> None:
    with pytest.raises(errors.ValidationError) as info:
        template_fields(("run", arg))
    assert (info.value.field, info.value.reason) == (
        "command",
        f"{arg!r}: {shown} is not a plain placeholder",
    )
    with pytest.raises(errors.ValidationError) as info:
        render_text("jobs[2].unique_key", arg, {"x": "v"})
    assert info.value.field == "jobs[2].unique_key"


def test_a_missing_parameter_and_a_lone_brace_are_refused() -> None:
    with pytest.raises(errors.ValidationError) as info:
        render_text("unique_key", "k-{who}", {})
    assert (info.value.field, info.value.reason) == (
        "unique_key",
        "cannot fill 'k-{who}': no parameter 'who'",
    )
    with pytest.raises(errors.ValidationError, match="Single '}'"):
        template_fields(("a}",))
    with pytest.raises(errors.ValidationError) as info:
        render_command(("echo", "{a}", "{b}"), {"a": "1"})
    assert info.value.field == "parameters.b"
