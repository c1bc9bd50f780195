"""Values as the store holds them, checked where they come in: Unicode text without NUL
(``not_text``), JSON the store can hold and read back (``payload_json``), a function call's
payload (``call_payload``), a value cut short for an error message (``shown``), a follow-up
queue pattern that is a glob (``is_glob``).

Below the engine and the worker, which both check with them: a submission's payload, a job's
result and the reasons a worker reports."""

from __future__ import annotations

import json
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from conveyor import errors


def shown(value: Any, limit: int = 40) -> str:
    """A value for an error message, cut to about ``limit`` characters (a 5,000-digit number
    or a megabyte of text is not repeated back whole). ``true``, ``false`` and ``null`` are
    written as JSON writes them, also inside lists and objects, on every path: the value came
    as JSON (HTTP, --from-file) or stands for it (the SDK). Strings keep Python's quotes
    (``'abc'``), as in every other message; tuples are written as lists."""
    out: list[str] = []
    _spell(value, out, limit + 1)
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _spell(value: Any, out: list[str], room: int) -> int:
    """Append ``value``'s text to ``out`` until ``room`` characters are used; the room left.
    Each level of nesting takes room, so a value that contains itself ends too."""
    if room <= 0:
        return room
    if value is True or value is False or value is None:
        text = "true" if value is True else "false" if value is False else "null"
    elif isinstance(value, int):
        text = repr(value) if abs(value) < 10**room else "a number"
    elif isinstance(value, str):
        text = repr(value if len(value) <= room else value[:room])
    elif isinstance(value, list | tuple | dict):
        out.append("[" if not isinstance(value, dict) else "{")
        room -= 1
        for i, item in enumerate(value.items() if isinstance(value, dict) else value):
            if room <= 0:
                return room
            if i:
                out.append(", ")
                room -= 2
            if isinstance(value, dict):
                room = _spell(item[0], out, room)
                out.append(": ")
                room = _spell(item[1], out, room - 2)
            else:
                room = _spell(item, out, room)
        out.append("]" if not isinstance(value, dict) else "}")
        return room - 1
    else:
        text = repr(value)
    out.append(text)
    return room - len(text)


def not_text(value: str) -> str | None:
    """What makes one string not Unicode text without NUL ("a NUL character", "a lone UTF-16
    surrogate"), or None: a lone surrogate (from a JSON ``"\\ud800"`` or an argument that was
    not UTF-8) encodes nowhere, and a NUL ends a C string (argv, the environment) and is
    refused by PostgreSQL's jsonb."""
    if "\x00" in value:
        return "a NUL character"
    if value.isascii():  # a flag of the string: no encoding needed
        return None
    try:
        value.encode()
    except UnicodeEncodeError:
        return "a lone UTF-16 surrogate (\\ud800-\\udfff escapes come in pairs)"
    return None


