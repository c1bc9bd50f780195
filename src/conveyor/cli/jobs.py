"""``conveyor submit`` and ``conveyor jobs ...``."""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import Any

from conveyor import errors, wire
from conveyor.app import App
from conveyor.cli import render
from conveyor.cli.common import (
    Formatter,
    add_db,
    command_argv,
    csv,
    iso_time,
    job_fields,
    key_values,
    open_app,
    whole,
)
from conveyor.engine import validate
from conveyor.engine.jobs import BULK_PAGE, MAX_EVENTS_PAGE, JobSelection, SubmitRequest
from conveyor.model import Dependency, DependencyType, Event, Job, JobState

MAX_LIST = 100_000  # jobs in one `jobs list` (page on with --before)

SUBMIT_EPILOG = """examples:
  conveyor submit -- echo hello                         an ad-hoc command on the default queue
  conveyor submit --queue reports --definition nightly-report --param day=2026-05-01
  conveyor submit --function myapp.jobs:resize --payload '{"args": [42]}' --attempts 3
  conveyor submit --array-size 100 -- python3 /opt/jobs/shard.py   CONVEYOR_ARRAY_INDEX is 0..99
  conveyor submit --depends-on 41 --depends-on 42 -- /opt/jobs/report.sh
  conveyor submit --unique-key sync:client-7 --queue speedy --wait -- /opt/jobs/sync.sh 7
  conveyor submit --working-dir /srv/app -- ./run.sh     ./run.sh of /srv/app on the worker
  conveyor submit --from-file jobs.jsonl                many jobs in one transaction
"""


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "submit",
        help="submit a job (prints its id)",
        description="Submit a job: a registered definition, an ad-hoc command after --, or a Python function.",
        epilog=SUBMIT_EPILOG,
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("--queue", "-q", help="queue name (default: default)")
    p.add_argument("--definition", "-d", help="job definition name (its active revision)")
    p.add_argument("--revision", type=whole, help="a specific revision of the definition")
    p.add_argument(
        "--function", "-f", metavar="MODULE:CALLABLE", help="run a Python callable on an inline worker"
    )
    p.add_argument(
        "--param",
        "-p",
        action="append",
        metavar="NAME=VALUE",
        help="parameter for {NAME} in the command (repeat)",
    )
    p.add_argument("--payload", metavar="JSON|@FILE", help="JSON payload (>256 KiB goes to the blob store)")
    p.add_argument("--priority", type=whole, help="priority within the queue, higher first (default 0)")
    p.add_argument("--delay", type=float, metavar="SECONDS", help="run no earlier than SECONDS from now")
    p.add_argument("--run-at", metavar="ISO-TIME", help="run no earlier than this time (with offset)")
    p.add_argument(
        "--depends-on",
        action="append",
        metavar="ID[:N_TO_N]",
        help="wait for this job to succeed (repeat); :N_TO_N pairs array children",
    )
    p.add_argument("--array-size", type=whole, metavar="N", help="array job of N children (2..10000)")
    p.add_argument("--sequential", action="store_true", help="array children run one after another")
    p.add_argument(
        "--unique-key",
        metavar="KEY",
        help="at most one unfinished job per key; a second submit returns the first",
    )
    p.add_argument(
        "--unique-ttl", type=float, metavar="SECONDS", help="keep the unique key this long after success"
    )
    p.add_argument("--idempotency-key", metavar="KEY", help="the same key always returns the same job")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="kill the attempt after this long")
    p.add_argument("--attempts", type=whole, help="attempts in all, 1..10 (retry strategy)")
    p.add_argument(
        "--retry",
        metavar="JSON",
        help='full retry strategy, e.g. \'{"attempts": 3, "evaluate_on_exit": [{"action": "EXIT", "on_exit_code": "2"}]}\'',
    )
    p.add_argument("--vcpus", type=float, help="vCPUs the job needs")
    p.add_argument("--memory", type=whole, metavar="MB", help="memory the job needs (also its limit)")
    p.add_argument(
        "--env", "-e", action="append", metavar="NAME=VALUE", help="environment variable for the job (repeat)"
    )
    p.add_argument(
        "--working-dir",
        metavar="DIR",
        help="absolute directory the command runs in on the worker (default: a fresh one per attempt)",
    )
    p.add_argument("--tag", action="append", help="tag (repeat)")
    p.add_argument("--name", help="a name to recognise the job by")
    p.add_argument(
        "--from-file", metavar="FILE", help="JSON lines, one submission object per line ('-' for stdin)"
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait for the job and exit with its outcome (0 succeeded, 1 otherwise)",
    )
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- the command to run")
    p.set_defaults(func=cmd_submit)

    jobs = sub.add_parser(
        "jobs",
        help="list, show, follow logs of, cancel, terminate and retry jobs",
        epilog="examples:\n  conveyor jobs list --state FAILED\n  conveyor jobs show 42\n  conveyor jobs logs 42 --follow",
        formatter_class=Formatter,
    )
    js = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")
    lp = js.add_parser(
        "list",
        help="jobs, newest first",
        description=textwrap.fill(
            "Jobs, newest first. An array job stands for its children, which are listed only with"
            " --children (with the other jobs) or --array ID (one array job's); the table says when"
            " a state filter left children out (an array job is PENDING while its children run)."
        ),
        epilog="examples:\n  conveyor jobs list --state FAILED --queue reports"
        "\n  conveyor jobs list --state RUNNABLE --children    array children too",
        formatter_class=Formatter,
    )
    add_db(lp)
    lp.add_argument(
        "--state", action="append", help="filter by state, in any case (repeat, or comma-separated)"
    )
    lp.add_argument("--queue", help="filter by queue")
    lp.add_argument("--tag", help="filter by tag")
    lp.add_argument("--array", type=whole, metavar="ID", help="the children of this array job")
    lp.add_argument(
        "--children", action="store_true", help="list array children too (default: their array jobs only)"
    )
    lp.add_argument("--created-after", metavar="ISO-TIME", help="jobs created after this time (with offset)")
    lp.add_argument(
        "--created-before", metavar="ISO-TIME", help="jobs created before this time (with offset)"
    )
    lp.add_argument("--limit", type=whole, default=50)
    lp.add_argument("--before", type=whole, metavar="ID", help="page on: jobs with a smaller id")
    lp.set_defaults(func=cmd_list)
    sp = js.add_parser(
        "show",
        help="one job: state, why it waits, attempts",
        epilog="examples:\n  conveyor jobs show 42\n  conveyor jobs show 42 --events    its history: every state change",
        formatter_class=Formatter,
    )
    add_db(sp)
    sp.add_argument("id", type=whole)
    sp.add_argument(
        "--events",
        action="store_true",
        help="add the job's history: time, from -> to, reason (with --json: under events)",
    )
    sp.set_defaults(func=cmd_show)
    gp = js.add_parser(
        "logs",
        help="a job's captured output",
        epilog="example: conveyor jobs logs 42 --follow",
        formatter_class=Formatter,
    )
    add_db(gp)
    gp.add_argument("id", type=whole)
    gp.add_argument("--attempt", type=whole, help="only this attempt (default: all)")
    gp.add_argument("--follow", "-f", action="store_true", help="keep printing until the job finishes")
    # --json (add_db): one document, each attempt's text; with --follow, a JSON line per chunk
    gp.set_defaults(func=cmd_logs)
    for name, helptext, states, example in (
        (
            "cancel",
            "cancel jobs that have not started (idempotent)",
            "SUBMITTED, PENDING, RUNNABLE (default: all three)",
            "conveyor jobs cancel --queue reports --dry-run",
        ),
        (
            "terminate",
            "stop running jobs: their process groups are killed; they end FAILED",
            "SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING (default: all)",
            "conveyor jobs terminate --queue reports --state RUNNING",
        ),
        (
            "retry",
            "run FAILED or CANCELLED jobs again",
            "FAILED, CANCELLED (default: FAILED)",
            "conveyor jobs retry --state FAILED --queue reports",
        ),
    ):
        ap = js.add_parser(
            name,
            help=helptext,
            description=textwrap.fill(
                f"{helptext[0].upper()}{helptext[1:]}: the jobs listed by id, or every job a filter"
                " matches (--queue, --state, --tag; --all: every one), in transactions of"
                f" {BULK_PAGE} jobs. Jobs submitted after the command began are not touched. Exit"
                " 1 when a job was left alone (unknown, or in a state the action does not take)."
            ),
            epilog=f"examples:\n  conveyor jobs {name} 42\n  conveyor jobs {name} 42 43 44\n  {example}",
            formatter_class=Formatter,
        )
        add_db(ap)
        ap.add_argument("ids", type=whole, nargs="*", metavar="ID", help="the jobs (or a filter instead)")
        ap.add_argument("--queue", help="every selected job of this queue")
        ap.add_argument(
            "--state",
            action="append",
            help=f"filter by state, in any case (repeat, or comma-separated): {states}",
        )
        ap.add_argument("--tag", help="every selected job with this tag")
        ap.add_argument("--all", action="store_true", help="no filter: every job in the states above")
        ap.add_argument(
            "--dry-run",
            action="store_true",
            help="print what would be done now, job by job, and change nothing",
        )
        if name != "retry":
            ap.add_argument("--reason", default="", help="recorded as the status reason")
        ap.set_defaults(func=cmd_action, action_name=name)
    pp = js.add_parser(
        "prune",
        help="delete finished jobs older than N days (workers do this hourly too)",
        epilog="example: conveyor jobs prune --older-than 7",
        formatter_class=Formatter,
    )
    add_db(pp)
    pp.add_argument("--older-than", type=float, default=14.0, metavar="DAYS")
    pp.set_defaults(func=cmd_prune)


