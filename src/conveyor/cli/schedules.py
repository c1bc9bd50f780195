"""``conveyor schedules ...`` and ``conveyor scheduler``."""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

from conveyor import errors, expressions, scheduling, wire
from conveyor.cli import render
from conveyor.cli.common import (
    Formatter,
    Parser,
    add_db,
    command_argv,
    iso_time,
    job_fields,
    json_arg,
    open_app,
    whole,
)
from conveyor.engine.jobs import SubmitRequest
from conveyor.engine.schedules import SchedulerConfig, ScheduleRequest
from conveyor.scheduling import Schedule, ScheduleState

CREATE_EPILOG = """examples:
  conveyor schedules create nightly --expression 'cron(0 2 * * ? *)' --tz Europe/Berlin -- /opt/jobs/backup.sh {scheduled_time}
  conveyor schedules create sync --expression 'rate(15 minutes)' --queue speedy --definition sync --param client=7
  conveyor schedules create report --expression '0 * * * *' --window 10 --overlap SKIP --definition report
  conveyor schedules create once --expression 'at(2026-12-24T18:00:00)' --tz Europe/Paris --delete-after -- /opt/jobs/gifts.sh
  conveyor schedules create multi --expression @daily --target-json '{"queue": "a", "command": ["/opt/jobs/a.sh"]}' \\
      --target-json '{"queue": "b", "definition": "b", "parameters": {"day": "{scheduled_time}"}}'
{scheduled_time} (the nominal time, ISO-8601 in the schedule's zone) and {schedule} (its
name) can be used in the command, parameters and the unique key.
policies: --overlap ALLOW | SKIP (not while the previous fire's jobs are unfinished) | REPLACE
(cancel/terminate them first); --catch-up ONCE (default: late fires fold into one) | SKIP | ALL
(each late fire, at most 100). A fire more than 60 s after its due time is late.
"""

UPDATE_EPILOG = """examples:
  conveyor schedules update nightly --expression 'cron(30 2 * * ? *)'
  conveyor schedules update report --window 15 --overlap SKIP
  conveyor schedules update sync --end none --tag clients --tag hourly
  conveyor schedules update nightly --queue slow -- /opt/jobs/backup.sh --full {scheduled_time}
Only the settings given change; next fire times are recomputed from now. Any target flag
replaces all the targets. --start, --end and --deadline take 'none' to clear them.
"""

NEXT_EPILOG = """examples:
  conveyor schedules next 'cron(0 9 ? * MON-FRI *)' --tz America/New_York --count 3
  conveyor schedules next '*/15 * * * *' --after 2026-03-29T00:00:00+01:00 --tz Europe/Berlin
"""