def is_text(value: Any) -> bool:
    """Whether every string in ``value`` (a str, or lists, tuples and dicts of them, keys
    too) passes ``not_text``."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if not_text(v) is not None:
                return False
        elif isinstance(v, dict):
            stack.extend(v)
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return True


NOT_TEXT = "Unicode text without NUL"  # what is allowed instead


def text(field: str, value: Any) -> None:
    """``is_text(value)``, or the error naming the string at fault by its place, as the HTTP
    schema names it on every path: ``command[1]: contains a NUL character``, ``parameters: has
    a member name that contains a NUL character``. ``field`` names ``value``; an empty one
    names members by their own names (a JSON body's), the value itself ``body``."""
    if is_text(value):
        return
    # (where v is, v, the member name it has and where its object is): in document order
    stack: list[tuple[str, Any, Any, str]] = [(field, value, None, "")]
    while stack:
        at, v, key, owner = stack.pop()
        problem = not_text(key) if isinstance(key, str) else None
        if problem is not None:
            raise errors.ValidationError(
                owner or "body", f"has a member name that contains {problem}", NOT_TEXT
            )
        if isinstance(v, str):
            problem = not_text(v)
            if problem is not None:
                raise errors.ValidationError(at or "body", f"contains {problem}", NOT_TEXT)
        elif isinstance(v, dict):
            stack.extend((f"{at}.{k}" if at else str(k), item, k, at) for k, item in reversed(v.items()))
        elif isinstance(v, list | tuple):
            stack.extend((f"{at}[{i}]", item, None, at) for i, item in reversed(list(enumerate(v))))


def _not_text(field: str) -> errors.ValidationError:
    """A value (a job's result) that holds a string that is not Unicode text, as a whole."""
    return errors.ValidationError(field, "holds a NUL or a lone surrogate (not Unicode text)", NOT_TEXT)


# one encoder: json.dumps with options builds a new one per call (~0.7 µs of a ~2 µs payload)
_PAYLOAD_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _c_encoder(markers: dict[int, Any] | None) -> Any:
    """What ``_PAYLOAD_ENCODER.encode`` ends up calling (the C encoder), without the Python
    around it (~0.7 µs); None where there is no C encoder. ``markers``: the dict in which it
    notes the containers it is inside, to refuse one that contains itself; None: no check."""
    if c_make_encoder is None:
        return None
    return c_make_encoder(
        markers, _PAYLOAD_ENCODER.default, encode_basestring_ascii, None, ":", ",", False, False, False
    )


# one C encoder for every payload, without the check for circular references: made per call,
# with its markers dict, it was ~1 µs of a bulk submission's ~20 µs a job. With no markers
# it keeps no state between calls (threads share it). A payload that contains itself then
# recurses until RecursionError, as one nested too deeply does; payload_json tells the two
# apart by encoding once more with the check.
_C_ENCODER = _c_encoder(None)


def call_payload(field: str, value: Any) -> None:
    """A function job's payload shaped as a call, ``{"args": [...], "kwargs": {...}}`` (either
    key alone too), must hold a list and an object there: ``{"args": "abc"}`` was called as
    ``fn("a", "b", "c")``. Any other payload is the one positional argument."""
    if not isinstance(value, dict) or not value or not set(value) <= {"args", "kwargs"}:
        return
    args, kwargs = value.get("args"), value.get("kwargs")
    if args is not None and not isinstance(args, list | tuple):
        raise errors.ValidationError(
            f"{field}.args", f"{shown(args)} is not a list", '{"args": [1, 2], "kwargs": {"name": "x"}}'
        )
    if kwargs is not None and not isinstance(kwargs, dict):
        raise errors.ValidationError(
            f"{field}.kwargs",
            f"{shown(kwargs)} is not an object",
            '{"args": [1, 2], "kwargs": {"name": "x"}}',
        )


def payload_json(field: str, value: Any, *, named: bool = False) -> str:
    """The payload as compact JSON text; a clear error when it is not JSON, or holds a string
    that is not Unicode text (``is_text``: the text is ASCII, so a character outside the BMP,
    a lone surrogate and a NUL all show as escapes: only then are the strings looked at).
    ``named``: that string is named by its place (``text``: a submission's payload, as HTTP
    names it), else the value as a whole (a job's result)."""
    try:
        if _C_ENCODER is None:
            out: str = _PAYLOAD_ENCODER.encode(value)
        else:
            try:
                out = "".join(_C_ENCODER(value, 0))
            except RecursionError:
                out = "".join(_c_encoder({})(value, 0))  # ValueError when it contains itself
        if "\\u" in out and ("\\ud" in out or "\\u0000" in out) and not is_text(value):
            if named:
                text(field, value)
            raise _not_text(field)
        return out
    except (TypeError, ValueError) as exc:
        raise errors.ValidationError(
            field,
            f"is not JSON-serialisable: {exc}",
            "JSON values: objects, lists, strings, numbers, booleans, null",
        ) from None
    except RecursionError:
        raise errors.ValidationError(
            field, "is nested too deeply to store", "JSON nested at most a few hundred levels deep"
        ) from None


def is_glob(pattern: str) -> bool:
    """Whether ``pattern`` (a follow-up queue) is a glob rather than one queue's name."""
    return any(ch in pattern for ch in "*?[")
