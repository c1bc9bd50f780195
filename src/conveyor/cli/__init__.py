"""The ``conveyor`` command. Edges only parse, validate and render; the engine decides."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from conveyor import errors
from conveyor.cli import catalog, jobs, render, schedules, server, tokens
from conveyor.cli.common import Formatter, Parser, add_db, csv, open_app, prepare_process, whole
from conveyor.store import absolute_url

EXIT_USAGE = 2
EXIT_STORE = 3

MAIN_EPILOG = """examples (first steps):
  conveyor submit -- echo hello       queue a job (SQLite ./conveyor.db by default)
  conveyor worker --burst             run what is runnable, then exit
  conveyor jobs list                  see what happened
  conveyor jobs show 1                state, why it waits, attempts

many machines: export CONVEYOR_DATABASE_URL=postgresql://user@db-host/conveyor
  (or --database URL, before the command or after it: conveyor --database URL jobs list)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="conveyor",
        description="Conveyor: scheduled and on-demand batch jobs on SQLite or PostgreSQL.",
        epilog=MAIN_EPILOG,
        formatter_class=Formatter,
    )
    # also before the command (`conveyor --database URL jobs list`); the command's own wins
    parser.add_argument("--database", metavar="URL", dest="top_database", help="as each command's --database")
    parser.add_argument("--json", action="store_true", dest="top_json", help="as each command's --json")
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(  # type: ignore[assignment]
        dest="command", required=True, metavar="COMMAND"
    )
    m = sub.add_parser(
        "migrate",
        help="create or upgrade the schema (also done automatically at start)",
        epilog="example: conveyor migrate --database postgresql://user@db-host/conveyor",
        formatter_class=Formatter,
    )
    add_db(m)
    m.set_defaults(func=cmd_migrate)
    w = sub.add_parser(
        "worker",
        help="run jobs: claims what fits, renews leases, retries, times out",
        epilog=(
            "examples:\n"
            "  conveyor worker                                  all queues of the default environment\n"
            "  conveyor worker --queues speedy,default --concurrency 8\n"
            "  conveyor worker --environment gpu --import myapp.jobs\n"
            "  conveyor worker --burst                          drain what is runnable, exit 0\n"
            "SIGTERM/SIGINT: stop claiming, finish running jobs within --grace, requeue the rest;\n"
            "a second signal requeues at once."
        ),
        formatter_class=Formatter,
    )
    add_db(w)
    w.add_argument(
        "--queues", metavar="A,B", help="serve only these queues (default: all of the environment)"
    )
    w.add_argument("--environment", default="default", help="compute environment served (default: default)")
    w.add_argument(
        "--concurrency",
        "-c",
        type=whole,
        default=os.cpu_count() or 2,
        help="jobs at once (default: CPU count)",
    )
    w.add_argument(
        "--import", dest="imports", action="append", metavar="MODULE", help="import at start (repeat)"
    )
    w.add_argument("--burst", action="store_true", help="exit 0 once nothing is runnable")
    w.add_argument(
        "--lease-seconds", type=float, default=30.0, help="lease length; renewed while jobs run (default 30)"
    )
    w.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, wait this long for running jobs (default 30)",
    )
    w.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    w.set_defaults(func=cmd_worker)
    r = sub.add_parser(
        "run-job",
        help="run exactly one job and exit with its exit code (container-per-job entrypoint)",
        epilog=(
            "examples:\n"
            "  conveyor run-job 42                     claim job 42, run it here, exit with its exit code\n"
            "  docker run myimage conveyor run-job $JOB_ID   one container per job\n"
            "The job must be RUNNABLE (or SUBMITTED); capacity limits are the orchestrator's business."
        ),
        formatter_class=Formatter,
    )
    add_db(r)
    r.add_argument("id", type=whole, help="the job id")
    r.add_argument("--environment", help="record this compute environment for the attempt")
    r.add_argument("--lease-seconds", type=float, default=30.0)
    r.set_defaults(func=cmd_run_job)
    jobs.add(sub)
    catalog.add(sub)
    schedules.add(sub)
    server.add(sub)
    tokens.add(sub)
    return parser


