"""Benchmark: batch engine throughput against a fake provider, as a ratio to the ideal.

Run: .venv/bin/python bench/bench_engine.py [--configs small medium large celery] [--scale 1.0]
     [--processes 1 2] [--runs 3]

The fake OpenAI-compatible server (bench/fake_provider.py: asyncio, its own process, little
CPU, so that the provider's side does not take the cores BatchChat is measured on) answers
every call after L seconds, so the ideal wall time is rows x L / C. Figures:
- engine ratio: ideal / engine time, engine time = from the batch's start (first claim)
  to the last row recorded (the rows' finished_at);
- command ratio: ideal / wall time of the whole `run_batch` command (Python start-up,
  imports, creating the batch, answering, writing the results file);
- CPU ms/row: user + system CPU of the run_batch process / rows (P = 1 only: engine
  processes are children of the fork server, whose CPU the OS does not count to us);
- write transactions and queries per row, counted on the process's connection (with
  engine processes the parent's only: shown as "-");
- P: `run_batch --processes P` (engine processes; each config runs once per P given);
- max in flight: what the server saw at once, next to C;
- before s / after s (run_batch): the command's time outside the engine, from its start
  to the batch's first claim (Python, Django, imports, reading the file, creating the
  batch, the estimate, engine processes starting) and from the last row recorded to its
  exit (the rest of the results file, the summary, the interpreter's exit).
Configurations (issue #28 targets):
- small:  run_batch, SQLite, N=1,000, C=32,  L=200 ms (command >= 0.75)
- medium: run_batch, SQLite, N=2,000, C=64,  L=1 s    (command >= 0.93)
- large:  run_batch, SQLite, N=5,000, C=256, L=500 ms (engine >= 0.85, command >= 0.75)
- celery: 2 Celery workers (one slice of C/2 each), PostgreSQL + Redis, N=2,000, C=64,
          L=200 ms (engine >= 0.90); P does not apply. Started once both workers are
          ready; their pool children are traced, and a second line says where the time
          went (start -> first claim and first call, the tail, gaps between slices,
          claims and groups, rows per worker, the answer step, rows in flight, CPU per
          process while the batch ran: "other" is the rest of the machine). CPU ms/row,
          write transactions and queries per row are the pool children's, in their tasks.
          BENCH_PYSPY=/path/to/py-spy records both workers while the batch runs.
- memory: run_batch, SQLite, N=100,000, C=256, L=50 ms: the peak RSS of the whole
          command (<= 300 MB); CPU-bound, so it takes several minutes. Not run by default.
`--scale 0.2` runs a fifth of the rows (a quick look; figures are less stable).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from celery_trace import (
    WRITES,
    celery_trace_figures,
    child_celery_worker,
    cpu_by_process,
    cpu_during,
    print_celery_details,
)

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_DB = "batchchat_bench"
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/9")
CONFIGS = {
    "small": {"runner": "run_batch", "rows": 1000, "concurrency": 32, "latency": 0.2},
    "medium": {"runner": "run_batch", "rows": 2000, "concurrency": 64, "latency": 1.0},
    "large": {"runner": "run_batch", "rows": 5000, "concurrency": 256, "latency": 0.5},
    "celery": {"runner": "celery", "rows": 2000, "concurrency": 64, "latency": 0.2},
    "memory": {"runner": "run_batch", "rows": 100_000, "concurrency": 256, "latency": 0.05},
}
DEFAULT_CONFIGS = ["small", "medium", "large", "celery"]


def start_fake_provider(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fake_provider.py"), "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


def server_stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/stats", timeout=10) as response:
        return json.load(response)


def reset_server(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url + "/stats/reset", method="POST"), timeout=10)


def fresh_postgres_url() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"


def engine_seconds(batch) -> float:
    from django.db.models import Max

    last = batch.items.aggregate(last=Max("finished_at"))["last"]
    return (last - batch.started_at).total_seconds()


def moments(batch) -> dict:
    """Wall-clock moments (time.time()) of the batch: created, first claim, last row."""
    from django.db.models import Max

    last = batch.items.aggregate(last=Max("finished_at"))["last"]
    return {
        "created_at": batch.created_at.timestamp(),
        "started_at": batch.started_at.timestamp(),
        "last_at": last.timestamp(),
    }


# --- children ------------------------------------------------------------------------------


def child_run_batch(args: argparse.Namespace) -> None:
    """`manage.py run_batch` in this process, with the connection's statements counted."""
    import django

    django.setup()
    from django.core.management import CommandError, call_command
    from django.db import connection

    counts = {"queries": 0, "write_transactions": 0}

    def count(execute, sql, params, many, context):
        counts["queries"] += 1
        head = sql.lstrip()[:16].upper()
        if head.startswith("BEGIN") or (head.startswith(WRITES) and not connection.in_atomic_block):
            counts["write_transactions"] += 1  # an explicit one, or an autocommit write
        return execute(sql, params, many, context)

    # Rows that failed end the command with an error; the figures are printed anyway.
    with connection.execute_wrapper(count), contextlib.suppress(CommandError):
        call_command(
            "run_batch",
            args.file,
            provider="compatible",
            search="none",
            concurrency=args.concurrency,
            processes=args.processes[0],
            out=args.out,
        )
    from batches.models import Batch

    batch = Batch.objects.latest("pk")
    print(
        json.dumps(
            {
                "engine": engine_seconds(batch),
                **moments(batch),
                "done": batch.processed_items,
                "failed": batch.failed_items,
                # The command's peak resident memory (ru_maxrss: KiB on Linux).
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                **counts,
            }
        )
    )


