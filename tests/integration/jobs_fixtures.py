"""Small job functions the integration tests run on real workers ("module:callable" paths).

Functions take keyword arguments from the job's parameters (strings) or its payload
(``{"args": [...], "kwargs": {...}}``). Files are how they tell the test what happened:
workers may run them in other threads or other processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import conveyor
from conveyor.outcomes import Cancel, Outcome, Retry, Snooze
from conveyor.worker.context import current_job

MODULE = __name__


def path(name: str) -> str:
    """The ``module:callable`` path of a function in this module."""
    return f"{MODULE}:{name}"


def add(a: int, b: int) -> int:
    return a + b


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


def fail(message: str) -> None:
    print("about to fail")
    raise ValueError(message)


def first_attempt_outcome(outcome: str, how: str, delay: str = "0") -> str | Outcome:
    """On attempt 1 raise or return ``outcome`` (retry, cancel, snooze); later attempts succeed."""
    job = current_job()
    assert job is not None, "runs only inside a worker"
    if job.attempt > 1:
        return f"done on attempt {job.attempt}"
    made: Outcome
    if outcome == "retry":
        made = Retry(float(delay))
    elif outcome == "snooze":
        made = Snooze(float(delay))
    else:
        made = Cancel("not needed any more")
    if how == "raise":
        raise made
    return made


async def async_sleep(seconds: str) -> str:
    await asyncio.sleep(float(seconds))
    return "slept"


def sync_sleep(seconds: str) -> str:
    time.sleep(float(seconds))
    return "slept"


def not_json() -> object:
    return {"a set": {1, 2}}


def append_line(file: str, text: str, seconds: str = "0") -> None:
    time.sleep(float(seconds))
    with open(file, "a") as fh:
        fh.write(text + "\n")


def append_array_index(file: str, seconds: str = "0") -> None:
    job = current_job()
    assert job is not None and job.array_index is not None
    time.sleep(float(seconds))
    with open(file, "a") as fh:
        fh.write(f"{job.array_index}\n")


def record_interval(folder: str, seconds: str) -> None:
    """Write this job's (start, end) wall times to ``folder/<job id>``."""
    job = current_job()
    assert job is not None
    start = time.time()
    time.sleep(float(seconds))
    Path(folder, str(job.job_id)).write_text(json.dumps([start, time.time()]))


def digest(payload: Any) -> dict[str, Any]:
    raw = json.dumps(payload, sort_keys=True).encode()
    return {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}


def spawn_follow_up(queue: str) -> int:
    """Submit a follow-up job from inside a running job, as user code would."""
    import conveyor

    return conveyor.Client.from_env().submit(queue=queue, command=["echo", "child"]).id


# -- what a worker must survive (tests/integration/test_job_edges.py) ----------------------


class _OwnBaseException(BaseException):
    pass


def raise_base(kind: str) -> None:
    """Raise a BaseException that is no Exception: it ended the job thread."""
    if kind == "SystemExit":
        raise SystemExit(3)
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if kind == "GeneratorExit":
        raise GeneratorExit
    raise _OwnBaseException("its own")


def bad_result(kind: str) -> object:
    """A result the store cannot hold or read back."""
    if kind == "bigint":
        return 10**5000
    if kind == "nul":
        return "a\x00b"
    if kind == "deep":
        v: list[Any] = []
        for _ in range(5000):
            v = [v]
        return v
    if kind == "huge":
        return "x" * (16 * 1024 * 1024 + 1)
    raise AssertionError(kind)


def deep_result(depth: str) -> object:
    v: list[Any] = []
    for _ in range(int(depth)):
        v = [v]
    return v


def bad_outcome(kind: str) -> object:
    """An outcome whose delay cannot be stored, made or changed after it was made."""
    if kind == "snooze-negative":
        raise Snooze(-5)
    if kind == "snooze-inf":
        raise Snooze(float("inf"))
    if kind == "retry-huge":
        raise Retry(delay=1e300)
    changed = Retry(1)
    changed.delay = float("nan")
    return changed


def fail_with_nul() -> None:
    raise ValueError("bad\x00byte \ud800")


def printer(text: str) -> str:
    """print() to stdout and stderr, from the job's thread."""
    import sys

    print(f"out: {text}")
    print(f"err: {text}", file=sys.stderr)
    return text


def spin(seconds: str, marker: str) -> str:
    """Busy Python for ``seconds`` (no blocking call); writes how it ended to ``marker``."""
    end = time.monotonic() + float(seconds)
    try:
        n = 0
        while time.monotonic() < end:
            n += 1
    except conveyor.Interrupted:  # what the README tells a job to catch to clean up
        Path(marker).write_text("Interrupted")
        raise
    Path(marker).write_text("returned")
    return "spun"


def spin_swallowing(seconds: str) -> str:
    """Busy Python that catches ``Exception`` around its work (which must not hide a timeout)."""
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        try:
            sum(range(100))
        except Exception:  # what a careless job does around its work
            continue
    return "spun"


def near_deadline(seconds: str) -> float:
    """Busy Python for about ``seconds``: with a timeout of about the same, the interruption
    lands inside, just after, or never."""
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        pass
    return float(seconds)


def _whoami() -> dict[str, Any]:
    job = conveyor.current_job()
    assert job is not None
    return {
        "job_id": job.job_id,
        "attempt": job.attempt,
        "queue": job.queue,
        "array_index": job.array_index,
        "array_parent_id": job.array_parent_id,
        "worker_id": job.worker_id,
    }


def whoami() -> dict[str, Any]:
    """``conveyor.current_job()`` as the job's result."""
    return _whoami()


async def async_whoami() -> dict[str, Any]:
    """The same from an ``async`` function, after an await."""
    await asyncio.sleep(0)
    return _whoami()
