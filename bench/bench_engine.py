"""Benchmark: batch engine throughput against the fake provider, compared with the ideal.

Run: .venv/bin/python bench/bench_engine.py [--rows 2000] [--latency 0.2]
     [--concurrency 8 32] [--runners inline celery]

Each configuration runs in a fresh child process against a fresh database:
- inline: SQLite file, one caller driving process_for_duration slices (as the batch page
  and run_batch do) with C threads;
- celery: PostgreSQL + Redis, 2 Celery worker processes (one slice at a time each),
  BATCH_PARALLEL_SLICES=2 and C/2 threads per slice, so C calls are in flight in all.
The fake provider (chats.tests.fake_servers) answers every call after `latency` seconds,
so the ideal wall time is rows x latency / C; the ratio shows what BatchChat adds.
DEBUG is off, as in production.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_DB = "batchchat_bench"
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/9")


def start_fake_provider(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chats.tests.fake_servers", "--latency", str(latency)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


def fresh_postgres_url() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"


def child(args: argparse.Namespace) -> None:
    """One configuration, in its own process (settings come from the environment)."""
    import django

    django.setup()
    from django.core.management import call_command

    from batches import services
    from batches.ingest import ParsedRow
    from batches.models import Batch

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
    workers = []
    started = time.monotonic()
    if args.runner == "inline":
        while True:
            result = services.process_for_duration(
                batch_id=batch.pk, seconds=20, concurrency=args.concurrency[0]
            )
            if not result.should_continue:
                break
    else:
        for n in range(2):
            workers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "batchchat", "worker",
                     "--concurrency", "1", "--pool", "prefork", "--loglevel", "WARNING",
                     "--without-gossip", "--without-mingle", "-n", f"bench{n}@%h"],
                    cwd=ROOT,
                    start_new_session=True,
                )
            )  # fmt: skip
        time.sleep(3)  # let both workers connect before the first task is queued
        started = time.monotonic()
        services.start_batch(batch=batch)
        while Batch.objects.get(pk=batch.pk).status != Batch.Status.COMPLETED:
            time.sleep(0.1)
    elapsed = time.monotonic() - started
    for proc in workers:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    batch.refresh_from_db()
    print(
        json.dumps(
            {"elapsed": elapsed, "done": batch.processed_items, "failed": batch.failed_items}
        )
    )


def run_configuration(runner: str, concurrency: int, args: argparse.Namespace, url: str) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "batchchat.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-bench-only-secret-key-0123456789",
        "COMPATIBLE_BASE_URL": url + "/v1",
        "COMPATIBLE_MODELS": "local-model",
        # The per-process cap on calls to one provider must not be what limits C.
        "PROVIDER_MAX_CONCURRENCY": str(max(concurrency, 16)),
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
    }
    tmp = tempfile.mkdtemp(prefix="bench-engine-")
    if runner == "inline":
        env["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
        env.pop("CELERY_BROKER_URL", None)
    else:
        import redis

        redis.Redis.from_url(BROKER_URL).flushdb()
        env["DATABASE_URL"] = fresh_postgres_url()
        env["CELERY_BROKER_URL"] = BROKER_URL
        env["BATCH_PARALLEL_SLICES"] = "2"
        env["BATCH_CONCURRENCY"] = str(max(concurrency // 2, 1))
        env["BATCH_SLICE_SECONDS"] = "20"
    out = subprocess.run(
        [sys.executable, __file__, "--child", runner, "--rows", str(args.rows),
         "--concurrency", str(concurrency)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--runners", nargs="+", default=["inline", "celery"])
    parser.add_argument("--child", choices=["inline", "celery"])
    args = parser.parse_args()
    if args.child:
        args.runner = args.child
        child(args)
        return

    fake, url = start_fake_provider(args.latency)
    try:
        print(f"rows={args.rows} latency={args.latency * 1000:.0f} ms, fake provider at {url}")
        print(f"{'runner':<32} {'C':>3} {'seconds':>8} {'ideal':>7} {'ratio':>6} {'rows/s':>7}")
        for runner in args.runners:
            for concurrency in args.concurrency:
                figures = run_configuration(runner, concurrency, args, url)
                ideal = args.rows * args.latency / concurrency
                label = "inline, SQLite" if runner == "inline" else "celery (2 workers), PostgreSQL"
                print(
                    f"{label:<32} {concurrency:>3} {figures['elapsed']:>8.1f} {ideal:>7.1f} "
                    f"{figures['elapsed'] / ideal:>6.2f} {args.rows / figures['elapsed']:>7.1f}"
                    + (f"  ({figures['failed']} failed)" if figures["failed"] else ""),
                    flush=True,
                )
    finally:
        fake.terminate()
        fake.wait(timeout=10)


if __name__ == "__main__":
    main()
