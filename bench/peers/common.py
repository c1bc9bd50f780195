"""Shared configuration and the no-op task body used by every peer.

Every peer's task takes ONE integer ``n`` and does nothing except the
measurement bookkeeping below, which is identical for all peers (one Redis
INCR per job, plus an RPUSH for latency samples in W3):

* ``n >= LATENCY_THRESHOLD_US``: ``n`` is the enqueue time in microseconds
  since the epoch (W3); the task pushes ``"<enqueue_us> <start_us>"`` onto
  ``bench:lat`` before anything else.
* every job then INCRs ``bench:cnt``; the job that makes the counter reach 1
  stores its completion time in ``bench:first`` and the job that makes it reach
  ``BENCH_TARGET`` (env var given to the worker processes) stores it in
  ``bench:last``. W2's drain rate is (target - 1) / (last - first).

The counter lives in a dedicated Redis logical DB (``BENCH_REDIS_URL``,
default db 9) for all peers, including Procrastinate (PostgreSQL broker).
"""

from __future__ import annotations

import os
import time

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
PG_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/conveyor_bench")
PG_ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

CNT_KEY = "bench:cnt"
FIRST_KEY = "bench:first"
LAST_KEY = "bench:last"
LAT_KEY = "bench:lat"
COUNTER_KEYS = (CNT_KEY, FIRST_KEY, LAST_KEY, LAT_KEY)

# 2001-09-09 in microseconds: any real time.time()*1e6 is larger, and job
# numbers 0..N-1 used by W1/W2 are far smaller.
LATENCY_THRESHOLD_US = 10**15

_redis = None
_target: int | None = None


def counter_redis():
    """Redis client for the completion counter (lazy, fork-safe via redis-py's pid check)."""
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
    return _redis


def _get_target() -> int:
    global _target
    if _target is None:
        _target = int(os.environ.get("BENCH_TARGET", "0"))
    return _target


def record(n: int) -> None:
    """The body of every peer's no-op task."""
    start = time.time()
    r = counter_redis()
    if n >= LATENCY_THRESHOLD_US:
        r.rpush(LAT_KEY, f"{n} {int(start * 1_000_000)}")
    v = r.incr(CNT_KEY)
    if v == 1:
        r.set(FIRST_KEY, repr(time.time()))
    if v == _get_target():
        r.set(LAST_KEY, repr(time.time()))


def reset_counters() -> None:
    counter_redis().delete(*COUNTER_KEYS)


def ensure_pg_database() -> None:
    """Create the benchmark database (BENCH_PG_DSN's dbname) if it is missing."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    dbname = conninfo_to_dict(PG_DSN).get("dbname")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')
