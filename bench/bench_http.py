"""HTTP submission throughput and latency (run by hand, not part of pytest).

    python bench/bench_http.py                         # SQLite (temp file) and PostgreSQL
    python bench/bench_http.py --backend sqlite --seconds 10 --clients 16

Starts ``conveyor server --no-worker --no-scheduler --rate-limit 0`` as a subprocess, then
drives it from client processes (``--procs`` x ``--clients`` threads, kept-alive
connections): single submissions (raw HTTP and the SDK's ``Client.submit``) and bulk
submissions (``POST /v1/jobs/batch`` of ``--batch`` jobs). Prints jobs/s and latency
percentiles per scenario. The load generator shares the machine with the server.

With ``--load wrk`` (or ``both``, the default when ``wrk`` is installed: ``apt-get install
wrk``) the raw-HTTP scenarios are also driven by wrk (C, ``--connections`` kept-alive
connections on one thread), which leaves the cores to the server; the Python generator
stays for the SDK-versus-raw comparison. ``server_cpu_ms`` is the server's CPU time
(user + system, all its processes) per request: the figure that least depends on what else
runs on the machine. ``load`` is the 1-minute load average when the scenario ended.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

PG_ADMIN = os.environ.get("CONVEYOR_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _worker(args: tuple[str, int, str, str, float, int, int]) -> tuple[int, list[float]]:
    """One load process: ``threads`` threads submitting until the deadline. (jobs, latencies)."""
    mode, port, token, url, seconds, threads, batch = args
    done = [0]
    lat: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop() -> None:
        local_lat: list[float] = []
        count = 0
        if mode == "sdk":
            from conveyor.client import Client

            client = Client(url, token)
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                client.submit(command=["true"])
                local_lat.append(time.perf_counter() - t0)
                count += 1
            client.close()
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            if mode == "bulk":
                body = json.dumps({"jobs": [{"command": ["true"]}] * batch}).encode()
                path, per = "/v1/jobs/batch", batch
            else:
                body, path, per = b'{"command": ["true"]}', "/v1/jobs", 1
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status >= 300:
                    raise RuntimeError(f"HTTP {resp.status}")
                local_lat.append(time.perf_counter() - t0)
                count += per
            conn.close()
        with lock:
            done[0] += count
            lat.extend(local_lat)

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return done[0], lat


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def run(
    mode: str, port: int, token: str, url: str, seconds: float, procs: int, clients: int, batch: int
) -> dict[str, Any]:
    started = time.monotonic()
    with multiprocessing.Pool(procs) as pool:
        parts = pool.map(_worker, [(mode, port, token, url, seconds, clients, batch)] * procs)
    elapsed = time.monotonic() - started
    jobs = sum(p[0] for p in parts)
    lat = [x for p in parts for x in p[1]]
    return {
        "scenario": mode,
        "jobs": jobs,
        "jobs_per_s": round(jobs / seconds),
        "requests": len(lat),
        "p50_ms": round(pct(lat, 50) * 1000, 2),
        "p99_ms": round(pct(lat, 99) * 1000, 2),
        "elapsed_s": round(elapsed, 1),
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children so far; 0 where /proc is missing."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(c) for c in children.read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(f"wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def run_wrk(
    mode: str, port: int, token: str, seconds: float, connections: int, batch: int, tmp: Path
) -> dict[str, Any]:
    """One raw-HTTP scenario driven by wrk: its requests/s and latency percentiles."""
    if mode == "bulk":
        body, path, per = json.dumps({"jobs": [{"command": ["true"]}] * batch}), "/v1/jobs/batch", batch
    else:
        body, path, per = '{"command": ["true"]}', "/v1/jobs", 1
    script = tmp / f"wrk_{mode}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    return {
        "scenario": f"{mode}/wrk",
        "jobs": requests * per,
        "jobs_per_s": round(requests * per / seconds),
        "requests": requests,
        "p50_ms": round(_seconds(lat["50"]) * 1000, 2),
        "p99_ms": round(_seconds(lat["99"]) * 1000, 2),
        "elapsed_s": seconds,
    }


def database(backend: str, tmp: Path) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", None
    name = f"conveyor_bench_{os.getpid()}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"{base}/{name}", drop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--procs", type=int, default=2, help="load processes")
    parser.add_argument("--clients", type=int, default=8, help="threads per load process")
    parser.add_argument("--batch", type=int, default=1000, help="jobs per bulk request")
    parser.add_argument("--scenarios", default="single,sdk,bulk")
    parser.add_argument(
        "--load",
        choices=["python", "wrk", "both"],
        default="both" if shutil.which("wrk") else "python",
        help="load generator of the raw-HTTP scenarios (single, bulk); sdk is always Python",
    )
    parser.add_argument("--connections", type=int, default=32, help="wrk's connections (single)")
    parser.add_argument("--bulk-connections", type=int, default=4, help="wrk's connections (bulk)")
    parser.add_argument("--http-processes", type=int, default=1, help="the server's HTTP processes")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = []
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            url, cleanup = database(backend, tmp)
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
            server = subprocess.Popen(
                [sys.executable, "-m", "conveyor", "server", "--database", url, "--port", str(port),
                 "--no-worker", "--no-scheduler", "--rate-limit", "0", "--log-level", "WARNING"]
                + (["--http-processes", str(args.http_processes)] if args.http_processes > 1 else []),
                cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                for _ in range(100):
                    try:
                        socket.create_connection(("127.0.0.1", port), 0.2).close()
                        break
                    except OSError:
                        time.sleep(0.1)
                token = subprocess.run(
                    [sys.executable, "-m", "conveyor", "tokens", "create", "--scope", "admin", "--database", url],
                    cwd=tmp, env=env, capture_output=True, text=True, check=True,
                ).stdout.strip()  # fmt: skip
                base = f"http://127.0.0.1:{port}"
                for mode in args.scenarios.split(","):
                    loads = ["python"] if mode == "sdk" else ["python", "wrk"]
                    if args.load != "both" and mode != "sdk":
                        loads = [args.load]
                    for load in loads:
                        cpu0 = cpu_seconds(server.pid)
                        if load == "wrk":
                            conns = args.bulk_connections if mode == "bulk" else args.connections
                            r = run_wrk(mode, port, token, args.seconds, conns, args.batch, tmp)
                        else:
                            r = run(
                                mode, port, token, base, args.seconds, args.procs, args.clients, args.batch
                            )
                        cpu = cpu_seconds(server.pid) - cpu0
                        r["server_cpu_ms"] = round(cpu * 1000 / max(1, r["requests"]), 3)
                        r["load"] = round(load_average(), 2)
                        r["backend"] = backend
                        results.append(r)
                        print(json.dumps(r), flush=True)
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(30)
                if cleanup is not None:
                    cleanup()
    print()
    print(
        f"{'backend':9} {'scenario':11} {'jobs/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'server CPU ms/req':>18} {'load':>5}"
    )
    for r in results:
        print(
            f"{r['backend']:9} {r['scenario']:11} {r['jobs_per_s']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8}"
            f" {r['server_cpu_ms']:>18} {r['load']:>5}"
        )


if __name__ == "__main__":
    main()
