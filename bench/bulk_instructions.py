#!/usr/bin/env python3
"""Instructions per job of a bulk submission on SQLite, counted by callgrind (run by hand).

    .venv/bin/python bench/bulk_instructions.py /path/a/src /path/b/src

For each source tree, a child process opens a fresh SQLite file and submits ``--jobs``
function jobs through ``JobService.submit_many_brief`` in batches of ``--batch`` (as W1 bulk:
one ``SubmitRequest`` per job, payload ``{"args": [n]}``), under ``valgrind
--tool=callgrind``; the same with no job beyond a first warming batch gives the fixed cost,
which is subtracted. Counted: the Python around the statements and SQLite's own work alike,
but not the kernel's (the WAL writes), which callgrind does not see. The same code gives the
same count within ~0.1%, whatever the machine is doing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from drain_instructions import callgrind_total

CHILD = """
import os, sys
from conveyor.app import App
from conveyor.engine.jobs import SubmitRequest
tree, n, batch, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
assert __import__("conveyor").__file__.startswith(tree), "PYTHONPATH names another tree"
app = App.open(f"sqlite:///{path}")
app.jobs.submit_many_brief([SubmitRequest(function="m:f", payload={"args": [k]}) for k in range(batch)])
for i in range(0, n, batch):
    app.jobs.submit_many_brief(
        [SubmitRequest(function="m:f", payload={"args": [k]}) for k in range(i, min(n, i + batch))]
    )
app.close()
"""


def count(tree: str, jobs: int, batch: int, tmp: str) -> int:
    out = os.path.join(tmp, f"cg-{jobs}.out")
    env = dict(os.environ, PYTHONPATH=tree, PYTHONHASHSEED="0")
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", CHILD]
    subprocess.run(
        [*argv, tree, str(jobs), str(batch), os.path.join(tmp, f"bulk-{jobs}.db")],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return callgrind_total(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trees", nargs="+", help="source folders (each holding the conveyor package)")
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args()
    first = None
    for tree in args.trees:
        tree = os.path.abspath(tree)
        with tempfile.TemporaryDirectory(prefix="bulk-ir-") as tmp:
            per_job = (count(tree, args.jobs, args.batch, tmp) - count(tree, 0, args.batch, tmp)) / args.jobs
        first = first or per_job
        print(
            f"{tree}: {per_job:,.0f} instructions per job (x{per_job / first:.3f} of the first tree)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
