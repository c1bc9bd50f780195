"""The no-op function job of ``bench/bench_worker.py``.

The worker imports it as ``noop_jobs`` (started with ``cwd=bench`` and ``--import noop_jobs``);
jobs name it ``noop_jobs:noop`` and pass the integer as the payload.
"""

from __future__ import annotations


def noop(n: int) -> None:
    return None
