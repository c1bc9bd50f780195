#!/usr/bin/env python3
"""How fast bulk cancel, retry and terminate go (run by hand in the project venv, not by pytest).

    .venv/bin/python bench/bulk_actions.py --backend sqlite --jobs 20000
    .venv/bin/python bench/bulk_actions.py --backend postgres --jobs 20000

Submits ``--jobs`` runnable command jobs in one bulk submission to a fresh database, then
through ``JobService.act_on_many``: cancels every waiting job (``all``), retries the
cancelled ones, terminates every one (no worker runs: they are waiting, so they fail).
Prints jobs changed and jobs/s for each. PostgreSQL: the database ``conveyor_bench_bulk``
on ``$CONVEYOR_BENCH_PG_ADMIN``'s server (default the test server) is dropped and created.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import psycopg

from conveyor.app import App
from conveyor.engine.jobs import JobSelection, SubmitRequest
from conveyor.model import JobState

ADMIN = os.environ.get("CONVEYOR_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
DB = "conveyor_bench_bulk"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--jobs", type=int, default=20_000)
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="bulk-actions-")
    if args.backend == "sqlite":
        url = f"sqlite:///{folder}/conveyor.db"
    else:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{DB}"')
        url = ADMIN.rsplit("/", 1)[0] + "/" + DB
    try:
        with App.open(url, blob_dir=f"{folder}/blobs") as app:
            for start in range(0, args.jobs, 10_000):
                n = min(10_000, args.jobs - start)
                app.jobs.submit_many_brief([SubmitRequest(command=["true"]) for _ in range(n)])
            steps = (
                ("cancel", JobSelection(everything=True)),
                ("retry", JobSelection(states=(JobState.CANCELLED,))),
                ("terminate", JobSelection(everything=True)),
            )
            for action, selection in steps:
                t0 = time.perf_counter()
                out = app.jobs.act_on_many(action, selection)
                took = time.perf_counter() - t0
                print(
                    f"{args.backend} {action}: {len(out.changed):,} jobs in {took:.2f} s"
                    f" = {len(out.changed) / took:,.0f} jobs/s"
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
