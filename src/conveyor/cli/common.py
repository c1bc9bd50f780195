"""Argument helpers shared by the CLI commands."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from conveyor import errors
from conveyor.app import App
from conveyor.engine import validate


class Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--database",
        metavar="URL",
        help="sqlite:///path.db or postgresql://... (default: $CONVEYOR_DATABASE_URL or ./conveyor.db)",
    )
    p.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")


def open_app(args: argparse.Namespace, *, wait_for_database: bool = False) -> App:
    """The app of ``--database``. One-shot commands fail at the first refused connection;
    long-running ones (worker, server, scheduler) pass ``wait_for_database``."""
    return App.open(getattr(args, "database", None), wait_for_database=wait_for_database)


def key_values(field: str, items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise errors.ValidationError(
                field, f"{item!r} is not KEY=VALUE", "--" + field.replace("_", "-") + " name=value"
            )
        out[key] = value
    return out


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line in the CLI's own form (its usage block ran to a
    dozen lines before the message): ``conveyor: limit: 'abc' is not a whole number (see
    conveyor jobs list --help)``."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """As argparse's; a command (a parser without subcommands) refuses what it does not
        know itself, so the message points at its own --help, not at ``conveyor --help``."""
        ns, extras = super().parse_known_args(args, namespace)
        if extras and not any(isinstance(a, argparse._SubParsersAction) for a in self._actions):
            self.error("unrecognized arguments: " + " ".join(extras))
        return ns, extras

    def error(self, message: str) -> NoReturn:
        named = re.match(r"argument ([^:]+): (.*)", message, re.DOTALL)
        if named:  # "argument --older-than: ..." -> "older_than: ...", as other errors name fields
            flag = named.group(1).split("/")[-1].strip()
            message = f"{flag.lstrip('-').replace('-', '_')}: {named.group(2)}"
        self.exit(2, f"conveyor: {message} (see {self.prog} --help)\n")


def whole(text: str) -> int:
    """An integer flag: ASCII digits (``int()`` also takes "1_000" and other scripts' digits).
    Its range is the command's to check, naming the field."""
    if not re.fullmatch(r"\s*-?[0-9]{1,100}\s*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def json_arg(field: str, text: str | None) -> Any:
    """A JSON value given inline or as ``@file``."""
    if text is None:
        return None
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise errors.ValidationError(
                field, f"cannot read {text[1:]!r}: {exc.strerror}", "@path of a readable JSON file"
            ) from None
        except UnicodeDecodeError as exc:
            raise errors.ValidationError(
                field, f"{text[1:]!r} is not UTF-8 text (byte {exc.start})", "a UTF-8 JSON file"
            ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise errors.ValidationError(
            field, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "a JSON value"
        ) from None
    except RecursionError:  # the decoder recurses per level: a crash with a traceback before
        raise errors.ValidationError(
            field, "JSON nested too deeply to read", "a JSON value nested at most a few hundred levels deep"
        ) from None


def iso_time(field: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise errors.ValidationError(
            field, f"{text!r} is not an ISO-8601 time", "e.g. 2026-05-01T12:00:00+00:00"
        ) from None
    if value.tzinfo is None:
        raise errors.ValidationError(
            field, f"{text!r} has no UTC offset", "e.g. 2026-05-01T12:00:00+00:00 or ...Z"
        )
    return validate.moment(field, value)


def csv(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def prepare_process(log_level: str | None, imports: list[str] | None) -> None:
    """What a long-running command does first: logging, job modules importable from the cwd, --import."""
    if log_level is not None:
        logging.basicConfig(
            level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in imports or []:
        try:
            importlib.import_module(module)
        except (ImportError, ValueError) as exc:  # ValueError: an empty or relative name
            raise errors.ValidationError(
                "import", f"cannot import {module!r}: {exc}", "an importable module"
            ) from None


def command_argv(args: argparse.Namespace) -> list[str]:
    """The job's command given after ``--`` (empty when none)."""
    argv = list(args.argv or [])
    return argv[1:] if argv and argv[0] == "--" else argv


def merged(field: str, base: Any, extra: dict[str, Any], flag: str) -> dict[str, Any]:
    """``base`` (JSON given for ``field``) with ``extra`` (from ``flag``) over it: it must be an
    object then (``--retry 5 --attempts 3`` was a TypeError with a traceback)."""
    if base is None:
        return dict(extra)
    if not isinstance(base, dict):
        raise errors.ValidationError(
            field,
            f"{base!r} is not a JSON object, so {flag} cannot be added to it",
            f"an object, or no {flag}",
        )
    return {**base, **extra}


def job_fields(args: argparse.Namespace) -> dict[str, Any]:
    """What to run and how, from the flags ``submit`` and ``schedules create`` share."""
    retry: Any = json_arg("retry", getattr(args, "retry", None))
    if args.attempts is not None:
        retry = merged("retry", retry, {"attempts": args.attempts}, "--attempts")
    return {
        "queue": "default" if args.queue is None else args.queue,
        "definition": args.definition,
        "definition_revision": args.revision,
        "command": command_argv(args) or None,
        "function": args.function,
        "parameters": key_values("param", args.param),
        "payload": json_arg("payload", args.payload),
        "priority": 0 if args.priority is None else args.priority,
        "unique_key": args.unique_key,
        "timeout_seconds": args.timeout,
        "retry": retry,
    }
