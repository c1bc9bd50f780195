"""What a running Python job can know about itself."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from conveyor.model import quick_init


@dataclass(frozen=True, slots=True)
class JobContext:
    job_id: int
    attempt: int
    queue: str
    array_index: int | None
    worker_id: str
    database_url: str = ""  # the worker's store, for Client.from_env() in inline jobs
    blob_dir: str = ""


quick_init(JobContext)  # one per inline attempt


current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("conveyor_job", default=None)


def current_job() -> JobContext | None:
    """The job this code runs in (inline executor), or None."""
    return current.get()