def cmd_migrate(args: argparse.Namespace) -> int:
    with open_app(args) as app:
        current, latest = app.store.schema_status()
        if getattr(args, "json", False):
            render.emit_json({"schema_version": current, "latest": latest})
        else:
            sys.stdout.write(f"schema version {current} (latest {latest})\n")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from conveyor.worker.loop import WorkerConfig

    prepare_process(args.log_level, args.imports)
    config = WorkerConfig(
        environment=args.environment,
        queues=csv(args.queues),
        concurrency=args.concurrency,
        lease_seconds=args.lease_seconds,
        burst=args.burst,
        grace_seconds=args.grace,
    )
    with open_app(args, wait_for_database=True) as app:
        if app.store.environment_get(args.environment) is None:
            known = ", ".join(e.name for e in app.store.environment_list())
            raise errors.ValidationError(
                "environment", f"compute environment {args.environment!r} does not exist", known
            )
        queues = {q.name: q for q in app.store.queue_list()}
        names = set(queues)
        missing = [q for q in config.queues or () if q not in names]
        elsewhere = [
            q for q in config.queues or () if q in names and args.environment not in queues[q].environments
        ]
        if elsewhere:  # served only once the queue lists the environment
            logging.getLogger("conveyor.worker").warning(
                "queue %r does not run in environment %r (its environments: %s): this worker takes none"
                " of its jobs until it does (conveyor queues update %s --environments ...)",
                elsewhere[0],
                args.environment,
                ", ".join(queues[elsewhere[0]].environments),
                elsewhere[0],
            )
        if missing:
            what = f"queue {missing[0]!r} does not exist"
            if args.burst:  # nothing to drain: a typo, not a queue made later
                raise errors.ValidationError("queues", what, ", ".join(sorted(names)))
            logging.getLogger("conveyor.worker").warning(
                "%s (yet): its jobs are served once it is made", what
            )
        worker = app.worker(config)
        signals = {"count": 0}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            signals["count"] += 1
            logging.getLogger("conveyor.worker").info(
                "%s: %s",
                signal.Signals(signum).name,
                "stopping" if signals["count"] == 1 else "requeueing now",
            )
            worker.request_stop(immediate=signals["count"] > 1)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        # what start-up made (modules, the store) lives as long as the process: out of the
        # collector's sight, a full collection no longer walks it (~50 ms under load, in the
        # middle of a job's start)
        gc.collect()
        gc.freeze()
        stats = worker.run()
        hung = worker.hung_jobs()
        if args.json:
            render.emit_json(
                {
                    "worker": worker.id,
                    "claimed": stats.claimed,
                    "succeeded": stats.succeeded,
                    "failed": stats.failed,
                }
            )
        else:
            sys.stderr.write(
                f"conveyor: worker {worker.id} ran {stats.claimed} attempt(s): {stats.succeeded} succeeded, {stats.failed} failed\n"
            )
    if hung:
        # inline functions that ignored the stop still run in pool threads, which Python would wait
        # for at exit; their jobs were requeued or failed already, so leave without them
        sys.stderr.write(f"conveyor: leaving {hung} inline job thread(s) that did not stop\n")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def cmd_run_job(args: argparse.Namespace) -> int:
    from conveyor.worker.single import run_single

    prepare_process(None, None)
    with open_app(args, wait_for_database=True) as app:  # a container's entrypoint
        from conveyor.worker.executors import ExecutorConfig

        executor = ExecutorConfig(database_url=absolute_url(app.url), blob_dir=str(app.blob_dir.resolve()))
        run = run_single(
            app.store,
            app.clock,
            app.blobs,
            args.id,
            environment=args.environment,
            lease_seconds=args.lease_seconds,
            executor=executor,
        )
        if args.json:
            render.emit_json(
                {
                    "id": run.job.id,
                    "state": run.job.state,
                    "exit_code": run.exit_code,
                    "reason": run.finish.reason,
                }
            )
        else:
            sys.stderr.write(
                f"conveyor: job {run.job.id} attempt {run.finish.attempt}: {run.finish.kind.value} {run.finish.reason}\n".rstrip()
                + "\n"
            )
        return run.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    items = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` is a job's command, never options of ours: split it off
    # before argparse, which otherwise mixes options given before `--` into the command
    # (`definitions register NAME --param a=1 -- cmd {a}`).
    command: list[str] | None = None
    if "--" in items:
        at = items.index("--")
        items, command = items[:at], items[at + 1 :]
    args = parser.parse_args(items)
    for name in ("database", "json"):
        given = getattr(args, "top_" + name)
        if given and not hasattr(args, name):
            parser.error(f"--{name}: the command given takes none")
        if given and not getattr(args, name):
            setattr(args, name, given)
    if command is not None:
        if not hasattr(args, "argv"):
            parser.error("unrecognized arguments: -- " + " ".join(command))
        args.argv = [*(args.argv or []), "--", *command]
    # Without any handler, Python's last-resort handler prints psycopg_pool's per-retry
    # connection warnings to stderr; the error below already says it in one line. (The
    # worker configures logging itself, so it still logs them.)
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    try:
        code: int = args.func(args)
        return code
    except errors.StoreUnavailable as exc:
        sys.stderr.write(f"conveyor: {exc}\n")
        return EXIT_STORE
    except (errors.ValidationError, errors.NotFound, errors.Conflict, errors.Forbidden) as exc:
        sys.stderr.write(f"conveyor: {exc}\n")
        return EXIT_USAGE
    except errors.ConveyorError as exc:
        sys.stderr.write(f"conveyor: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