class _CommandAfterDashes(Parser):
    """Everything after ``--`` is the command (``argv``), even after a positional ``NAME``.

    (argparse alone fills an optional positional list too early: ``create NAME -x E -- cmd``
    would fail.)"""

    def parse_known_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        argv: list[str] = []
        if args is not None and "--" in args:
            cut = args.index("--")
            args, argv = list(args[:cut]), list(args[cut + 1 :])
        ns, extras = super().parse_known_args(args, namespace)
        ns.argv = argv
        return ns, extras


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser(
        "schedules",
        help="cron/rate/at schedules that fire jobs",
        epilog=(
            "examples:\n"
            "  conveyor schedules next 'cron(0 9 ? * MON-FRI *)' --tz America/New_York --count 3\n"
            "  conveyor schedules list"
        ),
        formatter_class=Formatter,
    )
    ss = s.add_subparsers(dest="action", required=True, metavar="ACTION")
    plain_parser = ss._parser_class
    ss._parser_class = _CommandAfterDashes
    p = ss.add_parser(
        "create",
        help="create a schedule",
        description="Create a schedule: an expression, a zone, and the job(s) each fire submits.",
        epilog=CREATE_EPILOG,
        formatter_class=Formatter,
        usage="%(prog)s NAME --expression EXPR [options] [-- COMMAND ...]",
    )
    add_db(p)
    p.add_argument("name")
    _settings(p, update=False)
    p.set_defaults(func=cmd_create)
    p = ss.add_parser(
        "update",
        help="change a schedule: only the settings given change",
        description=(
            "Change a schedule's settings; the ones not given keep their values. Next fire times"
            " are recomputed from now. Any target flag (--queue, --definition, --function,"
            " --param, ..., -- COMMAND, --target-json) replaces all the targets."
        ),
        epilog=UPDATE_EPILOG,
        formatter_class=Formatter,
        usage="%(prog)s NAME [options] [-- COMMAND ...]",
    )
    add_db(p)
    p.add_argument("name")
    _settings(p, update=True)
    p.set_defaults(func=cmd_update)
    ss._parser_class = plain_parser

    p = ss.add_parser(
        "list",
        help="schedules with their next due time",
        epilog="example: conveyor schedules list --state PAUSED",
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("--state", type=str.upper, help="ACTIVE, PAUSED or FINISHED")
    p.add_argument("--tag", help="only schedules with this tag")
    p.add_argument("--after", metavar="NAME", help="page on: names after this one")
    p.add_argument("--limit", type=whole, default=100)
    p.set_defaults(func=cmd_list)

    p = ss.add_parser(
        "show",
        help="one schedule: settings, next fires, recent history",
        epilog="example: conveyor schedules show nightly",
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("name")
    p.set_defaults(func=cmd_show)

    for name, helptext in (
        ("pause", "stop firing (idempotent)"),
        ("resume", "fire again from now on; paused time is not caught up"),
        ("delete", "delete a schedule and its history"),
    ):
        p = ss.add_parser(
            name,
            help=helptext,
            epilog=f"example: conveyor schedules {name} nightly",
            formatter_class=Formatter,
        )
        add_db(p)
        p.add_argument("name")
        p.set_defaults(func=cmd_action, action_name=name)

    p = ss.add_parser(
        "history",
        help="fires and skips of a schedule, newest first",
        epilog="example: conveyor schedules history nightly --limit 20",
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("name")
    p.add_argument("--limit", type=whole, default=50)
    p.set_defaults(func=cmd_history)

    p = ss.add_parser(
        "next",
        help="print the next fire times of an expression (no database needed)",
        description="Print the next N fire times, one ISO-8601 timestamp with offset per line, in the zone.",
        epilog=NEXT_EPILOG,
        formatter_class=Formatter,
    )
    p.add_argument("expression", metavar="EXPR")
    p.add_argument("--tz", default="UTC", metavar="ZONE", help="IANA time zone (default UTC)")
    p.add_argument("--after", metavar="ISO-TIME", help="start after this time (default: now)")
    p.add_argument("--count", "-n", type=whole, default=10, help="how many (default 10, at most 10000)")
    p.add_argument("--json", action="store_true", help="a JSON list instead of lines")
    p.set_defaults(func=cmd_next)

    p = ss.add_parser(
        "load",
        help="fires per minute over the coming hours, with and without windows",
        epilog="example: conveyor schedules load --hours 6",
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("--hours", type=float, default=24.0, help="how far ahead (default 24)")
    p.add_argument("--rows", type=whole, default=48, help="chart rows (default 48)")
    p.set_defaults(func=cmd_load)

    r = sub.add_parser(
        "scheduler",
        help="fire due schedules (also part of `conveyor server`); run as many as you like",
        epilog=(
            "examples:\n"
            "  conveyor scheduler                       until SIGTERM/SIGINT\n"
            "  conveyor scheduler --once                fire what is due now, then exit\n"
            "Every due time fires exactly once however many schedulers run against the database."
        ),
        formatter_class=Formatter,
    )
    add_db(r)
    r.add_argument("--batch-size", type=whole, default=500, help="schedules per transaction (default 500)")
    r.add_argument("--once", action="store_true", help="fire what is due now and exit")
    r.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    r.set_defaults(func=cmd_scheduler)


def _settings(p: argparse.ArgumentParser, *, update: bool) -> None:
    """The flags of ``create``; for ``update`` none is required and none has a default, so
    what was not given is absent (None) and keeps its stored value."""

    def default(value: Any) -> Any:
        return None if update else value

    clear = " ('none' clears it)" if update else ""
    p.add_argument(
        "--expression",
        "-x",
        required=not update,
        metavar="EXPR",
        help="cron(...), rate(...), at(...), a crontab line or @hourly/@daily/...",
    )
    p.add_argument("--tz", default=default("UTC"), metavar="ZONE", help="IANA time zone (default UTC)")
    p.add_argument(
        "--target-json",
        action="append",
        metavar="JSON|@FILE",
        help="a target as a submission object (repeat for several)",
    )
    p.add_argument("--queue", "-q", help="target queue for the shortcut (default: default)")
    p.add_argument("--definition", "-d", help="target job definition")
    p.add_argument("--revision", type=whole, help="a specific revision of the definition")
    p.add_argument("--function", "-f", metavar="MODULE:CALLABLE", help="target Python callable")
    p.add_argument("--param", "-p", action="append", metavar="NAME=VALUE", help="job parameter (repeat)")
    p.add_argument("--payload", metavar="JSON|@FILE", help="JSON payload of each job")
    p.add_argument("--priority", type=whole, help="job priority within the queue (default 0)")
    p.add_argument(
        "--unique-key", metavar="KEY", help="at most one unfinished job per key, e.g. sync:{schedule}"
    )
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="kill each attempt after this long")
    p.add_argument("--attempts", type=whole, help="attempts in all, 1..10")
    p.add_argument(
        "--window", type=float, default=default(0), metavar="MIN", help="flexible window in minutes (0-1440)"
    )
    p.add_argument(
        "--overlap", default=default("ALLOW"), type=str.upper, metavar="POLICY", help="ALLOW, SKIP or REPLACE"
    )
    p.add_argument(
        "--catch-up",
        default=default("ONCE"),
        type=str.upper,
        metavar="POLICY",
        help="ONCE (default), SKIP or ALL",
    )
    p.add_argument(
        "--deadline",
        type=_number_or_none if update else float,
        metavar="SECONDS",
        help="never fire more than this late" + clear,
    )
    p.add_argument(
        "--start", metavar="ISO-TIME", help="no fire before this time (rate() counts from it)" + clear
    )
    p.add_argument("--end", metavar="ISO-TIME", help="no fire after this time" + clear)
    p.add_argument("--description", default=default(""), help="what it is for")
    p.add_argument("--tag", action="append", help="tag (repeat)" + ("; replaces the tags" if update else ""))
    if update:
        p.add_argument("--paused", action="store_true", help="also pause it (resume: `schedules resume`)")
        p.add_argument(
            "--delete-after",
            action=argparse.BooleanOptionalAction,
            help="at() only: delete the schedule once it fired",
        )
    else:
        p.add_argument("--paused", action="store_true", help="create paused")
        p.add_argument(
            "--delete-after", action="store_true", help="at() only: delete the schedule once it fired"
        )


_NONE = "none"


def _number_or_none(text: str) -> float | str:
    if text.strip().lower() == _NONE:
        return _NONE
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (or 'none')") from None


# -- create ---------------------------------------------------------------------------------
def _targets(args: argparse.Namespace) -> list[SubmitRequest]:
    targets = [
        wire.request_from_dict(json_arg(f"targets[{i}]", text), f"targets[{i}]")
        for i, text in enumerate(args.target_json or [])
    ]
    argv = command_argv(args)
    if argv or args.definition or args.function or not targets:
        targets.append(SubmitRequest(**job_fields(args)))
    else:  # the shortcut's flags shape only the shortcut's target: beside JSON targets they were ignored
        given = [f for f in _TARGET_FLAGS if f != "target_json" and getattr(args, f, None) not in (None, [])]
        if given:
            raise errors.ValidationError(
                "target_json",
                f"is given with --{given[0].replace('_', '-')}, which shapes only a target given by a"
                " command, --function or --definition",
                "that field inside the JSON target",
            )
    return targets


def cmd_create(args: argparse.Namespace) -> int:
    req = ScheduleRequest(
        name=args.name,
        expression=args.expression,
        targets=_targets(args),
        timezone=args.tz,
        start_at=iso_time("start", args.start),
        end_at=iso_time("end", args.end),
        window_minutes=args.window,
        overlap=args.overlap,
        catch_up=args.catch_up,
        deadline_seconds=args.deadline,
        delete_after=args.delete_after,
        description=args.description,
        tags=args.tag or (),
        enabled=not args.paused,
    )
    with open_app(args) as app:
        s = app.schedules.create(req)
        if args.json:
            render.emit_json(_plain(s))
        else:
            due = (
                "paused"
                if s.state is ScheduleState.PAUSED
                else f"next due {_local(s.next_due_at, s.timezone)}"
            )
            sys.stdout.write(f"schedule {s.name} created: {s.expression} ({s.timezone}), {due}\n")
    return 0


# -- update ---------------------------------------------------------------------------------
_TARGET_FLAGS = ("target_json", "definition", "revision", "function", "param", "payload", "unique_key",
                 "timeout", "attempts", "queue", "priority")  # fmt: skip


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, as ``ScheduleService.update`` takes them."""
    changes: dict[str, Any] = {}
    simple = {
        "expression": "expression",
        "tz": "timezone",
        "window": "window_minutes",
        "overlap": "overlap",
        "catch_up": "catch_up",
        "description": "description",
        "delete_after": "delete_after",
    }
    for flag, key in simple.items():
        value = getattr(args, flag)
        if value is not None:
            changes[key] = value
    for flag, key in (("start", "start_at"), ("end", "end_at")):
        text = getattr(args, flag)
        if text is not None:
            changes[key] = None if text.strip().lower() == _NONE else iso_time(flag, text)
    if args.deadline is not None:
        changes["deadline_seconds"] = None if args.deadline == _NONE else args.deadline
    if args.tag is not None:
        changes["tags"] = tuple(args.tag)
    if command_argv(args) or any(getattr(args, flag) is not None for flag in _TARGET_FLAGS):
        if args.queue is None:
            args.queue = "default"
        if args.priority is None:
            args.priority = 0
        changes["targets"] = _targets(args)
    return changes


def cmd_update(args: argparse.Namespace) -> int:
    changes = _changes(args)
    if not changes and not args.paused:
        raise errors.ValidationError(
            "settings", "nothing to change", "--expression, --tz, --window, ... (see --help)"
        )
    with open_app(args) as app:
        s = app.schedules.update(args.name, **changes) if changes else app.schedules.get(args.name)
        if args.paused:
            s, _ = app.schedules.pause(args.name)
        if args.json:
            render.emit_json(_plain(s))
        else:
            due = (
                s.state.value.lower()
                if s.state is not ScheduleState.ACTIVE
                else f"next due {_local(s.next_due_at, s.timezone)}"
            )
            changed = ", ".join(sorted(changes)) or "state"
            sys.stdout.write(f"schedule {s.name} updated ({changed}): {s.expression} ({s.timezone}), {due}\n")
    return 0


# -- reading --------------------------------------------------------------------------------
def _plain(s: Schedule) -> dict[str, Any]:
    out: dict[str, Any] = render.plain(s)
    out["window_minutes"] = s.window / timedelta(minutes=1)
    out.pop("window", None)
    out["deadline_seconds"] = None if s.deadline is None else s.deadline.total_seconds()
    out.pop("deadline", None)
    out["targets"] = [scheduling.target_to_dict(t) for t in s.targets]
    return out


def _local(value: datetime | None, tz: str) -> str:
    if value is None:
        return ""
    return value.astimezone(expressions.validate_timezone(tz)).isoformat(timespec="seconds")


def _what(s: Schedule) -> str:
    parts = []
    for t in s.targets:
        if t.definition:
            parts.append(f"{t.queue}:{t.definition}")
        elif t.spec.command:
            parts.append(f"{t.queue}:{' '.join(t.spec.command)}")
        else:
            parts.append(f"{t.queue}:{t.spec.function}")
    return ", ".join(parts)


def cmd_list(args: argparse.Namespace) -> int:
    state = None
    if args.state:
        try:
            state = ScheduleState(args.state)
        except ValueError:
            raise errors.ValidationError(
                "state", f"{args.state!r} is not a schedule state", ", ".join(s.value for s in ScheduleState)
            ) from None
    with open_app(args) as app:
        items = app.schedules.find(state=state, tag=args.tag, after_name=args.after, limit=args.limit)
        if args.json:
            render.emit_json([_plain(s) for s in items])
            return 0
        render.table(
            ["name", "expression", "zone", "state", "window", "next due", "last fired", "target"],
            [
                (
                    s.name,
                    s.expression,
                    s.timezone,
                    s.state.value,
                    f"{s.window / timedelta(minutes=1):g}m" if s.window else "",
                    render.when(s.next_due_at),
                    render.when(s.last_fired_at),
                    _what(s),
                )
                for s in items
            ],
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        s = app.schedules.get(args.name)
        upcoming = app.schedules.upcoming(s, 5) if s.state is ScheduleState.ACTIVE else []
        history = app.schedules.history(s.name, 5)
        if args.json:
            render.emit_json(
                {
                    **_plain(s),
                    "upcoming": [{"nominal_at": n, "due_at": d} for n, d in upcoming],
                    "history": render.plain(history),
                }
            )
            return 0
        expr = app.store.schedule_math().expression(s.expression)
        render.fields(
            [
                ("name", s.name),
                ("expression", f"{s.expression}  ({expressions.describe(expr)})"),
                ("zone", s.timezone),
                ("state", s.state.value),
                ("description", s.description),
                ("start", _local(s.start_at, s.timezone)),
                ("end", _local(s.end_at, s.timezone)),
                ("window", f"{s.window / timedelta(minutes=1):g} min" if s.window else "off"),
                ("overlap", s.overlap.value),
                ("catch-up", s.catch_up.value + (f", deadline {s.deadline}" if s.deadline else "")),
                ("tags", ", ".join(s.tags)),
                ("targets", _what(s)),
                ("last fired", _local(s.last_fired_at, s.timezone)),
                ("last jobs", ", ".join(str(j) for j in s.last_job_ids)),
            ]
        )
        if upcoming:
            sys.stdout.write("\nnext fires (nominal -> due):\n")
            for n, d in upcoming:
                sys.stdout.write(f"  {_local(n, s.timezone)}  ->  {_local(d, s.timezone)}\n")
        if history:
            sys.stdout.write("\nrecent history:\n")
            _history_table(history, s.timezone)
    return 0


def _history_table(items: list[scheduling.ScheduleFire], tz: str) -> None:
    render.table(
        ["nominal", "outcome", "count", "lag", "jobs", "reason"],
        [
            (
                _local(f.nominal_at, tz),
                f.outcome.value,
                f.count,
                "" if f.lag is None else f"{f.lag.total_seconds():.3f}s",
                ",".join(str(j) for j in f.job_ids),
                f.reason,
            )
            for f in items
        ],
    )


def cmd_history(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        s = app.schedules.get(args.name)
        items = app.schedules.history(args.name, args.limit)
        if args.json:
            render.emit_json(items)
            return 0
        _history_table(items, s.timezone)
    return 0


def cmd_action(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        if args.action_name == "delete":
            app.schedules.delete(args.name)
            if getattr(args, "json", False):
                render.emit_json({"schedule": args.name, "deleted": True})
            else:
                sys.stdout.write(f"schedule {args.name} deleted\n")
            return 0
        if args.action_name == "pause":
            s, changed = app.schedules.pause(args.name)
        else:
            s, changed = app.schedules.resume(args.name)
        if args.json:
            render.emit_json({**_plain(s), "changed": changed})
        else:
            extra = (
                f", next due {_local(s.next_due_at, s.timezone)}" if s.state is ScheduleState.ACTIVE else ""
            )
            sys.stdout.write(
                f"schedule {s.name}: {s.state.value}{extra}{'' if changed else ' (unchanged)'}\n"
            )
    return 0


def cmd_next(args: argparse.Namespace) -> int:
    expr = expressions.parse(args.expression)
    zone = expressions.validate_timezone(args.tz)
    if not 1 <= args.count <= 10_000:
        raise errors.ValidationError("count", f"{args.count} is out of range", "1..10000")
    after = iso_time("after", args.after) or datetime.now(UTC)
    out: list[str] = []
    for at in expressions.next_fires(expr, zone, after):
        out.append(at.astimezone(zone).isoformat())
        if len(out) >= args.count:
            break
    if args.json:
        render.emit_json(out)
    else:
        sys.stdout.write("".join(line + "\n" for line in out))
    return 0


# -- load -----------------------------------------------------------------------------------
def cmd_load(args: argparse.Namespace) -> int:
    if args.rows < 1:
        raise errors.ValidationError("rows", f"{args.rows} is too small", "1 or more")
    with open_app(args) as app:
        load = app.schedules.load(args.hours)
    minutes = len(load.nominal)
    if args.json:
        render.emit_json(
            {
                "start": load.start,
                "schedules": load.schedules,
                "groups": load.groups,
                "fires_per_minute": list(load.nominal),
                "fires_per_minute_with_windows": [round(v, 3) for v in load.spread],
            }
        )
        return 0
    sys.stdout.write(_chart(load, minutes, args.rows))
    return 0


def _chart(load: scheduling.Load, minutes: int, rows: int) -> str:
    """One row per bucket of minutes: the busiest minute in it, without windows (#) and with (=)."""
    step = max(1, math.ceil(minutes / rows))
    peaks: list[tuple[datetime, float, float, float]] = []
    for lo in range(0, minutes, step):
        chunk_n = load.nominal[lo : lo + step]
        chunk_s = load.spread[lo : lo + step]
        peaks.append((load.start + timedelta(minutes=lo), max(chunk_n), max(chunk_s), sum(chunk_n)))
    top = max([1.0, *(p[1] for p in peaks), *(p[2] for p in peaks)])
    width = 50
    lines = [
        f"{load.schedules} active schedule(s) in {load.groups} group(s); fires per minute from"
        f" {load.start.astimezone().strftime('%Y-%m-%d %H:%M %Z')}, {step} min per row (busiest minute shown)",
        "  # without windows   = with flexible windows",
        "",
    ]
    for start, peak_n, peak_s, total in peaks:
        bar_n = "#" * round(width * peak_n / top)
        bar_s = "=" * round(width * peak_s / top)
        lines.append(
            f"{start.astimezone().strftime('%H:%M')}  {bar_n:<{width}} {peak_n:>9,.1f}/min  {total:>10,.0f} fires"
        )
        lines.append(f"{'':5}  {bar_s:<{width}} {peak_s:>9,.1f}/min")
    if load.nominal:
        worst = max(range(len(load.nominal)), key=lambda i: load.nominal[i])
        worst_s = max(range(len(load.spread)), key=lambda i: load.spread[i])
        at = (load.start + timedelta(minutes=worst)).astimezone().strftime("%H:%M")
        at_s = (load.start + timedelta(minutes=worst_s)).astimezone().strftime("%H:%M")
        lines += [
            "",
            f"busiest minute without windows: {at}, {load.nominal[worst]:,.0f} fires",
            f"busiest minute with windows:    {at_s}, {load.spread[worst_s]:,.1f} fires",
            f"total fires: {sum(load.nominal):,.0f}",
        ]
    return "\n".join(lines) + "\n"


# -- the loop -------------------------------------------------------------------------------
def cmd_scheduler(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    with open_app(args, wait_for_database=not args.once) as app:
        scheduler = app.scheduler(SchedulerConfig(batch_size=args.batch_size))
        if args.once:
            try:
                counts = scheduler.run_once(app.clock.now())
            finally:
                scheduler.close()
            if args.json:
                render.emit_json(counts)
            else:
                sys.stderr.write(
                    f"conveyor: {counts.fired} fire(s), {counts.skipped} skipped, {counts.jobs} job(s)"
                    f" from {counts.schedules} schedule(s)\n"
                )
            return 0

        def on_signal(signum: int, frame: FrameType | None) -> None:
            logging.getLogger("conveyor.scheduler").info("%s: stopping", signal.Signals(signum).name)
            scheduler.stop(timeout=0)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        scheduler.run()
        total = scheduler.stats.total
        sys.stderr.write(f"conveyor: scheduler fired {total.fired} time(s), {total.jobs} job(s)\n")
    return 0