def child_celery(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.core.management import call_command

    from batches import services
    from batches.models import Batch
    from batches.uploads import ParsedRow

    call_command("migrate", verbosity=0)
    rows = [ParsedRow(question=f"Benchmark question {i}?") for i in range(args.rows)]
    batch = services.create_batch_run(
        uploader=None,
        name="bench",
        rows=rows,
        ai_provider="compatible",
        model="local-model",
        search_provider="none",
    )
    trace = Path(tempfile.mkdtemp(prefix="bench-celery-trace-"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", "celery-worker", "--trace", str(trace),
             "--name", f"bench{n}@%h"],
            cwd=ROOT,
            start_new_session=True,
        )
        for n in range(2)
    ]  # fmt: skip
    # Both workers started (Django, the SDKs, the pool child forked) before the first task
    # is queued: their start-up is not the engine's time.
    deadline = time.monotonic() + 120
    while len(list(trace.glob("ready-*"))) < len(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    cpu_before = cpu_by_process()
    spies = []
    if os.environ.get("BENCH_PYSPY"):
        # py-spy on each worker and its pool child while the batch runs (collapsed stacks).
        spies = [
            subprocess.Popen(
                [os.environ["BENCH_PYSPY"], "record", "--pid", str(proc.pid), "--subprocesses",
                 "--threads", "--format", "raw", "--rate", "200", "--nonblocking",
                 "-o", str(trace / f"spy-{n}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for n, proc in enumerate(workers)
        ]  # fmt: skip
        time.sleep(1)
    services.start_batch(batch=batch)
    cpu_after = {}
    next_snapshot = time.monotonic() + 1.0
    while Batch.objects.get(pk=batch.pk).status != Batch.Status.COMPLETED:
        # Snapshots as it runs: a process that ends (a task's database connection) keeps
        # its last figure.
        if time.monotonic() >= next_snapshot:
            cpu_after |= cpu_by_process()
            next_snapshot = time.monotonic() + 1.0
        time.sleep(0.1)
    cpu_after |= cpu_by_process()
    for spy in spies:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=30)
    if spies:
        print(f"py-spy: {trace}", file=sys.stderr)
    for proc in workers:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    batch.refresh_from_db()
    figures = celery_trace_figures(trace, batch)
    workers_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(
        json.dumps(
            {
                "engine": engine_seconds(batch),
                "done": batch.processed_items,
                "failed": batch.failed_items,
                "workers_cpu": workers_cpu,
                "started_at": batch.started_at.timestamp(),
                "cpu_during": cpu_during(cpu_before, cpu_after, [p.pid for p in workers]),
                **figures,
            }
        )
    )


# --- parent --------------------------------------------------------------------------------


def base_env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "batchchat.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-bench-only-secret-key-0123456789",
        "COMPATIBLE_BASE_URL": url + "/v1",
        "COMPATIBLE_MODELS": "local-model",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
    }


def run_config(name: str, config: dict, url: str, processes: int = 1) -> dict:
    env = base_env(url)
    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    rows, concurrency = config["rows"], config["concurrency"]
    if config["runner"] == "run_batch":
        env["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
        # A batch above the default limits (10,000 rows) is allowed by raising them.
        env["MAX_BATCH_ITEMS"] = str(max(rows, 10_000))
        env.pop("CELERY_BROKER_URL", None)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        questions = tmp / "questions.csv"
        with open(questions, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["question"])
            writer.writerows([f"Benchmark question {i}?"] for i in range(rows))
        command = [
            sys.executable, __file__, "--child", "run_batch", "--file", str(questions),
            "--concurrency", str(concurrency), "--out", str(tmp / "results.csv"),
            "--processes", str(processes),
        ]  # fmt: skip
    else:
        import redis

        redis.Redis.from_url(BROKER_URL).flushdb()
        env["DATABASE_URL"] = fresh_postgres_url()
        env["CELERY_BROKER_URL"] = BROKER_URL
        env["BATCH_PARALLEL_SLICES"] = "2"
        env["BATCH_CONCURRENCY"] = str(concurrency // 2)
        env["BATCH_SLICE_SECONDS"] = "60"
        command = [sys.executable, __file__, "--child", "celery", "--rows", str(rows)]
    reset_server(url)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    began = time.time()
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode not in (0, 1) or not out.stdout.strip():
        raise SystemExit(f"{name} failed:\n{out.stdout}\n{out.stderr}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if config["runner"] == "run_batch" and "started_at" in figures:
        # Outside the engine: from the command's start to the first claim, and from the
        # last row recorded to the command's exit.
        figures["before"] = figures["started_at"] - began
        figures["after"] = wall - (figures["last_at"] - began)
    return figures | {"wall": wall, "cpu": cpu, "server": server_stats(url)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=DEFAULT_CONFIGS)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the rows to run")
    parser.add_argument("--child", choices=["run_batch", "celery", "celery-worker"])
    parser.add_argument("--trace")
    parser.add_argument("--name")
    parser.add_argument("--file")
    parser.add_argument("--out")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1, os.cpu_count() or 1],
        help="run_batch --processes, one run of each config per value (default: 1 and the "
        "number of cores)",
    )
    parser.add_argument("--runs", type=int, default=1, help="runs of each config and P")
    args = parser.parse_args()
    if args.child == "run_batch":
        child_run_batch(args)
        return
    if args.child == "celery":
        child_celery(args)
        return
    if args.child == "celery-worker":
        child_celery_worker(args)
        return

    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(
        f"{'config':<8} {'runner':<10} {'P':>2} {'N':>6} {'C':>4} {'L ms':>5} {'ideal s':>8} "
        f"{'engine s':>8} {'ratio':>6} {'cmd s':>6} {'ratio':>6} {'CPU ms/row':>10} "
        f"{'wtx/row':>7} {'q/row':>6} {'max in flight':>13} {'peak RSS MB':>11} {'load':>5} "
        f"{'before s':>8} {'after s':>7}"
    )
    for name in args.configs:
        config = dict(CONFIGS[name])
        config["rows"] = max(int(config["rows"] * args.scale), config["concurrency"])
        run_batch = config["runner"] == "run_batch"
        for processes in args.processes if run_batch else [2]:
            for _ in range(args.runs):
                print_row(name, config, processes, run_once(name, config, processes))


def run_once(name: str, config: dict, processes: int) -> dict:
    fake, url = start_fake_provider(config["latency"])
    try:
        return run_config(name, config, url, processes)
    finally:
        fake.terminate()
        fake.wait(timeout=10)


def print_row(name: str, config: dict, processes: int, figures: dict) -> None:
    rows = config["rows"]
    ideal = rows * config["latency"] / config["concurrency"]
    run_batch = config["runner"] == "run_batch"
    one = processes == 1
    print(
        f"{name:<8} {config['runner']:<10} {processes:>2} {rows:>6} {config['concurrency']:>4} "
        f"{config['latency'] * 1000:>5.0f} {ideal:>8.2f} {figures['engine']:>8.2f} "
        f"{ideal / figures['engine']:>6.2f} "
        + (
            f"{figures['wall']:>6.2f} {ideal / figures['wall']:>6.2f} "
            # The engine processes are the fork server's children, not run_batch's: their
            # CPU is not in RUSAGE_CHILDREN.
            + (f"{figures['cpu'] * 1000 / rows:>10.2f} " if one else f"{'-':>10} ")
            + (
                f"{figures['write_transactions'] / rows:>7.3f} {figures['queries'] / rows:>6.2f} "
                if one
                else f"{'-':>7} {'-':>6} "
            )
            if run_batch
            else f"{'':>6} {'':>6} {figures['task_cpu'] * 1000 / rows:>10.2f} "
            f"{figures['write_transactions'] / rows:>7.3f} {figures['queries'] / rows:>6.2f} "
        )
        + f"{figures['server']['max_in_flight']:>13}"
        + (f" {figures['peak_mb']:>11.0f}" if run_batch else f" {'':>11}")
        + f" {os.getloadavg()[0]:>5.1f}"
        + (f" {figures['before']:>8.2f} {figures['after']:>7.2f}" if "before" in figures else "")
        + (f"  ({figures['failed']} failed)" if figures["failed"] else ""),
        flush=True,
    )
    if not run_batch:
        print_celery_details(figures)


if __name__ == "__main__":
    main()
