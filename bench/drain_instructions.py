#!/usr/bin/env python3
"""Instructions per drained job on SQLite, counted by callgrind: a figure the machine's noise
does not move (run by hand, not by pytest; needs valgrind).

    bench/.venv-peers/bin/python bench/drain_instructions.py --jobs 2000 /work/main/src /work/wt-x/src

For each source tree: a fresh SQLite file gets ``--jobs`` ``noop_jobs:noop`` function jobs
(bulk, as W2's pre-queue), then one ``conveyor worker --burst --concurrency C --import
noop_jobs`` drains them under ``valgrind --tool=callgrind``; the same with no job gives the
worker's fixed cost (start, migrations check, exit), which is subtracted. Printed per tree:
instructions per job (worker and SQLite together, every thread), the number of claim
transactions (distinct attempt start times) and jobs per transaction, because the batch sizes
follow the timing of threads under valgrind and a change that alters them alters the count.

Throughput on this 2-core machine swings by +-30-50% from one run to the next; an
instruction count is the same within ~1% for the same code, so A/B comparisons of the
worker's hot path use this, and the drain figures come from ``run_peers.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile

BENCH = os.path.dirname(os.path.abspath(__file__))


def prepare(tree: str, path: str, jobs: int) -> None:
    code = (
        "import sys\n"
        "from conveyor.app import App\n"
        "from conveyor.engine.jobs import SubmitRequest\n"
        f"assert __import__('conveyor').__file__.startswith({tree!r})\n"
        f"app = App.open('sqlite:///{path}')\n"
        f"n = {jobs}\n"
        "for i in range(0, n, 1000):\n"
        "    app.jobs.submit_many_brief([SubmitRequest(function='noop_jobs:noop', payload=k)"
        " for k in range(i, min(n, i + 1000))])\n"
        "app.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(tree), cwd=BENCH)


def _env(tree: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([tree, BENCH])
    env["PYTHONHASHSEED"] = "0"
    return env


def drain(tree: str, path: str, concurrency: int, out: str) -> int:
    """Instructions of one burst worker over the file at ``path``."""
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--fair-sched=yes",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "conveyor",
        "worker",
        "--database",
        f"sqlite:///{path}",
        "--burst",
        "--concurrency",
        str(concurrency),
        "--import",
        "noop_jobs",
    ]
    subprocess.run(
        argv, check=True, env=_env(tree), cwd=BENCH, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return callgrind_total(out)


def callgrind_total(out: str) -> int:
    """The instruction count of a callgrind output file (all threads)."""
    with open(out) as f:
        for line in f:
            m = re.match(r"(?:totals|summary): (\d+)", line)
            if m:
                return int(m.group(1))
    raise RuntimeError(f"no totals in {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trees", nargs="+", help="source folders (each holding the conveyor package)")
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=1, help="rounds, trees interleaved in each")
    args = ap.parse_args()
    results: dict[str, list[dict[str, float]]] = {t: [] for t in args.trees}
    with tempfile.TemporaryDirectory(prefix="drain-ir-") as tmp:
        for rnd in range(args.rounds):
            for k, tree in enumerate(args.trees):
                figures = {}
                for n in (0, args.jobs):
                    path = os.path.join(tmp, f"r{rnd}-t{k}-n{n}.db")
                    prepare(tree, path, n)
                    figures[n] = drain(
                        tree, path, args.concurrency, os.path.join(tmp, f"cg-r{rnd}-t{k}-n{n}.out")
                    )
                    if n:
                        with sqlite3.connect(path) as conn:
                            done = conn.execute(
                                "SELECT COUNT(*) FROM jobs WHERE state = 'SUCCEEDED'"
                            ).fetchone()[0]
                            txs = conn.execute(  # a claim's jobs share their start
                                "SELECT COUNT(DISTINCT attempt_started_at) FROM jobs WHERE state = 'SUCCEEDED'"
                            ).fetchone()[0]
                        assert done == n, f"{tree}: {done} of {n} jobs succeeded"
                per_job = (figures[args.jobs] - figures[0]) / args.jobs
                row = {
                    "ir_per_job": round(per_job),
                    "fixed_ir": figures[0],
                    "claims": txs,
                    "jobs_per_claim": round(n / txs, 1),
                }
                results[tree].append(row)
                print(json.dumps({"round": rnd, "tree": tree, **row}), flush=True)
    base = results[args.trees[0]]
    for tree in args.trees:
        rows = results[tree]
        ratio = [r["ir_per_job"] / b["ir_per_job"] for r, b in zip(rows, base, strict=True)]
        print(
            f"{tree}: instructions/job {', '.join(str(r['ir_per_job']) for r in rows)};"
            f" jobs/claim {', '.join(str(r['jobs_per_claim']) for r in rows)};"
            f" vs first tree x{', x'.join(f'{x:.3f}' for x in ratio)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
