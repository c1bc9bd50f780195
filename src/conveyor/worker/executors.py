"""Executors: run one attempt and say how it ended.

``inline``: a Python callable in a worker thread (sync or async). ``process``: a child
process in its own session and working directory; a timeout or terminate signals the
whole process group (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import inspect
import io
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor import errors, outcomes, values
from conveyor.model import Finish, Job, OutcomeKind
from conveyor.worker.context import JobContext, current


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    kill_grace_seconds: float = 5.0
    log_cap_bytes: int = 1024 * 1024
    log_flush_seconds: float = 1.0
    enforce_memory: bool = True
    database_url: str = ""
    blob_dir: str = ""
    store_id: str = ""  # handed to process jobs as CONVEYOR_STORE_ID (see orphans.py)
    api_url: str = ""  # the server's URL, handed to process jobs as CONVEYOR_URL
    job_token: Callable[[Job], str] | None = None  # mints the job's CONVEYOR_TOKEN


LogSink = Callable[[int, int, list[tuple[int, bytes]]], None]


# PyThreadState_SetAsyncExc(thread id, exception class or NULL to clear a pending one)
_set_async_exc = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.c_ulong, ctypes.py_object)(
    ("PyThreadState_SetAsyncExc", ctypes.pythonapi)
)


@dataclass(eq=False, slots=True)
class Execution:
    """One attempt in progress; other threads may ask it to stop."""

    job: Job
    worker_id: str
    started: float = field(default_factory=time.monotonic)
    deadline: float | None = None
    pid: int | None = None
    stop_reason: str | None = None
    stop_kind: OutcomeKind | None = None
    abandoned: bool = False
    reported: bool = False
    _thread: int | None = None  # the thread running a sync function, while it runs it
    _interrupted: bool = False
    _proc: subprocess.Popen[bytes] | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _task: asyncio.Future[Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self, reason: str, kind: OutcomeKind) -> None:
        """Ask the attempt to stop: a child process group gets SIGTERM; an async function is
        cancelled; a sync function gets ``outcomes.Interrupted`` raised in its thread (once)."""
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason, self.stop_kind = reason, kind
            proc, loop, task = self._proc, self._loop, self._task
            if self._thread is not None and not self._interrupted:
                self._interrupted = True
                _set_async_exc(self._thread, ctypes.py_object(outcomes.Interrupted))
        if proc is not None and proc.poll() is None:
            signal_group(proc.pid, signal.SIGTERM)
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)


def signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class LogBuffer:
    """Collects output and hands it to the store in chunks, up to a cap."""

    def __init__(self, sink: LogSink, job_id: int, attempt: int, cap: int, flush_seconds: float) -> None:
        self.sink, self.job_id, self.attempt, self.cap = sink, job_id, attempt, cap
        self.flush_seconds = flush_seconds
        self.seq = 0
        self.kept = 0
        self.dropped = 0
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.last_flush = time.monotonic()

    def write(self, data: bytes) -> None:
        room = self.cap - self.kept
        if room <= 0:
            self.dropped += len(data)
            return
        if len(data) > room:
            self.dropped += len(data) - room
            data = data[:room]
        self.kept += len(data)
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size >= 64 * 1024:
            self.flush()

    def tick(self) -> None:
        if self.pending and time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self, final: bool = False) -> None:
        if final and self.dropped:
            self.pending.append(
                f"\n[conveyor: {self.dropped:,} more bytes dropped; log cap is {self.cap:,} bytes]\n".encode()
            )
        if self.pending:
            chunk = b"".join(self.pending)
            self.pending, self.pending_size = [], 0
            try:
                self.sink(self.job_id, self.attempt, [(self.seq, chunk)])
                self.seq += 1
            except Exception:
                self.pending = [b"[conveyor: a log chunk could not be stored]\n"]
        self.last_flush = time.monotonic()


# -- inline ---------------------------------------------------------------------------------


class FunctionCache:
    def __init__(self) -> None:
        self._cache: dict[str, tuple[Callable[..., Any], bool]] = {}
        self._lock = threading.Lock()

    def resolve(self, path: str) -> Callable[..., Any]:
        return self.resolve_call(path)[0]

    def resolve_call(self, path: str) -> tuple[Callable[..., Any], bool]:
        """(the callable, whether it is a coroutine function), looked up once per path."""
        entry = self._cache.get(path)
        if entry is None:
            module_name, _, attr = path.partition(":")
            target: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                target = getattr(target, part)
            if not callable(target):
                raise TypeError(f"{path} is not callable")
            # the @task decorator wraps a function; call the original
            fn = getattr(target, "__conveyor_wrapped__", target)
            entry = (fn, inspect.iscoroutinefunction(fn))
            with self._lock:
                self._cache[path] = entry
        return entry


class _Printed(threading.local):
    sink: Callable[[bytes], None] | None = None


# the log of the function job running in this thread, if any
_printed = _Printed()


class _ToJobLog(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` while a worker runs: what a job thread writes goes to its
    job's log, as a command's output does; any other thread's to the stream that was there."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        sink = _printed.sink
        if sink is None:
            return int(self.stream.write(text))
        sink(text.encode("utf-8", "backslashreplace"))
        return len(text)

    def flush(self) -> None:
        if _printed.sink is None:
            self.stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return bool(self.stream.isatty())

    def fileno(self) -> int:
        return int(self.stream.fileno())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.stream, "encoding", "utf-8"))


class PrintsToLogs:
    """While any is entered in this process, ``print()`` (``sys.stdout``, ``sys.stderr``) in a
    function job goes to that job's log. Entered by every worker and by ``run-job``; nested
    and concurrent uses share one installation, removed by the last to leave."""

    _lock = threading.Lock()
    _users = 0
    _saved: tuple[Any, Any] | None = None

    def __enter__(self) -> PrintsToLogs:
        cls = PrintsToLogs
        with cls._lock:
            if cls._users == 0:
                cls._saved = (sys.stdout, sys.stderr)
                sys.stdout, sys.stderr = _ToJobLog(sys.stdout), _ToJobLog(sys.stderr)
            cls._users += 1
        return self

    def __exit__(self, *exc: object) -> None:
        cls = PrintsToLogs
        with cls._lock:
            cls._users -= 1
            if cls._users == 0 and cls._saved is not None:
                out, err = cls._saved
                # put back only what is still ours (something else may have replaced it since)
                if isinstance(sys.stdout, _ToJobLog):
                    sys.stdout = out
                if isinstance(sys.stderr, _ToJobLog):
                    sys.stderr = err
                cls._saved = None


_thread_loops = threading.local()


def _loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_thread_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        _thread_loops.loop = loop
    return loop


def call_arguments(payload: Any, parameters: dict[str, str]) -> tuple[list[Any], dict[str, Any]]:
    """How a function job is called: ``fn(*args, **kwargs)`` (see the README's "Python jobs")."""
    if isinstance(payload, dict) and payload and set(payload) <= {"args", "kwargs"}:
        values.call_payload("payload", payload)  # stored before submissions were checked so
        return list(payload.get("args") or []), {**parameters, **(payload.get("kwargs") or {})}
    if payload is None:
        return [], dict(parameters)
    return [payload], dict(parameters)


def run_function(
    ex: Execution,
    functions: FunctionCache,
    payload: Any,
    log: LogBuffer,
    config: ExecutorConfig | None = None,
) -> Finish:
    job = ex.job
    assert job.spec.function is not None

    def finish(kind: OutcomeKind, reason: str = "", **kw: Any) -> Finish:
        return Finish(job.id, job.attempt, ex.worker_id, kind, reason, **kw)

    where = config or ExecutorConfig()
    token = current.set(
        JobContext(
            job.id,
            job.attempt,
            job.queue,
            job.array_index,
            ex.worker_id,
            where.database_url,
            where.blob_dir,
            job.array_parent_id,
        )
    )
    _printed.sink = log.write  # print() in this thread goes to the job's log (``PrintsToLogs``)
    try:
        fn, is_async = functions.resolve_call(job.spec.function)
        args, kwargs = call_arguments(payload, job.spec.parameters)
        if is_async:
            value = _run_async(ex, fn(*args, **kwargs))
        else:
            value = _call_sync(ex, fn, args, kwargs)
            if value is not None and inspect.isawaitable(value):
                value = _run_async(ex, value)
    except outcomes.Interrupted:
        return finish(ex.stop_kind or OutcomeKind.FAILED, ex.stop_reason or "stopped")
    except outcomes.Outcome as raised:
        return _outcome_finish(raised, finish)
    except (asyncio.CancelledError, TimeoutError) as exc:
        if ex.stop_kind is not None:
            return finish(ex.stop_kind, ex.stop_reason or "stopped")
        if ex.deadline is not None and time.monotonic() >= ex.deadline:
            # asyncio.wait_for hit the job's timeout: say so like the other executors do
            return finish(OutcomeKind.FAILED, f"timed out after {job.spec.timeout_seconds:g} s")
        log.write(traceback.format_exc().encode("utf-8", "backslashreplace"))
        return finish(OutcomeKind.FAILED, _reason(f"{type(exc).__name__}: {exc}"))
    except BaseException as exc:
        # SystemExit, KeyboardInterrupt, GeneratorExit or a BaseException of the job's own,
        # raised in this job thread: before, they ended the thread, and the job stayed
        # RUNNING with its lease renewed while the slot was gone for good
        log.write(traceback.format_exc().encode("utf-8", "backslashreplace"))
        return finish(OutcomeKind.FAILED, _reason(f"{type(exc).__name__}: {exc}"))
    finally:
        _printed.sink = None
        current.reset(token)
        log.flush(final=True)
    if isinstance(value, outcomes.Outcome):
        return _outcome_finish(value, finish)
    if value is not None:
        bad = bad_result(value)
        if bad is not None:
            return finish(OutcomeKind.FAILED, bad)
    return finish(OutcomeKind.SUCCEEDED, "", exit_code=0, result=value)


# the largest result a function job may return, as JSON (the largest payload, by default)
MAX_RESULT_BYTES = 16 * 1024 * 1024


def bad_result(value: Any) -> str | None:
    """Why ``value`` cannot be a job's result, or None: it must be JSON the store can hold and
    read back, as a payload must (an int of 5,000 digits, a NaN, a NUL, a value nested too
    deeply, more than MAX_RESULT_BYTES). Before, an int too long to print made the worker's
    report fail, again and again: its batch of finishes, and the worker, never moved on."""
    t = type(value)
    if t is bool or (t is int and -(2**63) <= value < 2**63):
        return None
    if t is str and len(value) <= 4096 and values.not_text(value) is None:
        return None
    try:
        text = values.payload_json("result", value)
    except errors.ValidationError as exc:
        return _reason(f"result {exc.reason}")
    if len(text) > MAX_RESULT_BYTES:  # ASCII: characters are bytes
        return f"result is {len(text):,} bytes of JSON, more than {MAX_RESULT_BYTES:,}"
    return None


def _call_sync(ex: Execution, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)`` where ``Execution.stop`` can interrupt it. The interruption is
    set only while ``ex._thread`` names this thread, and cleared on the way out if it has not
    landed yet, so it never reaches the worker's code or the thread's next job."""
    with ex._lock:
        ex._thread = threading.get_ident()
    try:
        return fn(*args, **kwargs)
    finally:
        while True:
            try:  # an interruption pending may land here: clear the mark and go round again
                with ex._lock:
                    ex._thread = None
                    if ex._interrupted:
                        _set_async_exc(threading.get_ident(), ctypes.py_object())
                break
            except outcomes.Interrupted:
                continue


def _run_async(ex: Execution, awaitable: Any) -> Any:
    loop = _loop()
    timeout = None if ex.deadline is None else max(0.0, ex.deadline - time.monotonic())

    async def runner() -> Any:
        return await asyncio.wait_for(awaitable, timeout)

    task = loop.create_task(runner())
    with ex._lock:
        ex._loop, ex._task = loop, task
    try:
        return loop.run_until_complete(task)
    finally:
        with ex._lock:
            ex._loop, ex._task = None, None


def _outcome_finish(o: outcomes.Outcome, finish: Callable[..., Finish]) -> Finish:
    # checked again here: an outcome's attributes can be changed after it was made
    try:
        if isinstance(o, outcomes.Retry):
            delay = outcomes._delay("Retry", o.delay)
            return finish(OutcomeKind.RETRY, _reason(o.reason), delay_seconds=delay)
        if isinstance(o, outcomes.Snooze):
            delay = outcomes._delay("Snooze", o.delay)
            return finish(OutcomeKind.SNOOZE, _reason(o.reason), delay_seconds=delay)
    except (TypeError, ValueError) as exc:
        return finish(OutcomeKind.FAILED, _reason(f"{type(exc).__name__}: {exc}"))
    if isinstance(o, outcomes.Cancel):
        return finish(OutcomeKind.CANCEL, _reason(o.reason))
    return finish(OutcomeKind.FAILED, _reason(f"unknown outcome {o!r}"))


def _reason(text: Any, limit: int = 1000) -> str:
    """``text`` as a status reason the store can hold: at most ``limit`` characters, a NUL
    and a lone surrogate (from an exception's message, say) escaped."""
    out = text if isinstance(text, str) else str(text)
    if values.not_text(out) is not None:
        out = out.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode()
    return out if len(out) <= limit else out[: limit - 3] + "..."


# -- process --------------------------------------------------------------------------------


def job_environment(job: Job, config: ExecutorConfig, worker_id: str = "") -> dict[str, str]:
    """The child's environment: the worker's, minus anything of Conveyor's own, plus the job's
    (what ``conveyor.current_job()`` reads in the child)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env.update(job.spec.environment)
    env["CONVEYOR_JOB_ID"] = str(job.id)
    env["CONVEYOR_ATTEMPT"] = str(job.attempt)
    env["CONVEYOR_QUEUE"] = job.queue
    if worker_id:
        env["CONVEYOR_WORKER_ID"] = worker_id
    if config.store_id:
        env["CONVEYOR_STORE_ID"] = config.store_id
    if job.array_index is not None:
        env["CONVEYOR_ARRAY_INDEX"] = str(job.array_index)
        env["CONVEYOR_ARRAY_PARENT_ID"] = str(job.array_parent_id)
    if config.database_url:
        env["CONVEYOR_DATABASE_URL"] = config.database_url
    if config.blob_dir:
        env["CONVEYOR_BLOB_DIR"] = config.blob_dir
    if config.api_url:
        env["CONVEYOR_URL"] = config.api_url
        if config.job_token is not None:
            env["CONVEYOR_TOKEN"] = config.job_token(job)
    return env


def _cannot(program: str, why: str, own_dir: bool) -> str:
    """Why a command did not start; a relative program in the fresh directory made for the
    attempt (which holds nothing) is explained: ``./backup.sh`` is not the submitter's."""
    reason = f"cannot start {program!r}: {why}"
    if own_dir and "/" in program and not program.startswith("/"):
        reason += (
            " (a relative program is looked up in the job's working directory, a fresh empty one"
            " here: give its absolute path, or a working directory)"
        )
    return reason


# The address-space limit (RLIMIT_AS) is set by the child on itself before it runs the job's
# command: ``/bin/sh`` sets it (``ulimit -v``, KiB) and then execs the command in its place
# (same pid, same process group; a limit survives exec). Set from the worker with prlimit
# once Popen returned, it came too late when the worker was busy: a child that allocated at
# once had its memory before the limit (seen under the test suite's load). preexec_fn, which
# would set it between fork and exec, is not safe in the worker's threads. One difference
# the shell brings: an executable text file without a #! line runs as a shell script (sh's
# exec falls back to that), where Popen's execve fails with "Exec format error".
_LIMIT_SCRIPT = 'ulimit -v "$1" && shift && exec "$@"'


def memory_limited(argv: list[str], memory_mb: int) -> list[str]:
    """``argv`` launched so that it runs with at most ``memory_mb`` MiB of address space."""
    return ["/bin/sh", "-c", _LIMIT_SCRIPT, "conveyor-memory-limit", str(memory_mb * 1024), *argv]


def _cannot_start(program: str, cwd: str, path: str) -> str | None:
    """Why ``program`` cannot be executed (as the OSError from Popen words it), or None: the
    shell that sets the memory limit would otherwise be what reports a missing program."""
    candidate = os.path.join(cwd, program) if "/" in program else shutil.which(program, path=path)
    if candidate is None or not os.path.exists(candidate):
        return "No such file or directory"
    if os.path.isdir(candidate) or not os.access(candidate, os.X_OK):
        return "Permission denied"
    return None


def run_process(
    ex: Execution,
    argv: list[str],
    config: ExecutorConfig,
    log: LogBuffer,
    on_started: Callable[[Execution], None],
) -> Finish:
    job = ex.job

    def finish(kind: OutcomeKind, reason: str = "", exit_code: int | None = None) -> Finish:
        return Finish(job.id, job.attempt, ex.worker_id, kind, reason, exit_code=exit_code)

    own_dir = job.spec.working_dir is None
    if not own_dir and not os.path.isdir(str(job.spec.working_dir)):
        # said here: Popen's error for a missing cwd names the program ("No such file or
        # directory"), as if the command were missing
        return finish(
            OutcomeKind.FAILED,
            _reason(f"working directory {job.spec.working_dir!r} does not exist"),
            exit_code=127,
        )
    workdir = job.spec.working_dir or tempfile.mkdtemp(prefix=f"conveyor-job-{job.id}-{job.attempt}-")
    env = job_environment(job, config, ex.worker_id)
    launch = argv
    if config.enforce_memory and job.spec.memory_mb > 0:
        missing = _cannot_start(argv[0], workdir, env.get("PATH", os.defpath))
        if missing is not None:
            if own_dir:
                shutil.rmtree(workdir, ignore_errors=True)
            return finish(OutcomeKind.FAILED, _cannot(argv[0], missing, own_dir), exit_code=127)
        launch = memory_limited(argv, job.spec.memory_mb)
    try:
        try:
            proc = subprocess.Popen(
                launch,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return finish(
                OutcomeKind.FAILED, _cannot(argv[0], str(exc.strerror or exc), own_dir), exit_code=127
            )
        with ex._lock:
            ex._proc, ex.pid = proc, proc.pid
            stop_now = ex.stop_reason is not None
        if stop_now:
            signal_group(proc.pid, signal.SIGTERM)
        on_started(ex)
        timed_out = _pump(ex, proc, config, log)
        code = proc.returncode
        if code != 0 and launch is not argv:
            # a failed allocation shows as whatever the program makes of it (a MemoryError,
            # "failed to map segment" and exit 127): say the limit was there, in the log
            log.write(
                f"\n[conveyor: this attempt ran with a memory limit of {job.spec.memory_mb} MB of address"
                " space (memory_mb); a failed allocation may come from it]\n".encode()
            )
        log.flush(final=True)
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    exit_code = code if code >= 0 else 128 - code
    if timed_out:
        return finish(OutcomeKind.FAILED, f"timed out after {job.spec.timeout_seconds:g} s", exit_code)
    if ex.stop_kind is not None:
        return finish(ex.stop_kind, ex.stop_reason or "stopped", exit_code)
    if code == 0:
        return finish(OutcomeKind.SUCCEEDED, "", 0)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return finish(OutcomeKind.FAILED, f"killed by {name}", exit_code)
    return finish(OutcomeKind.FAILED, f"exit code {code}", exit_code)


def _pump(ex: Execution, proc: subprocess.Popen[bytes], config: ExecutorConfig, log: LogBuffer) -> bool:
    """Copy output to the log until the process exits; enforce the deadline. True if it timed out."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    poller = select.poll()  # not select(): no limit on descriptor numbers
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    timed_out = False
    kill_at: float | None = None
    eof = False
    exited_at: float | None = None
    while True:
        now = time.monotonic()
        if ex.deadline is not None and now >= ex.deadline and not timed_out and ex.stop_reason is None:
            timed_out = True
            signal_group(proc.pid, signal.SIGTERM)
        if (timed_out or ex.stop_reason is not None) and kill_at is None:
            kill_at = now + config.kill_grace_seconds
        if kill_at is not None and now >= kill_at:
            signal_group(proc.pid, signal.SIGKILL)
        if not eof:
            if poller.poll(200):
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if data:
                    log.write(data)
                else:
                    eof = True
        elif proc.poll() is None:
            # output closed: the child is exiting; wait for it rather than sleeping blind
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.2)
        else:
            time.sleep(0.05)  # the leader is gone, the rest of a stopping group has its grace
        log.tick()
        if proc.poll() is not None:
            if exited_at is None:
                exited_at = time.monotonic()
            if kill_at is not None and time.monotonic() < kill_at and group_alive(proc.pid):
                # a stop in progress: the leader ended on SIGTERM; the rest of its group still
                # has the grace period, then SIGKILL (above) as the README promises
                continue
            # the leader exited: take what is left of the output, but do not wait for
            # grandchildren holding the pipe; what is left of the group goes with the leader,
            # as a container's processes do (a background child outlived a job that succeeded)
            if eof or time.monotonic() - exited_at > 0.5:
                signal_group(proc.pid, signal.SIGKILL)
                if not eof:
                    _drain(fd, log)
                break
    proc.stdout.close()
    return timed_out


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` is still there."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _drain(fd: int, log: LogBuffer) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except (BlockingIOError, OSError):
            return
        if not data:
            return
        log.write(data)
