"""What a running job can know about itself: ``conveyor.current_job()``."""

from __future__ import annotations

import contextvars
import os
from dataclasses import dataclass

from conveyor.model import quick_init


@dataclass(frozen=True, slots=True)
class JobContext:
    """The job the calling code runs in: its id, attempt (1 for the first), queue, index in
    its array (None outside one), the array job's id, and the worker running it."""

    job_id: int
    attempt: int
    queue: str
    array_index: int | None
    worker_id: str
    database_url: str = ""  # the worker's store, for Client.from_env() in inline jobs
    blob_dir: str = ""
    array_parent_id: int | None = None


quick_init(JobContext)  # one per inline attempt


current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("conveyor_job", default=None)


def current_job() -> JobContext | None:
    """The job this code runs in, or None outside a job.

    In a Python function run by a worker (the inline executor), the worker's record of the
    attempt, in the function's thread and in what an ``async`` function awaits. In a command
    job's process (and what it starts), the ``CONVEYOR_*`` variables the worker set: the
    job's id, attempt, queue, array index, array job and worker.
    """
    ctx = current.get()
    if ctx is not None:
        return ctx
    env = os.environ
    job_id = _number(env.get("CONVEYOR_JOB_ID"))
    if job_id is None:
        return None
    return JobContext(
        job_id,
        _number(env.get("CONVEYOR_ATTEMPT")) or 0,
        env.get("CONVEYOR_QUEUE", ""),
        _number(env.get("CONVEYOR_ARRAY_INDEX")),
        env.get("CONVEYOR_WORKER_ID", ""),
        array_parent_id=_number(env.get("CONVEYOR_ARRAY_PARENT_ID")),
    )


def _number(text: str | None) -> int | None:
    """A variable's value as an int, None when unset or not a plain decimal number."""
    if text is None or not text.isascii() or not text.isdigit():
        return None
    return int(text)
