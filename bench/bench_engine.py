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
WRITES = ("INSERT", "UPDATE", "DELETE")


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


def cpu_by_process() -> dict[int, tuple[str, float, int]]:
    """Every process on the machine: its command line, CPU seconds (user + system) and
    parent."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / tick
        found[int(entry.name)] = (cmdline, cpu, int(fields[1]))
    return found


def cpu_during(before: dict, after: dict, workers: list[int]) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by kind of process: the Celery workers
    (parents, and their pool children), PostgreSQL, Redis, the fake provider, this
    process, and everything else (other users of the machine)."""
    totals: dict[str, float] = {}
    for pid, (cmdline, cpu, parent) in after.items():
        spent = cpu - before.get(pid, ("", 0.0, 0))[1]
        if pid in workers:
            kind = "worker parent"
        elif parent in workers:
            kind = "worker child"
        elif cmdline.startswith("postgres"):
            kind = "postgres"
        elif "redis" in cmdline:
            kind = "redis"
        elif "fake_provider" in cmdline:
            kind = "fake provider"
        elif pid == os.getpid():
            kind = "bench"
        else:
            kind = "other"
        totals[kind] = round(totals.get(kind, 0.0) + spent, 2)
    return totals


def child_celery_worker(args: argparse.Namespace) -> None:
    """One `celery worker` (concurrency 1, prefork), its pool child traced: each task's
    CPU and times, each claim and each written group (time, slice, rows), and the
    statements on its connection, appended to TRACE/<pid>.jsonl."""
    from celery import signals

    from batchchat.celery import app

    @signals.worker_ready.connect
    def ready(**_kwargs) -> None:
        (Path(args.trace) / f"ready-{os.getpid()}").touch()

    @signals.worker_process_init.connect
    def trace_child(**_kwargs) -> None:
        from django.db import connection
        from django.db.backends.signals import connection_created

        from batches.engine.claims import Claims
        from batches.engine.writer import Writer

        log = open(Path(args.trace) / f"{os.getpid()}.jsonl", "a", buffering=1)  # noqa: SIM115
        counts = {"queries": 0, "write_transactions": 0}

        def emit(**event) -> None:
            log.write(json.dumps({"t": time.time(), "pid": os.getpid(), **event}) + "\n")

        def count(execute, sql, params, many, context):
            counts["queries"] += 1
            head = sql.lstrip()[:16].upper()
            if head.startswith("BEGIN") or (
                head.startswith(WRITES) and not connection.in_atomic_block
            ):
                counts["write_transactions"] += 1
            return execute(sql, params, many, context)

        def wrap(sender, connection, **_kw) -> None:
            connection.execute_wrappers.append(count)

        connection_created.connect(wrap, weak=False)
        claim, write_group = Claims.claim, Writer.write_group

        def traced_claim(self):
            started = time.time()
            claimed = claim(self)
            emit(kind="claim", owner=self.owner, rows=len(claimed), asked=self.size,
                 started=started)  # fmt: skip
            return claimed

        def traced_write(self, group):
            started = time.time()
            done, failed = write_group(self, group)
            emit(kind="write", owner=self.owner, rows=done + failed, started=started)
            return done, failed

        Claims.claim, Writer.write_group = traced_claim, traced_write
        from batches.engine import slices
        from batches.engine.status import StatusFence

        rows_timed = {"n": 0, "answer": 0.0, "fence": 0.0, "samples": 0, "in_flight": 0}
        answer, batch_active, run = slices.answer, StatusFence.batch_active, slices.Slice.run

        async def timed_answer(turn):
            started = time.monotonic()
            try:
                return await answer(turn)
            finally:
                rows_timed["n"] += 1
                rows_timed["answer"] += time.monotonic() - started

        async def timed_fence(self):
            started = time.monotonic()
            try:
                return await batch_active(self)
            finally:
                rows_timed["fence"] += time.monotonic() - started

        async def sampled_run(self):
            import asyncio

            async def sample():
                while True:
                    await asyncio.sleep(0.01)
                    if self.writer.done or self.in_flight:
                        rows_timed["samples"] += 1
                        rows_timed["in_flight"] += self.in_flight

            sampler = asyncio.create_task(sample())
            try:
                return await run(self)
            finally:
                sampler.cancel()

        from batches.engine.caller import CallerThread

        next_row, serve = Claims.next, CallerThread.serve

        async def timed_next(self):
            started = time.monotonic()
            try:
                return await next_row(self)
            finally:
                rows_timed["next"] = rows_timed.get("next", 0.0) + time.monotonic() - started

        profile_dir = os.environ.get("BENCH_PROFILE")

        def timed_serve(self, slice_future):
            started = time.thread_time()
            profilers = []
            if profile_dir:
                import cProfile

                from chats.services import provider_loop

                profilers = [cProfile.Profile(), cProfile.Profile()]
                profilers[0].enable()
                provider_loop().call_soon_threadsafe(profilers[1].enable)
            try:
                return serve(self, slice_future)
            finally:
                rows_timed["db_cpu"] = rows_timed.get("db_cpu", 0.0) + time.thread_time() - started
                if profilers:
                    profilers[0].disable()
                    provider_loop().call_soon_threadsafe(profilers[1].disable)
                    time.sleep(0.1)
                    stamp = f"{os.getpid()}-{time.time():.0f}"
                    profilers[0].dump_stats(f"{profile_dir}/caller-{stamp}.prof")
                    profilers[1].dump_stats(f"{profile_dir}/loop-{stamp}.prof")

        Claims.next, CallerThread.serve = timed_next, timed_serve
        slices.answer, StatusFence.batch_active, slices.Slice.run = (
            timed_answer,
            timed_fence,
            sampled_run,
        )
        cpu = {}

        @signals.task_prerun.connect(weak=False)
        def prerun(**_kw) -> None:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu["start"] = usage.ru_utime + usage.ru_stime
            cpu["queries"] = dict(counts)
            emit(kind="prerun")

        @signals.task_postrun.connect(weak=False)
        def postrun(**_kw) -> None:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            emit(kind="rows", **rows_timed)
            rows_timed.update(
                n=0, answer=0.0, fence=0.0, samples=0, in_flight=0, next=0.0, db_cpu=0.0
            )
            emit(
                kind="postrun",
                cpu=usage.ru_utime + usage.ru_stime - cpu["start"],
                **{k: v - cpu["queries"][k] for k, v in counts.items()},
            )

    app.worker_main(
        ["worker", "--concurrency", "1", "--pool", "prefork", "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "-n", args.name]
    )  # fmt: skip


def celery_trace_figures(trace: Path, batch) -> dict:
    """From the workers' traces: task CPU and statements per row, the slices (rows, first
    claim, last write), the time from a task's start to its first claim, the gaps between
    a worker's slices, and the tail (one worker done, the other still writing)."""
    events = [
        json.loads(line)
        for path in sorted(trace.glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    tasks = [e for e in events if e["kind"] == "postrun"]
    slices: dict[str, dict] = {}
    for e in events:
        if e["kind"] in ("claim", "write"):
            s = slices.setdefault(e["owner"], {"pid": e["pid"], "claims": [], "writes": []})
            s[e["kind"] + "s"].append(e)
    per_pid: dict[int, list] = {}
    for s in slices.values():
        first = min(c["started"] for c in s["claims"])
        last = max((w["t"] for w in s["writes"]), default=first)
        per_pid.setdefault(s["pid"], []).append(
            {"first_claim": first, "last_write": last, "rows": sum(w["rows"] for w in s["writes"]),
             "claims": len(s["claims"]), "writes": len(s["writes"])}
        )  # fmt: skip
    prerun = {}
    to_claim = []
    for e in sorted(events, key=lambda e: e["t"]):
        if e["kind"] == "prerun":
            prerun[e["pid"]] = e["t"]
        elif e["kind"] == "claim" and e["pid"] in prerun:
            to_claim.append(e["started"] - prerun.pop(e["pid"]))
    gaps = []
    ends = []
    for slist in per_pid.values():
        slist.sort(key=lambda s: s["first_claim"])
        working = [s for s in slist if s["rows"]]
        ends.append(max((s["last_write"] for s in working), default=0))
        for a, b in zip(working, working[1:], strict=False):
            gaps.append(b["first_claim"] - a["last_write"])
    writes = [e for e in events if e["kind"] == "write"]
    claims = [e for e in events if e["kind"] == "claim"]
    timed = [e for e in events if e["kind"] == "rows"]
    answered = sum(e["n"] for e in timed) or 1
    samples = sum(e["samples"] for e in timed) or 1
    return {
        "answer_ms": sum(e["answer"] for e in timed) * 1000 / answered,
        "fence_ms": sum(e["fence"] for e in timed) * 1000 / answered,
        "next_ms": sum(e.get("next", 0) for e in timed) * 1000 / answered,
        "db_cpu": sum(e.get("db_cpu", 0) for e in timed),
        "mean_in_flight": sum(e["in_flight"] for e in timed) / samples,
        "task_cpu": sum(t["cpu"] for t in tasks),
        "queries": sum(t["queries"] for t in tasks),
        "write_transactions": sum(t["write_transactions"] for t in tasks),
        "tasks": len(tasks),
        "slices": sum(1 for s in per_pid.values() for x in s if x["rows"]),
        "claims": len(claims),
        "claim_rows": sum(c["rows"] for c in claims),
        "writes": len(writes),
        "first_claim": min(c["started"] for c in claims),
        "to_first_claim": max(to_claim, default=0.0),
        "gaps": sum(gaps),
        "tail": max(ends) - min(ends) if len(ends) > 1 else 0.0,
        "per_worker_rows": sorted(sum(s["rows"] for s in slist) for slist in per_pid.values()),
    }


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


def print_celery_details(f: dict) -> None:
    """Where the Celery run's time went, from the workers' traces (wall-clock seconds)."""
    server = f["server"]
    last_row = f["started_at"] + f["engine"]
    print(
        f"  start -> first claim {f['first_claim'] - f['started_at']:.2f} s, -> first call "
        f"{server['first_at'] - f['started_at']:.2f} s; task -> first claim "
        f"{f['to_first_claim']:.2f} s (slowest); last answer -> last row "
        f"{last_row - server['last_at']:.2f} s; tail {f['tail']:.2f} s; gaps between slices "
        f"{f['gaps']:.2f} s; {f['tasks']} tasks, {f['slices']} slices with rows; "
        f"{f['claims']} claims ({f['claim_rows'] / max(f['claims'], 1):.1f} rows), "
        f"{f['writes']} groups; rows per worker {f['per_worker_rows']}; workers' CPU "
        f"{f['workers_cpu']:.1f} s (start-up included); answer step {f['answer_ms']:.1f} ms, "
        f"status fence {f['fence_ms']:.2f} ms a row; in flight {f['mean_in_flight']:.1f} a "
        f"slice on average; waiting for a claimed row {f['next_ms']:.2f} ms a row; the "
        f"caller thread's CPU {f['db_cpu'] * 1000 / f['done']:.2f} ms a row",
        flush=True,
    )
    during = ", ".join(f"{k} {v:.1f}" for k, v in sorted(f["cpu_during"].items()))
    print(f"  CPU seconds while the batch ran, by process: {during}", flush=True)


if __name__ == "__main__":
    main()
