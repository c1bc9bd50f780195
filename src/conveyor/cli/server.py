"""``conveyor server``: the HTTP API, an embedded worker and the scheduler in one process."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

from conveyor import errors
from conveyor.app import App
from conveyor.cli.common import Formatter, add_db, open_app, prepare_process, whole

FIRST_TOKEN = """conveyor: no API token exists yet. Create the first admin token (its secret is shown once):

    conveyor tokens create --scope admin --name admin{database}

then call the API with:  Authorization: Bearer <token>
"""


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "server",
        help="HTTP API + embedded worker + scheduler in one process",
        description="Serve the HTTP API (/v1, /openapi.json, /docs, /healthz, /readyz) with an embedded worker.",
        epilog=(
            "examples:\n"
            "  conveyor server                                   SQLite ./conveyor.db, port 8080\n"
            "  conveyor server --database postgresql://db/conveyor --host 0.0.0.0 --no-worker\n"
            "many machines: several servers (--no-worker) and workers on one PostgreSQL database"
        ),
        formatter_class=Formatter,
    )
    add_db(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=whole, default=8080, help="port (default 8080)")
    p.add_argument(
        "--http-processes",
        type=whole,
        default=1,
        metavar="N",
        help="HTTP processes sharing the port (Linux/macOS; the embedded worker and scheduler run in one)",
    )
    p.add_argument("--no-worker", action="store_true", help="do not run the embedded worker")
    p.add_argument("--no-scheduler", action="store_true", help="do not run the scheduler")
    p.add_argument(
        "--concurrency", "-c", type=whole, default=os.cpu_count() or 2, help="embedded worker's jobs at once"
    )
    p.add_argument("--environment", default="default", help="compute environment the embedded worker serves")
    p.add_argument(
        "--import", dest="imports", action="append", metavar="MODULE", help="import at start (repeat)"
    )
    p.add_argument(
        "--rate-limit",
        type=float,
        default=1000.0,
        metavar="PER_SECOND",
        help="requests per second per token in each HTTP process"
        " (default 1000, bursts up to twice that; 0: off)",
    )
    p.add_argument(
        "--max-body", type=whole, default=20 * 1024 * 1024, metavar="BYTES", help="largest request body"
    )
    p.add_argument(
        "--public-url", metavar="URL", help="URL handed to jobs as CONVEYOR_URL (default http://HOST:PORT)"
    )
    p.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    p.set_defaults(func=cmd_server)


def cmd_server(args: argparse.Namespace) -> int:
    import uvicorn

    prepare_process(args.log_level, args.imports)
    connect_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    children: list[int] = []
    if not 1 <= args.http_processes <= 64:
        raise errors.ValidationError("http-processes", f"{args.http_processes} is out of range", "1-64")
    # refused here, not by the socket: port 99999 was bound as 34463 (mod 65536), -1 exited 3
    if not 0 <= args.port <= 65535:
        raise errors.ValidationError("port", f"{args.port} is out of range", "0-65535 (0: any free port)")
    try:  # an address that is none: refused here, not by uvicorn after "serving ..." (exit 3)
        socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise errors.ValidationError(
            "host", f"{args.host!r} is not an address here: {exc}", "e.g. 127.0.0.1, 0.0.0.0, ::"
        ) from None
    if not 0 <= args.rate_limit <= 1e9:  # NaN fails both
        raise errors.ValidationError("rate-limit", f"{args.rate_limit:g} is out of range", "0 (off) or more")
    if not 1 <= args.max_body <= 2**40:
        raise errors.ValidationError("max-body", f"{args.max_body} is out of range", "1 byte or more")
    if args.http_processes > 1:
        if not hasattr(os, "fork"):
            raise errors.ValidationError("http-processes", "needs os.fork (Linux, macOS)", "1 here")
        with open_app(args, wait_for_database=True):
            pass  # migrate once, before the processes start
    # bound before anything starts: a port in use is one line and exit 2, not "serving ..."
    # and then uvicorn's error and exit 3
    sockets = [_bind(args.host, args.port)]
    port = sockets[0].getsockname()[1]  # port 0: the one the system chose
    api_url = args.public_url or f"http://{connect_host}:{port}"
    if args.http_processes > 1:
        for _ in range(args.http_processes - 1):
            pid = os.fork()  # before any thread or connection exists in this process
            if pid == 0:
                code = 1
                try:
                    code = _serve_http_only(args, sockets)
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(code)  # never back into the parent's code
            children.append(pid)
    try:
        with open_app(args, wait_for_database=True) as app:
            if not args.no_worker and app.store.environment_get(args.environment) is None:
                known = ", ".join(e.name for e in app.store.environment_list())
                raise errors.ValidationError(  # as `conveyor worker` refuses it
                    "environment", f"compute environment {args.environment!r} does not exist", known
                )
            if not app.tokens.any_usable():
                db = f" --database {args.database}" if args.database else ""
                sys.stderr.write(FIRST_TOKEN.format(database=db))
                sys.stderr.flush()
            worker_thread: threading.Thread | None = None
            worker = None
            if not args.no_worker:
                from conveyor.worker.executors import ExecutorConfig
                from conveyor.worker.loop import WorkerConfig

                worker = app.worker(
                    WorkerConfig(
                        environment=args.environment,
                        concurrency=args.concurrency,
                        executor=ExecutorConfig(api_url=api_url, job_token=app.tokens.mint_job_token),
                    )
                )
                worker_thread = threading.Thread(
                    target=worker.run, name="conveyor-embedded-worker", daemon=True
                )
                worker_thread.start()
            scheduler = None if args.no_scheduler else app.scheduler()
            if scheduler is not None:
                scheduler.start()
            processes = f", {args.http_processes} HTTP processes" if children else ""
            sys.stderr.write(
                f"conveyor: serving {api_url} (docs: {api_url}/docs) on {app.store.d.name}{processes}\n"
            )
            sys.stderr.flush()
            try:
                _run(uvicorn.Server(_uvicorn_config(args, app)), sockets)
            finally:
                if scheduler is not None:
                    scheduler.stop()
                if worker is not None and worker_thread is not None:
                    worker.request_stop()
                    worker_thread.join(35.0)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)
    return 0


def _uvicorn_config(args: argparse.Namespace, app: App) -> Any:
    import uvicorn

    from conveyor.api import ApiConfig, create_api

    api = create_api(
        app,
        ApiConfig(
            max_body_bytes=args.max_body,
            rate_per_second=args.rate_limit,
            rate_burst=max(1.0, 2 * args.rate_limit),
        ),
    )
    return uvicorn.Config(
        api,
        host=args.host,
        port=args.port,
        log_level=args.log_level.lower(),
        access_log=False,
        lifespan="off",
    )


def _run(server: Any, sockets: list[socket.socket] | None) -> None:
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal for the
    # handler that was there before it: make that one a no-op so the exit status is 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: None)
    server.run(sockets=sockets)


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket every HTTP process accepts from."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise errors.ValidationError(
            "port", f"cannot listen on {host}:{port}: {exc.strerror}", "a free port, or 0 for any"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve_http_only(args: argparse.Namespace, sockets: list[socket.socket]) -> int:
    """A forked HTTP process: the API only; it stops with its parent."""
    import uvicorn

    parent = os.getppid()
    with App.open(args.database, migrate=False, wait_for_database=True) as app:
        server = uvicorn.Server(_uvicorn_config(args, app))

        def orphaned() -> None:
            while not server.should_exit:
                if os.getppid() != parent:
                    server.should_exit = True
                time.sleep(1.0)

        threading.Thread(target=orphaned, name="conveyor-parent-watch", daemon=True).start()
        _run(server, sockets)
    return 0
