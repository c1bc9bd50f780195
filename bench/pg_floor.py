"""The physical floor of W3 (enqueue -> start) on PostgreSQL, on this machine.

What no PostgreSQL queue can go under: a durable submission is at least one fsynced
``INSERT`` + ``COMMIT`` round trip, and the worker hears of it at the earliest through a
``NOTIFY`` delivered to a ``LISTEN``-ing connection in another process. Measured here at the
W3 rate on otherwise idle connections (psycopg, autocommit, one row a statement):

* ``insert``: a bare one-column ``INSERT`` committed with ``synchronous_commit = on``;
* ``notify``: from just before an autocommitted ``NOTIFY`` in this process to a listener
  process (blocked in ``poll`` on its connection) seeing it;
* ``insert+notify``: both in one statement's commit (what a submission that wakes workers
  pays), to the listener seeing it — the floor of enqueue -> wake-up, before any claim;
* ``insert+notify+claim``: the same, plus the listener's one-statement
  ``UPDATE ... RETURNING`` of that row on its connection (asynchronous commit, as a worker's
  claim) — enqueue -> claimed, with no Python queue code at all;
* ``redis``: for comparison, ``LPUSH`` -> ``BRPOP`` in another process (what Huey's W3 rides on;
  only with ``--redis``).

    python bench/pg_floor.py [--samples 500] [--rate 50] [--redis]

Database ``$BENCH_PG_DSN`` (default postgresql://postgres@127.0.0.1:5432/conveyor_bench), whose
table ``pg_floor`` is dropped and created; Redis ``$BENCH_REDIS_URL`` (its key
``bench:floor``).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import select
import time
from typing import Any

import psycopg

DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/conveyor_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
CHANNEL = "pg_floor"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def paced(samples: int, rate: float) -> Any:
    """Yield at ``rate`` per second, ``samples`` times (the W3 loop's pacing)."""
    t0 = time.time()
    for i in range(samples):
        wait = t0 + i / rate - time.time()
        if wait > 0:
            time.sleep(wait)
        yield i


def listener(mode: str, ready: Any, out: Any, samples: int) -> None:
    """Hear ``samples`` notifications; for each, the time seen (and claimed, for "claim")."""
    conn = psycopg.connect(DSN, autocommit=True)
    conn.execute("SET synchronous_commit = off")
    conn.execute(f"LISTEN {CHANNEL}")
    poll = select.poll()
    poll.register(conn.fileno(), select.POLLIN)
    ready.set()
    seen: list[float] = []
    while len(seen) < samples:
        got = list(conn.notifies(timeout=0))
        if not got:
            poll.poll(5000)
            continue
        for n in got:
            if mode == "claim":
                conn.execute(
                    "UPDATE pg_floor SET claimed = true WHERE id = %s AND NOT claimed RETURNING id",
                    (int(n.payload),),
                ).fetchall()
            seen.append(time.time())
    out.put(seen)
    conn.close()


def run_notify(mode: str, samples: int, rate: float) -> list[float]:
    ctx = mp.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=listener, args=(mode, ready, out, samples))
    proc.start()
    ready.wait(30)
    conn = psycopg.connect(DSN, autocommit=True)
    sent: list[float] = []
    for i in paced(samples, rate):
        t = time.time()
        if mode == "notify":
            conn.execute(f"NOTIFY {CHANNEL}, '{i}'")
        else:
            conn.execute(
                "WITH r AS (INSERT INTO pg_floor (claimed) VALUES (false) RETURNING id)"
                f" SELECT pg_notify('{CHANNEL}', id::text) FROM r"
            ).fetchall()
        sent.append(t)
    seen = out.get(timeout=60)
    proc.join(10)
    conn.close()
    return [(s - t) * 1000 for t, s in zip(sent, seen, strict=True)]


def run_insert(samples: int, rate: float) -> list[float]:
    with psycopg.connect(DSN, autocommit=True) as conn:
        lat = []
        for _ in paced(samples, rate):
            t = time.perf_counter()
            conn.execute("INSERT INTO pg_floor (claimed) VALUES (false)")
            lat.append((time.perf_counter() - t) * 1000)
    return lat


def redis_popper(ready: Any, out: Any, samples: int) -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    ready.set()
    seen = []
    for _ in range(samples):
        r.brpop(["bench:floor"], timeout=30)
        seen.append(time.time())
    out.put(seen)


def run_redis(samples: int, rate: float) -> list[float]:
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    r.delete("bench:floor")
    ctx = mp.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=redis_popper, args=(ready, out, samples))
    proc.start()
    ready.wait(30)
    time.sleep(0.2)
    sent = []
    for i in paced(samples, rate):
        sent.append(time.time())
        r.lpush("bench:floor", str(i))
    seen = out.get(timeout=60)
    proc.join(10)
    return [(s - t) * 1000 for t, s in zip(sent, seen, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--redis", action="store_true", help="also LPUSH -> BRPOP on Redis")
    args = ap.parse_args()
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS pg_floor")
        conn.execute("CREATE TABLE pg_floor (id bigserial PRIMARY KEY, claimed bool NOT NULL)")
        version = conn.execute("SHOW server_version").fetchone()
    print(
        f"PostgreSQL {version[0] if version else '?'}, {args.samples} samples at {args.rate:g}/s, load {os.getloadavg()[0]:.2f}"
    )
    results = {
        "insert": run_insert(args.samples, args.rate),
        "notify": run_notify("notify", args.samples, args.rate),
        "insert+notify": run_notify("insert", args.samples, args.rate),
        "insert+notify+claim": run_notify("claim", args.samples, args.rate),
    }
    if args.redis:
        results["redis"] = run_redis(args.samples, args.rate)
    for name, lat in results.items():
        print(
            f"{name:20s} p50 {pct(lat, 50):6.2f}  p95 {pct(lat, 95):6.2f}  p99 {pct(lat, 99):6.2f}"
            f"  max {max(lat):6.2f} ms"
        )


if __name__ == "__main__":
    main()
