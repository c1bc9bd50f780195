"""``{param}`` substitution in command templates (pure)."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from conveyor import errors
from conveyor.model import Job

_PLACEHOLDER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ALLOWED = "{name} placeholders; {{ and }} for braces"


def template_fields(argv: tuple[str, ...], field: str = "command", *, indexed: bool = False) -> set[str]:
    """The ``{param}`` names an argv template uses. Only plain names: ``str.format_map``
    would also follow ``{x.attr}`` and ``{x[0]}`` and pad to any width (``{x:>999999999}``
    is a gigabyte), so those are refused naming ``field``, or with ``indexed`` the item
    (``spec.command[2]``)."""
    names: set[str] = set()
    for i, arg in enumerate(argv):
        try:
            for _, name, spec, conversion in string.Formatter().parse(arg):
                if name is None:
                    continue
                if not _PLACEHOLDER.fullmatch(name) or spec or conversion:
                    shown = (
                        "{"
                        + name
                        + (f"!{conversion}" if conversion else "")
                        + (f":{spec}" if spec else "")
                        + "}"
                    )
                    raise errors.ValidationError(
                        f"{field}[{i}]" if indexed else field,
                        f"{arg!r}: {shown} is not a plain placeholder",
                        _ALLOWED,
                    )
                names.add(name)
        except ValueError as exc:
            where = f"{field}[{i}]" if indexed else field
            raise errors.ValidationError(where, f"{arg!r}: {exc}", _ALLOWED) from None
    return names


def render_text(field: str, text: str, params: Mapping[str, str]) -> str:
    """``text`` with its ``{param}`` placeholders filled in; an error naming ``field`` for a
    placeholder that is not plain or not given."""
    missing = sorted(template_fields((text,), field) - set(params))
    if missing:
        raise errors.ValidationError(
            field, f"cannot fill {text!r}: no parameter {missing[0]!r}", "{param} of this job"
        )
    return text.format_map(params)


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
