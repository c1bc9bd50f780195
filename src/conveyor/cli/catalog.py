"""``conveyor queues|environments|definitions|workers ...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from conveyor import errors
from conveyor.cli import render
from conveyor.cli.common import (
    Formatter,
    add_db,
    command_argv,
    csv,
    json_arg,
    key_values,
    merged,
    open_app,
    whole,
)
from conveyor.engine.catalog import UNLIMITED


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # queues
    q = sub.add_parser(
        "queues",
        help="job queues: priority, enabled, compute environments",
        epilog="examples:\n  conveyor queues list\n  conveyor queues create speedy --priority 10\n  conveyor queues disable speedy",
        formatter_class=Formatter,
    )
    qs = q.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = qs.add_parser(
        "list",
        help="queues with job counts",
        epilog="example: conveyor queues list --json",
        formatter_class=Formatter,
    )
    add_db(p)
    p.set_defaults(func=queues_list)
    for name in ("create", "update"):
        p = qs.add_parser(
            name,
            help=f"{name} a queue",
            epilog="example: conveyor queues create speedy --priority 10 --environments spot,ondemand"
            if name == "create"
            else "example: conveyor queues update speedy --priority 20 --environments ondemand\n"
            "only the settings given change",
            formatter_class=Formatter,
        )
        add_db(p)
        p.add_argument("name")
        p.add_argument(
            "--priority",
            type=whole,
            default=None if name == "update" else 0,
            help="higher runs first (-1000..1000" + ("; default 0)" if name == "create" else ")"),
        )
        p.add_argument(
            "--environments",
            metavar="A,B",
            help="compute environments in fallback order (default: default)"
            if name == "create"
            else "compute environments in fallback order (replaces the list)",
        )
        p.add_argument(
            "--disabled",
            action="store_true",
            default=None,
            help="create disabled (jobs wait)"
            if name == "create"
            else "disable it (jobs wait; `conveyor queues enable` enables it again)",
        )
        p.set_defaults(func=queues_put, action_name=name)
    for name in ("enable", "disable", "delete"):
        p = qs.add_parser(
            name,
            help=f"{name} a queue",
            epilog=f"example: conveyor queues {name} speedy",
            formatter_class=Formatter,
        )
        add_db(p)
        p.add_argument("name")
        p.set_defaults(func=queues_toggle, action_name=name)
    # environments
    e = sub.add_parser(
        "environments",
        help="compute environments: capacity served by workers",
        epilog="examples:\n  conveyor environments list\n  conveyor environments create gpu --max-vcpus 8",
        formatter_class=Formatter,
    )
    es = e.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = es.add_parser(
        "list",
        help="environments with capacity in use and live workers",
        epilog="example: conveyor environments list",
        formatter_class=Formatter,
    )
    add_db(p)
    p.set_defaults(func=envs_list)
    for name in ("create", "update"):
        p = es.add_parser(
            name,
            help=f"{name} a compute environment",
            epilog="example: conveyor environments create gpu --max-vcpus 8 --max-memory 32768"
            if name == "create"
            else "example: conveyor environments update gpu --max-vcpus 16\nonly the settings given change",
            formatter_class=Formatter,
        )
        add_db(p)
        p.add_argument("name")
        p.add_argument(
            "--max-vcpus",
            type=_limit(float),
            help="vCPUs of running jobs at most, or 'unlimited'"
            + (" (default: unlimited)" if name == "create" else ""),
        )
        p.add_argument(
            "--max-memory",
            type=_limit(whole),
            metavar="MB",
            help="memory of running jobs at most, or 'unlimited'"
            + (" (default: unlimited)" if name == "create" else ""),
        )
        p.add_argument(
            "--disabled",
            action="store_true",
            default=None,
            help="create disabled (no job starts in it)"
            if name == "create"
            else "disable it (no job starts in it; `conveyor environments enable` enables it again)",
        )
        p.set_defaults(func=envs_put, action_name=name)
    for name in ("enable", "disable", "delete"):
        p = es.add_parser(
            name,
            help=f"{name} an environment",
            epilog=f"example: conveyor environments {name} gpu",
            formatter_class=Formatter,
        )
        add_db(p)
        p.add_argument("name")
        p.set_defaults(func=envs_toggle, action_name=name)
    # definitions
    d = sub.add_parser(
        "definitions",
        help="job definitions: named, versioned templates",
        epilog="examples:\n  conveyor definitions register resize -- convert {src} -resize 50% {dst}\n  conveyor definitions list",
        formatter_class=Formatter,
    )
    ds = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = ds.add_parser(
        "register",
        help="register a definition (a new revision when it changed)",
        epilog=(
            "examples:\n"
            "  conveyor definitions register resize --vcpus 2 --memory 512 --attempts 3 -- convert {src} -resize 50% {dst}\n"
            "  conveyor definitions register report --function myapp.reports:build --timeout 600\n"
            "  conveyor definitions register sync --file sync.json"
        ),
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("name")
    p.add_argument(
        "--file",
        metavar="FILE",
        help="the definition as JSON: its fields as `show --json` prints them (name, revision, active, created_at ignored)",
    )
    p.add_argument("--function", metavar="MODULE:CALLABLE")
    p.add_argument("--param", action="append", metavar="NAME=DEFAULT", help="default parameter (repeat)")
    p.add_argument("--vcpus", type=float)
    p.add_argument("--memory", type=whole, metavar="MB")
    p.add_argument("--timeout", type=float, metavar="SECONDS")
    p.add_argument("--attempts", type=whole)
    p.add_argument("--retry", metavar="JSON", help="retry strategy as JSON")
    p.add_argument("--env", action="append", metavar="NAME=VALUE")
    p.add_argument(
        "--follow-up-queue",
        action="append",
        metavar="QUEUE",
        help="queue (or glob) its jobs may submit to (repeat)",
    )
    p.add_argument("--working-dir", metavar="DIR")
    # not REMAINDER: after the NAME positional it would swallow the options too (--param, --vcpus...);
    # main() hands over everything after `--` instead
    p.add_argument(
        "argv", nargs="*", metavar="-- ARGV", help="command template with {param} placeholders, after --"
    )
    p.set_defaults(func=defs_register)
    p = ds.add_parser(
        "list",
        help="active definitions (--all: every revision)",
        epilog="example: conveyor definitions list --all",
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=defs_list)
    p = ds.add_parser(
        "show",
        help="one definition (default: its latest revision, active or deactivated)",
        epilog="example: conveyor definitions show resize --revision 2",
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("name")
    p.add_argument("--revision", type=whole)
    p.set_defaults(func=defs_show)
    p = ds.add_parser(
        "deactivate",
        help="no new jobs from this definition, any revision (registering it again re-activates it)",
        epilog="example: conveyor definitions deactivate resize",
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("name")
    p.set_defaults(func=defs_deactivate)
    # workers
    w = sub.add_parser(
        "workers",
        help="workers and their heartbeats",
        epilog="example: conveyor workers list --all",
        formatter_class=Formatter,
    )
    ws = w.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = ws.add_parser(
        "list",
        help="live workers (--all: also stopped ones)",
        epilog="example: conveyor workers list --all",
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=workers_list)


def queues_list(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        queues = app.store.queue_list()
        counts = app.store.queue_counts()
        if args.json:
            render.emit_json([{**render.plain(q), "jobs": counts.get(q.name, {})} for q in queues])
            return 0
        render.table(
            ["name", "priority", "enabled", "environments", "runnable", "running", "failed"],
            [
                (
                    q.name,
                    q.priority,
                    "yes" if q.enabled else "NO",
                    ",".join(q.environments),
                    counts.get(q.name, {}).get("RUNNABLE", 0),
                    counts.get(q.name, {}).get("RUNNING", 0) + counts.get(q.name, {}).get("STARTING", 0),
                    counts.get(q.name, {}).get("FAILED", 0),
                )
                for q in queues
            ],
        )
    return 0


def queues_put(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        envs = csv(args.environments)  # "" or ",": none, refused as an empty list is (not the default)
        enabled = None if args.disabled is None else not args.disabled
        if args.action_name == "create":
            if app.store.queue_get(args.name) is not None:  # create never overwrites
                raise errors.Conflict(
                    f"queue {args.name!r} already exists; change it with `conveyor queues update {args.name}`"
                )
            queue = app.catalog.put_queue(
                args.name,
                priority=args.priority,
                enabled=enabled if enabled is not None else True,
                environments=("default",) if envs is None else envs,
            )
        else:
            queue = app.catalog.update_queue(
                args.name, priority=args.priority, enabled=enabled, environments=envs
            )
        _print(
            args,
            queue,
            f"queue {queue.name}: priority {queue.priority}, environments {','.join(queue.environments)}",
        )
    return 0


def queues_toggle(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        if args.action_name == "delete":
            app.catalog.delete_queue(args.name)
            _print(args, {"queue": args.name, "deleted": True}, f"queue {args.name} deleted")
            return 0
        queue = app.catalog.update_queue(args.name, enabled=args.action_name == "enable")
        _print(args, queue, f"queue {queue.name}: {'enabled' if queue.enabled else 'disabled'}")
    return 0


def envs_list(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        envs = app.store.environment_list()
        usage = app.store.environment_usage(app.clock.now())
        if args.json:
            render.emit_json([{**render.plain(e), "usage": render.plain(usage.get(e.name))} for e in envs])
            return 0
        rows = []
        for e in envs:
            u = usage.get(e.name)
            rows.append(
                (
                    e.name,
                    "yes" if e.enabled else "NO",
                    f"{u.used_vcpus:g}/{e.max_vcpus:g}"
                    if u and e.max_vcpus is not None
                    else f"{u.used_vcpus if u else 0:g}/unlimited",
                    f"{u.used_memory_mb if u else 0}/{e.max_memory_mb}"
                    if e.max_memory_mb is not None
                    else "unlimited",
                    u.running if u else 0,
                    u.live_workers if u else 0,
                )
            )
        render.table(["name", "enabled", "vcpus used", "memory used (MB)", "running", "workers"], rows)
    return 0


def _limit(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """A capacity flag: a number, or ``unlimited`` (``UNLIMITED``)."""

    def parse(text: str) -> Any:
        if text.strip().lower() == "unlimited":
            return UNLIMITED
        try:
            return kind(text)
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'unlimited'") from None

    return parse


def envs_put(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        enabled = None if args.disabled is None else not args.disabled
        if args.action_name == "create":
            if app.store.environment_get(args.name) is not None:  # create never overwrites
                raise errors.Conflict(
                    f"environment {args.name!r} already exists;"
                    f" change it with `conveyor environments update {args.name}`"
                )
            env = app.catalog.put_environment(
                args.name,
                max_vcpus=None if args.max_vcpus is UNLIMITED else args.max_vcpus,
                max_memory_mb=None if args.max_memory is UNLIMITED else args.max_memory,
                enabled=enabled if enabled is not None else True,
            )
        else:
            env = app.catalog.update_environment(
                args.name, max_vcpus=args.max_vcpus, max_memory_mb=args.max_memory, enabled=enabled
            )
        _print(
            args,
            env,
            f"environment {env.name}: max {env.max_vcpus or 'unlimited'} vCPUs, {env.max_memory_mb or 'unlimited'} MB",
        )
    return 0


def envs_toggle(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        if args.action_name == "delete":
            app.catalog.delete_environment(args.name)
            _print(args, {"environment": args.name, "deleted": True}, f"environment {args.name} deleted")
            return 0
        env = app.catalog.update_environment(args.name, enabled=args.action_name == "enable")
        _print(args, env, f"environment {env.name}: {'enabled' if env.enabled else 'disabled'}")
    return 0


# the fields `definitions show --json` puts beside a definition's spec
SHOWN_ONLY = frozenset({"name", "revision", "active", "created_at"})


def defs_register(args: argparse.Namespace) -> int:
    spec: dict[str, Any] = {}
    if args.file:
        loaded = json_arg("file", "@" + args.file)
        if not isinstance(loaded, dict):
            raise errors.ValidationError("file", "must hold a JSON object")
        # what `definitions show --json` adds to the spec is not the spec: its output, edited
        # or not, registers as it is (under the NAME given here)
        spec.update((k, v) for k, v in loaded.items() if k not in SHOWN_ONLY)
    argv = command_argv(args)
    if argv:
        spec["command"] = argv
    if args.function:
        spec["function"] = args.function
    if args.param:
        spec["parameters"] = merged(
            "parameters", spec.get("parameters"), key_values("param", args.param), "--param"
        )
    for key, value in (
        ("vcpus", args.vcpus),
        ("memory_mb", args.memory),
        ("timeout_seconds", args.timeout),
        ("working_dir", args.working_dir),
    ):
        if value is not None:
            spec[key] = value
    retry = json_arg("retry", args.retry)
    if retry is not None:
        spec["retry"] = retry
    if args.attempts is not None:
        spec["retry"] = merged("retry", spec.get("retry"), {"attempts": args.attempts}, "--attempts")
    if args.env:
        spec["environment"] = merged(
            "environment", spec.get("environment"), key_values("env", args.env), "--env"
        )
    if args.follow_up_queue:
        spec["follow_up_queues"] = args.follow_up_queue
    with open_app(args) as app:
        definition, created = app.catalog.register_definition(args.name, spec)
        _print(
            args,
            definition,
            f"definition {definition.name} revision {definition.revision}"
            + ("" if created else " (unchanged)"),
        )
    return 0


def defs_list(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        defs = app.store.definition_list(include_inactive=args.all)
        if args.json:
            render.emit_json(defs)
            return 0
        render.table(
            ["name", "revision", "active", "runs", "vcpus", "memory", "attempts", "timeout"],
            [
                (
                    d.name,
                    d.revision,
                    "yes" if d.active else "no",
                    d.spec.function or " ".join(d.spec.command or ()),
                    f"{d.spec.vcpus:g}",
                    d.spec.memory_mb or "",
                    d.spec.retry.attempts,
                    f"{d.spec.timeout_seconds:g}" if d.spec.timeout_seconds else "",
                )
                for d in defs
            ],
        )
    return 0


def defs_show(args: argparse.Namespace) -> int:
    from conveyor.model import spec_to_dict

    with open_app(args) as app:
        d = app.catalog.definition(args.name, args.revision)
        data = {
            "name": d.name,
            "revision": d.revision,
            "active": d.active,
            "created_at": d.created_at,
            **spec_to_dict(d.spec),
        }
        render.emit_json(data)  # the spec is JSON, with or without --json
        if not d.active and not args.json and args.revision is None:
            sys.stderr.write(
                f"conveyor: definition {d.name} is deactivated (no new jobs); register it again to re-activate it\n"
            )
    return 0


def defs_deactivate(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        changed = app.catalog.deactivate_definition(args.name)
        _print(
            args,
            {"definition": args.name, "deactivated": True, "changed": changed},
            f"definition {args.name} " + ("deactivated" if changed else "was already inactive"),
        )
    return 0


def workers_list(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        workers = app.store.worker_list(app.clock.now(), include_stopped=args.all)
        if args.json:
            render.emit_json(workers)
            return 0
        render.table(
            ["id", "environment", "queues", "concurrency", "running", "heartbeat", "stopped"],
            [
                (
                    w.id,
                    w.environment,
                    ",".join(w.queues) or "(all)",
                    w.concurrency,
                    w.running,
                    render.when(w.heartbeat_at),
                    render.when(w.stopped_at),
                )
                for w in workers
            ],
        )
    return 0


def _print(args: argparse.Namespace, value: Any, text: str) -> None:
    if args.json:
        render.emit_json(value)
    else:
        sys.stdout.write(text + "\n")
