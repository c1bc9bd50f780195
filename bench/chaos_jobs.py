"""The jobs of ``chaos.py``: each attempt appends what it does to the file ``$CHAOS_LOG``.

One line per step, written with one ``write`` to a file opened with O_APPEND (atomic for
lines this short, from any number of processes):
``<unix time> <job id> <attempt> <pid> start|done|raise``.
"""

from __future__ import annotations

import os
import time

from conveyor.worker.context import current_job


def line(job_id: int, attempt: int, what: str) -> None:
    fd = os.open(os.environ["CHAOS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{time.time():.6f} {job_id} {attempt} {os.getpid()} {what}\n".encode())
    finally:
        os.close(fd)


def work(n: int, ms: int = 0, fail_first: bool = False) -> int:
    """An inline job: sleeps ``ms``; with ``fail_first``, its first attempt raises."""
    ctx = current_job()
    assert ctx is not None, "runs in a worker"
    line(ctx.job_id, ctx.attempt, "start")
    if ms:
        time.sleep(ms / 1000)
    if fail_first and ctx.attempt == 1:
        line(ctx.job_id, ctx.attempt, "raise")
        raise RuntimeError("chaos: the first attempt fails")
    line(ctx.job_id, ctx.attempt, "done")
    return n


# a command job: the same lines from a shell (its own process group, the process executor's)
SHELL = (
    'echo "$(date +%s.%N) $CONVEYOR_JOB_ID $CONVEYOR_ATTEMPT $$ start" >> "$CHAOS_LOG";'
    " sleep {seconds};"
    ' echo "$(date +%s.%N) $CONVEYOR_JOB_ID $CONVEYOR_ATTEMPT $$ done" >> "$CHAOS_LOG"'
)
