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
import statistics
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


def is_peer(system: str) -> bool:
    """A system the targets compare Conveyor against (not Conveyor, not a storage baseline)."""
    return not system.startswith("conveyor") and not system.endswith("-baseline")


def by_round(rows: list[dict[str, Any]]) -> dict[int, dict[tuple[str, str], float]]:
    """round -> (system, metric) -> value; rows without a round (one run per file) count as round 0."""
    out: dict[int, dict[tuple[str, str], float]] = {}
    for r in rows:
        if r["value"] is not None:
            out.setdefault(int(r.get("round", 0)), {})[(r["system"], r["metric"])] = float(r["value"])
    return dict(sorted(out.items()))


def median_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (system, workload, metric): the median over the rounds, notes saying of how many."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["system"], r["backend"], r["workload"], r["metric"]), []).append(r)
    out = []
    for group in groups.values():
        values = [r["value"] for r in group if r["value"] is not None]
        first = dict(group[0])
        first.pop("round", None)
        if values:
            first["value"] = statistics.median(values)
            first["notes"] = f"median of {len(values)} of {len(group)} rounds"
        out.append(first)
    return out


# (title, system, metric, comparison, against): against is a number, "peers" (the best peer in
# the same round: highest rate, lowest latency) or a system's name; the figure is
# system/against for rates, system's value for latencies against a number
TARGETS = [
    ("W2 drain SQLite >= 3x the fastest peer", "conveyor-sqlite", "drain_rate", ">= 3x", "peers"),
    ("W2 drain PostgreSQL >= 3x the fastest peer", "conveyor-postgres", "drain_rate", ">= 3x", "peers"),
    ("W1 one at a time SQLite >= the fastest peer", "conveyor-sqlite", "enqueue_one_rate", ">= 1x", "peers"),
    (
        "W1 one at a time PostgreSQL >= 80% of bare INSERT+COMMIT",
        "conveyor-postgres",
        "enqueue_one_rate",
        ">= 0.8x",
        "psycopg-baseline",
    ),
    ("W1 bulk SQLite >= 50,000 jobs/s", "conveyor-sqlite", "enqueue_bulk_rate", ">= 50000", None),
    ("W1 bulk PostgreSQL >= 50,000 jobs/s", "conveyor-postgres", "enqueue_bulk_rate", ">= 50000", None),
    ("W3 p99 PostgreSQL < 10 ms", "conveyor-postgres", "latency_p99", "< 10", None),
    ("W3 p99 SQLite below every peer", "conveyor-sqlite", "latency_p99", "< peers", "peers"),
    ("W3 p99 PostgreSQL below every peer", "conveyor-postgres", "latency_p99", "< peers", "peers"),
]


def verdict(rows: list[dict[str, Any]]) -> list[str]:
    """The core issue's targets, judged round by round: the figure of each round, in how many
    rounds the target was met, and the median figure. A round that lacks the system or its
    comparison is left out of that target."""
    rounds = by_round(rows)
    lines = []
    for title, system, metric, op, against in TARGETS:
        figures: list[tuple[float, bool, str]] = []
        for values in rounds.values():
            mine = values.get((system, metric))
            if mine is None:
                continue
            if against == "peers":
                theirs = [(v, s) for (s, m), v in values.items() if m == metric and is_peer(s)]
                if not theirs:
                    continue
                ref, who = min(theirs) if metric.startswith("latency") else max(theirs)
            elif against is not None:
                if (against, metric) not in values:
                    continue
                ref, who = values[(against, metric)], against
            else:
                ref, who = 0.0, ""
            if op.endswith("x"):
                ratio = mine / ref
                figures.append(
                    (ratio, ratio >= float(op[3:-1]), f"{ratio:.2f}x ({mine:,.0f} vs {who} {ref:,.0f})")
                )
            elif op == "< peers":
                figures.append((mine, mine < ref, f"{mine:.2f} vs {who} {ref:.2f}"))
            elif op.startswith(">="):
                figures.append((mine, mine >= float(op[3:]), f"{mine:,.0f}"))
            else:
                figures.append((mine, mine < float(op[2:]), f"{mine:.2f}"))
        if not figures:
            lines.append(f"- {title}: not measured")
            continue
        met = sum(1 for _, ok, _ in figures if ok)
        med = statistics.median(f for f, _, _ in figures)
        shown = (
            f"{med:.2f}x"
            if op.endswith("x")
            else (f"{med:.2f} ms" if metric.startswith("latency") else f"{med:,.0f}")
        )
        lines.append(
            f"- {title}: met in {met} of {len(figures)} rounds, median {shown}; "
            + "; ".join(text for _, _, text in figures)
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+")
    ap.add_argument("--json", help="write the merged result file here")
    ap.add_argument("--markdown", action="store_true", help="markdown table instead of plain text")
    ap.add_argument("--notes", action="store_true", help="also list every row that has notes")
    ap.add_argument(
        "--verdict",
        action="store_true",
        help="the table of medians over rounds and the core issue's targets, round by round"
        " (rows without a round: each file is one round)",
    )
    args = ap.parse_args(argv)
    merged = load(args.files)
    if args.verdict:
        rows = []  # each file's rounds follow the previous file's
        offset = 0
        for path in args.files:
            part = load([path])["rows"]
            rounds = {int(r.get("round", 0)) for r in part}
            rows += [r | {"round": offset + int(r.get("round", 0))} for r in part]
            offset += max(rounds, default=0) + 1
        print(table(median_rows(rows), markdown=args.markdown))
        print()
        print("\n".join(verdict(rows)))
        return 0
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
