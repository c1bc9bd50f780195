"""Killing the processes of attempts whose worker died.

A command job runs in its own session, so a worker killed with SIGKILL leaves it running.
When any worker on the same host finds that attempt's lease expired, it kills every process
that carries the attempt's identity in its environment (``CONVEYOR_STORE_ID``,
``CONVEYOR_JOB_ID`` and ``CONVEYOR_ATTEMPT``, inherited by grandchildren too) — an exact
match, so a reused pid is never hit, nor job 1 of another database on the same host —
before the attempt is failed and retried.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")


def attempt_processes(job_id: int, attempt: int, store_id: str, proc: Path = PROC) -> list[int]:
    """Pids whose environment says they belong to this attempt of this store's job (Linux;
    empty elsewhere)."""
    want_store = f"CONVEYOR_STORE_ID={store_id}".encode()
    want_job = f"CONVEYOR_JOB_ID={job_id}".encode()
    want_attempt = f"CONVEYOR_ATTEMPT={attempt}".encode()
    found: list[int] = []
    if not proc.is_dir():
        return found
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if want_job in env and want_attempt in env and want_store in env:
            found.append(int(entry.name))
    return found


def kill_attempts(attempts: Iterable[tuple[int, int]], store_id: str, proc: Path = PROC) -> list[int]:
    """SIGKILL the process groups of these (job id, attempt) pairs of ``store_id``'s jobs;
    returns the pids found."""
    killed: list[int] = []
    me = os.getpid()
    for job_id, attempt in attempts:
        for pid in attempt_processes(job_id, attempt, store_id, proc):
            if pid == me:
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed
