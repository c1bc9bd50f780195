#!/usr/bin/env python3
"""Merge benchmark result files and print the side-by-side table.

Stdlib only, so it runs from any venv (bench/.venv-peers, the project's
.venv, or a bare python3):

    python bench/report.py bench/results/peers.json bench/results/conveyor.json \
        [--json bench/results/merged.json] [--markdown]

Schema: see bench/README.md ("Result schema").
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

SCHEMA = "conveyor-bench/1"
REQUIRED = ("system", "backend", "workload", "metric", "value", "unit", "notes")

# (workload, metric, column title, format)
COLUMNS = [
    ("W1", "enqueue_one_rate", "W1 enqueue one (jobs/s)", "{:,.0f}"),
    ("W1", "enqueue_bulk_rate", "W1 enqueue bulk (jobs/s)", "{:,.0f}"),
    ("W2", "drain_rate", "W2 drain (jobs/s)", "{:,.0f}"),
    ("W3", "latency_p50", "W3 p50 (ms)", "{:.2f}"),
    ("W3", "latency_p95", "W3 p95 (ms)", "{:.2f}"),
    ("W3", "latency_p99", "W3 p99 (ms)", "{:.2f}"),
]


def load(paths: list[str]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    metas = []
    for path in paths:
        with open(path) as fh:
            doc = json.load(fh)
        if isinstance(doc, list):  # a bare list of rows is accepted too
            doc = {"rows": doc}
        for row in doc["rows"]:
            missing = [k for k in REQUIRED if k not in row]
            if missing:
                raise SystemExit(f"{path}: row {row!r} lacks {missing}")
            rows.append(row)
        metas.append({k: v for k, v in doc.items() if k != "rows"} | {"file": path})
    return {"schema": SCHEMA, "sources": metas, "rows": rows}


def _cell(row: dict[str, Any] | None, fmt: str) -> str:
    if row is None:
        return "-"
    if row["value"] is None:
        notes = (row.get("notes") or "").lower()
        for word in ("n/a", "timeout", "error"):
            if notes.startswith(word):
                return word
        return "?"
    text = fmt.format(row["value"])
    if (row.get("notes") or "").lower().startswith(("timeout", "partial")):
        text += "*"
    return text


def table(rows: list[dict[str, Any]], markdown: bool = True) -> str:
    systems: list[tuple[str, str]] = []
    index: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["system"], r["backend"])
        if key not in systems:
            systems.append(key)
        index[(r["system"], r["backend"], r["workload"], r["metric"])] = r
    header = ["system", "backend"] + [c[2] for c in COLUMNS]
    body = [
        [s, b] + [_cell(index.get((s, b, w, m)), fmt) for (w, m, _, fmt) in COLUMNS] for (s, b) in systems
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(header, *body, strict=True)]

    def fmt_row(r: list[str]) -> str:
        return "  ".join(
            x.rjust(w) if i > 1 else x.ljust(w) for i, (x, w) in enumerate(zip(r, widths, strict=True))
        )

    return "\n".join([fmt_row(header), fmt_row(["-" * w for w in widths])] + [fmt_row(r) for r in body])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--json", help="write the merged result file here")
    ap.add_argument("--markdown", action="store_true", help="markdown table instead of plain text")
    ap.add_argument("--notes", action="store_true", help="also list every row that has notes")
    args = ap.parse_args(argv)
    merged = load(args.files)
    print(table(merged["rows"], markdown=args.markdown))
    if args.notes:
        print()
        for r in merged["rows"]:
            if r.get("notes"):
                print(f"- {r['system']}/{r['workload']}/{r['metric']}: {r['notes']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(merged, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
