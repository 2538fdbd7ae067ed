"""The Celery case of bench/bench_engine.py: each worker's pool child traced (its tasks'
CPU, claims, written groups, statements), the machine's CPU by process while the batch
runs, and the line that says where the time went. Imported by bench_engine.py, whose
`--child celery-worker` runs `child_celery_worker`."""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

WRITES = ("INSERT", "UPDATE", "DELETE")


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
