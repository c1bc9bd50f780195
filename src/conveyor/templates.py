"""``{param}`` substitution in command templates (pure)."""

from __future__ import annotations

import string
from collections.abc import Mapping

from conveyor import errors
from conveyor.model import Job


def template_fields(argv: tuple[str, ...]) -> set[str]:
    """The ``{param}`` names an argv template uses."""
    names: set[str] = set()
    for arg in argv:
        try:
            for _, name, _, _ in string.Formatter().parse(arg):
                if name is not None:
                    names.add(name)
        except ValueError as exc:
            raise errors.ValidationError(
                "command", f"{arg!r}: {exc}", "{name} placeholders; {{ and }} for braces"
            ) from None
    return names


def render_command(argv: tuple[str, ...], params: Mapping[str, str]) -> list[str]:
    """Substitute ``{param}`` in every argument. Missing parameters are an error naming them."""
    missing = sorted(template_fields(argv) - set(params))
    if missing:
        raise errors.ValidationError(
            f"parameters.{missing[0]}",
            "is required by the command but not given",
            ", ".join(f"--param {m}=..." for m in missing),
        )
    return [arg.format_map(params) for arg in argv]


def render_argv(job: Job) -> list[str]:
    assert job.spec.command is not None
    return render_command(job.spec.command, job.spec.parameters)