def _request(args: argparse.Namespace) -> SubmitRequest:
    deps: list[int | Dependency] = []
    for text in args.depends_on or []:
        job_id, _, kind = text.partition(":")
        try:
            dep_id = int(job_id)
        except ValueError:
            raise errors.ValidationError(
                "depends_on", f"{text!r} is not a job id", "ID or ID:N_TO_N"
            ) from None
        if kind and kind.upper() != "N_TO_N":
            raise errors.ValidationError("depends_on", f"dependency type {kind!r} is not known", "N_TO_N")
        deps.append(Dependency(dep_id, DependencyType.N_TO_N if kind else DependencyType.STANDARD))
    return SubmitRequest(
        **job_fields(args),
        run_at=iso_time("run_at", args.run_at),
        delay_seconds=args.delay,
        depends_on=deps,
        array_size=args.array_size,
        array_sequential=args.sequential,
        unique_ttl_seconds=args.unique_ttl,
        idempotency_key=args.idempotency_key,
        vcpus=args.vcpus,
        memory_mb=args.memory,
        environment=key_values("env", args.env),
        working_dir=args.working_dir,
        tags=args.tag or (),
        name=args.name,
    )


def _job_flags(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The flags that shape one job, as given (None: not given)."""
    names = ("queue", "definition", "revision", "function", "param", "payload", "priority", "delay",
             "run_at", "depends_on", "array_size", "unique_key", "unique_ttl", "idempotency_key",
             "timeout", "attempts", "retry", "vcpus", "memory", "env", "working_dir", "tag", "name")  # fmt: skip
    return [("--" + name.replace("_", "-"), getattr(args, name, None)) for name in names]


_BATCH_ITEM = re.compile(r"jobs\[(\d+)\]")
_JOB_NAMED = re.compile(r"\bjob (\d+)\b")


def _on_line(
    exc: errors.ValidationError, reqs: Sequence[SubmitRequest], numbers: Sequence[int]
) -> errors.ValidationError:
    """``exc`` naming the line of the file as ``line N.field``, as the file's own checks do.

    The engine names a submission of a batch by its place (``jobs[1].run_at``, 0-based),
    one submitted alone not at all (``command``), and the store names the field only
    (``depends_on: job 9 does not exist``): that one is the first line whose field it is."""
    field = exc.field
    if field.startswith("line "):
        return exc
    match = _BATCH_ITEM.match(field)
    if match is not None and int(match.group(1)) < len(numbers):
        where = f"line {numbers[int(match.group(1))]}{field[match.end() :]}"
    elif field == "jobs":  # the batch as a whole: too many jobs
        where = "from_file"
    elif len(numbers) == 1:
        where = f"line {numbers[0]}.{field}"
    else:
        top = re.split(r"[.\[]", field, maxsplit=1)[0]
        named = _JOB_NAMED.search(exc.reason) if top == "depends_on" else None
        lines = [
            n
            for n, req in zip(numbers, reqs, strict=True)
            if getattr(req, top, None)
            and (named is None or int(named.group(1)) in {_job_id(d) for d in req.depends_on})
        ]
        where = f"line {lines[0]}.{field}" if lines else field
    return errors.ValidationError(where, exc.reason, exc.allowed)


def _job_id(dependency: int | Dependency) -> int:
    return dependency.job_id if isinstance(dependency, Dependency) else dependency


def cmd_submit(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        if args.from_file:
            given = [flag for flag, value in _job_flags(args) if value is not None and value != []]
            if given or command_argv(args):  # each line holds its own fields: a flag was ignored
                raise errors.ValidationError(
                    "from_file",
                    f"is given with {given[0] if given else 'a command'}, which it would ignore",
                    "the fields on each line, and no job flags",
                )
            try:
                fh = sys.stdin if args.from_file == "-" else open(args.from_file, encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                raise errors.ValidationError(
                    "from_file",
                    f"cannot read {args.from_file!r}: {exc.strerror}",
                    "a JSON-lines file, or - for stdin",
                ) from None
            with fh:
                reqs, numbers = [], []  # numbers[i]: the line of reqs[i]
                try:
                    lines = list(fh)
                except UnicodeDecodeError as exc:
                    raise errors.ValidationError(
                        "from_file",
                        f"{args.from_file!r} is not UTF-8 text (byte {exc.start})",
                        "UTF-8 JSON lines",
                    ) from None
                for n, line in enumerate(lines, 1):
                    if line.strip():
                        try:
                            data = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise errors.ValidationError(
                                f"line {n}", f"malformed JSON: {exc.msg} at column {exc.colno}"
                            ) from None
                        reqs.append(wire.request_from_dict(data, f"line {n}"))
                        numbers.append(n)
            try:
                results = app.jobs.submit_many(reqs)
            except errors.ValidationError as exc:
                raise _on_line(exc, reqs, numbers) from None
            if args.json:
                render.emit_json(
                    [{"id": r.job.id, "existing": r.existing, "state": r.job.state} for r in results]
                )
            else:
                sys.stdout.write(
                    f"submitted {sum(not r.existing for r in results)} job(s), {sum(r.existing for r in results)} existing\n"
                )
            return 0
        result = app.jobs.submit(_request(args))
        job = result.job
        if args.json:
            render.emit_json(
                {"id": job.id, "existing": result.existing, "reason": result.reason, "state": job.state}
            )
        else:
            sys.stdout.write(f"{job.id}\n")
            if result.existing:
                sys.stderr.write(f"conveyor: existing job {job.id} returned: {result.reason}\n")
        if not args.wait:
            return 0
        while True:
            job = app.jobs.get(job.id)
            if job.state.terminal:
                break
            time.sleep(0.2)
        sys.stderr.write(f"conveyor: job {job.id} {job.state.value}: {job.status_reason}\n")
        return 0 if job.state is JobState.SUCCEEDED else 1


def cmd_list(args: argparse.Namespace) -> int:
    # the filters of GET /v1/jobs, in its words (--before is before_id, --array array_parent_id)
    filters = wire.job_filters(
        state=args.state,
        queue=args.queue,
        tag=args.tag,
        array_parent_id=args.array,
        children=args.children,
        before_id=args.before,
        created_after=args.created_after,
        created_before=args.created_before,
        limit=args.limit,
        most=MAX_LIST,
    )
    states = filters["states"]
    with open_app(args) as app:
        jobs = app.store.job_list(**filters)
        if args.json:
            render.emit_json(jobs)
            return 0
        # An array job is PENDING while its children are RUNNABLE or RUNNING: a state filter
        # can match children and not their array job (without one, the array job matches
        # whenever a child does). Say so, --json aside (scripts get what they always got).
        # One row is looked for among the ids this page spans (all those below it when it is
        # not full): no more of the index than the listing itself read.
        if states and args.array is None and not args.children:
            left_out = app.store.job_list(
                **{**filters, "include_children": False, "limit": 1},
                only_children=True,
                from_id=jobs[-1].id if len(jobs) == args.limit else None,
            )
            if left_out:
                sys.stderr.write(
                    "conveyor: array children also match and are not listed (their array job"
                    " stands for them): add --children, or --array ID for one array job's\n"
                )
        render.table(
            ["id", "state", "queue", "what", "attempt", "created", "reason"],
            [
                (
                    j.id,
                    j.state.value,
                    j.queue,
                    _what(j),
                    j.attempt,
                    render.when(j.created_at),
                    j.status_reason,
                )
                for j in jobs
            ],
        )
    return 0


def _what(job: Job) -> str:
    label = job.name or job.definition or job.spec.function or " ".join(job.spec.command or ())
    if job.array_size:
        label += f" [array {job.array_size}]"
    elif job.array_index is not None:
        label += f" [{job.array_index}]"
    return label


def cmd_show(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        job = app.jobs.get(args.id)
        why = app.jobs.explain(job)
        attempts = app.store.job_attempts(job.id)
        events = _all_events(app, job.id) if args.events else None
        if args.json:
            shown: dict[str, Any] = {"job": job, "explanation": why, "attempts": attempts}
            if events is not None:
                shown["events"] = [wire.event_to_dict(e) for e in events]
            render.emit_json(shown)
            return 0
        spec = job.spec
        render.fields(
            [
                ("id", job.id),
                ("state", job.state.value),
                ("why", why),
                ("queue", job.queue),
                ("definition", f"{job.definition}:{job.definition_revision}" if job.definition else None),
                ("command", " ".join(spec.command) if spec.command else None),
                ("function", spec.function),
                ("parameters", json.dumps(spec.parameters) if spec.parameters else None),
                ("priority", job.priority),
                ("attempts", f"{job.attempts_counted} of {spec.retry.attempts} used ({job.attempt} started)"),
                ("timeout", f"{spec.timeout_seconds:g} s" if spec.timeout_seconds else None),
                (
                    "resources",
                    f"{spec.vcpus:g} vCPU, {spec.memory_mb} MB" if spec.memory_mb else f"{spec.vcpus:g} vCPU",
                ),
                ("depends on", ", ".join(map(str, job.depends_on)) if job.depends_on else None),
                (
                    "array",
                    f"{job.array_size} children (conveyor jobs list --array {job.id})"
                    if job.array_size
                    else None,
                ),
                (
                    "array parent",
                    f"{job.array_parent_id} index {job.array_index}" if job.array_parent_id else None,
                ),
                ("submitted by", f"job {job.parent_id} (a follow-up job)" if job.parent_id else None),
                ("unique key", job.unique_key),
                ("tags", ", ".join(job.tags) if job.tags else None),
                ("created", render.when(job.created_at)),
                ("run at", render.when(job.run_at) if job.state is JobState.SUBMITTED else None),
                ("started", render.when(job.started_at)),
                ("finished", render.when(job.finished_at)),
                # a job waiting for its next attempt keeps the last one's worker on its row: the
                # attempts table below says where that ran
                ("worker", job.worker_id if job.state.active or job.state.terminal else None),
                ("result", json.dumps(job.result) if job.result is not None else None),
            ]
        )
        if attempts:
            sys.stdout.write("\n")
            render.table(
                ["attempt", "worker", "pid", "started", "stopped", "exit", "reason"],
                [
                    (
                        a.number if a.counted else f"{a.number} (not counted)",
                        a.worker_id,
                        a.pid,
                        render.when(a.started_at),
                        render.when(a.stopped_at),
                        a.exit_code,
                        a.reason,
                    )
                    for a in attempts
                ],
            )
        if events is not None:
            sys.stdout.write("\n")
            render.table(["time", "change", "reason"], [_event_row(e) for e in events])
    return 0


def _all_events(app: App, job_id: int) -> list[Event]:
    events: list[Event] = []
    while True:
        page = app.jobs.events(job_id, events[-1].id if events else 0, MAX_EVENTS_PAGE)
        events += page
        if len(page) < MAX_EVENTS_PAGE:
            return events


def _event_row(e: Event) -> tuple[str, str, str]:
    data = e.data
    if e.type == "job.state":
        change = f"{data.get('from', 'new') or '?'} -> {data.get('to')}"
    else:
        change = e.type.removeprefix("job.").replace("_", " ")
    reason = str(data["reason"]) if data.get("reason") else ""
    details = [reason] if reason else []
    for key in _EVENT_DETAILS:
        if data.get(key) is not None:
            detail = f"{key.replace('_', ' ')} {data[key]}"
            if detail not in reason:  # "exit code 3" is often the reason itself
                details.append(detail)
    return render.when(e.at), change, "; ".join(details)


_EVENT_DETAILS = ("worker", "attempt", "exit_code")


def cmd_logs(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        job = app.jobs.log_job(args.id, args.attempt)
        pos = (0, -1)
        out = sys.stdout.buffer
        if args.json and not args.follow:
            # one document: each attempt's output as text (bytes that are not UTF-8 escaped)
            logs: dict[int, list[bytes]] = {}
            for attempt, _, data in app.store.log_read(job.id, args.attempt, pos):
                logs.setdefault(attempt, []).append(data)
            texts = {a: b"".join(parts) for a, parts in logs.items()}
            render.emit_json(
                {
                    "job_id": job.id,
                    "attempts": [
                        {"attempt": a, "bytes": len(t), "text": t.decode("utf-8", "backslashreplace")}
                        for a, t in sorted(texts.items())
                    ],
                }
            )
            return 0
        while True:
            chunks = app.store.log_read(job.id, args.attempt, pos)
            for attempt, seq, data in chunks:
                if args.json:  # --follow: one JSON line per chunk as it comes
                    line = {"attempt": attempt, "text": data.decode("utf-8", "backslashreplace")}
                    out.write(json.dumps(line).encode() + b"\n")
                elif args.attempt is None and attempt != pos[0] and job.attempt > 1:
                    out.write(f"--- attempt {attempt} ---\n".encode())
                if not args.json:
                    out.write(data)
                pos = (attempt, seq)
            out.flush()
            if not args.follow:
                return 0
            if job.state.terminal and not chunks:
                return 0
            time.sleep(0.5)
            job = app.jobs.get(job.id)


_DONE = {"cancel": "cancelled", "terminate": "terminated", "retry": "retried"}
_SHOWN = 20  # jobs left alone listed one per line (then a count)


def cmd_action(args: argparse.Namespace) -> int:
    bulk = (
        len(args.ids) != 1
        or args.queue is not None
        or args.state
        or args.tag is not None
        or args.all
        or args.dry_run
    )
    if bulk:
        return _bulk_action(args)
    args.id = args.ids[0]
    with open_app(args) as app:
        if args.action_name == "retry":
            job = app.jobs.retry(args.id)
            changed = True
        elif args.action_name == "cancel":
            job, changed = app.jobs.cancel(args.id, args.reason)
        else:
            job, changed = app.jobs.terminate(args.id, args.reason)
        if args.json:
            render.emit_json(
                {"id": job.id, "state": job.state, "changed": changed, "reason": job.status_reason}
            )
        else:
            note = "" if changed else " (nothing to do)"
            sys.stdout.write(f"job {job.id}: {job.state.value}{note}: {job.status_reason}\n")
    return 0


def _bulk_action(args: argparse.Namespace) -> int:
    action = args.action_name
    selection = JobSelection(
        ids=tuple(args.ids),
        states=wire.job_states("state", args.state or ()),
        queue=args.queue,
        tag=args.tag,
        everything=args.all,
    )
    with open_app(args) as app:
        out = app.jobs.act_on_many(action, selection, getattr(args, "reason", ""), args.dry_run)
    if args.json:
        render.emit_json(wire.bulk_to_dict(out))
    else:
        w = sys.stdout.write
        if out.dry_run:  # nothing changed: what the action would have done now
            w(f"would {action} {len(out.changed):,} job(s){_ids(out.changed)}\n")
            if out.unchanged:
                w(
                    f"{len(out.unchanged):,} would have nothing to do (finished, or already asked to stop){_ids(out.unchanged)}\n"
                )
        else:
            w(f"{_DONE[action]} {len(out.changed):,} job(s){_ids(out.changed)}\n")
            if out.unchanged:
                w(
                    f"{len(out.unchanged):,} had nothing to do (finished meanwhile, or already asked to stop)\n"
                )
        if out.skipped:
            w(f"{len(out.skipped):,} {'would be ' if out.dry_run else ''}left alone:\n")
            for _, why in out.skipped[:_SHOWN]:
                w(f"  {why}\n")  # each names its job
            if len(out.skipped) > _SHOWN:
                w(f"  ... and {len(out.skipped) - _SHOWN:,} more (--json lists them all)\n")
    return 1 if out.skipped else 0


def _ids(ids: list[int]) -> str:
    if not ids:
        return ""
    shown = ", ".join(str(i) for i in ids[:_SHOWN])
    return f": {shown}" + (f" and {len(ids) - _SHOWN:,} more" if len(ids) > _SHOWN else "")


def cmd_prune(args: argparse.Namespace) -> int:
    from datetime import timedelta

    with open_app(args) as app:
        now = app.clock.now()
        days = validate.number("older_than", args.older_than, 0, 36_500)
        counts = app.store.prune(now - timedelta(days=days), now)
        if args.json:
            render.emit_json(counts)
        else:
            sys.stdout.write(f"pruned {counts['jobs']} job(s) and {counts['events']} event(s)\n")
    return 0


__all__ = ["add", "csv"]
