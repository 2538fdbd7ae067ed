"""Benchmark: a batch against a provider that enforces a requests-per-minute quota.

Run: .venv/bin/python bench/bench_rate_limits.py [--rpm 1200] [--rows 400] [--concurrency 64]

The fake provider (bench/fake_provider.py) answers 429 with Retry-After to requests beyond
`--rpm` (a GCRA with a burst of one second's worth), and every other call after 200 ms.
BatchChat is told the same quota (COMPATIBLE_RPM). Printed, for one `run_batch` process
and for two `run_batch` processes on two batches sharing the budget through Redis:
- achieved rate / R: requests the server accepted per minute, after its first burst,
  divided by the quota (goal >= 0.9);
- 429s per 100 requests (goal <= 5);
- rows done.
Needs Redis at BENCH_REDIS_URL (default redis://127.0.0.1:6379/10) for the two-process run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")


def stats(url: str) -> dict:
    with urllib.request.urlopen(url + "/stats", timeout=10) as response:
        return json.load(response)


def run(processes: int, args: argparse.Namespace) -> dict:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "fake_provider.py"), "--latency", "0.2",
         "--rpm", str(args.rpm), "--burst", str(max(int(args.rpm / 60), 1))],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = server.stdout.readline().strip()
    tmp = Path(tempfile.mkdtemp(prefix="bench-rate-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "batchchat.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only-secret-key-bench-only-secret-key-0123456789",
        "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
        "COMPATIBLE_BASE_URL": url + "/v1",
        "COMPATIBLE_MODELS": "local-model",
        "COMPATIBLE_RPM": str(args.rpm),
        "RATE_LIMIT_BURST_SECONDS": "0.5",
        "PYTHONPATH": str(ROOT),
        "LOG_LEVEL": "WARNING",
    }
    if processes > 1:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter("batchchat:rl:*"):
            client.delete(key)
        env["REDIS_URL"] = REDIS_URL
    else:
        env.pop("REDIS_URL", None)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        commands = []
        for n in range(processes):
            questions = tmp / f"questions-{n}.csv"
            with open(questions, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["question"])
                writer.writerows([f"Question {n}-{i}?"] for i in range(args.rows // processes))
            commands.append(
                [sys.executable, "manage.py", "run_batch", str(questions), "--provider",
                 "compatible", "--search", "none", "--concurrency", str(args.concurrency),
                 "--out", str(tmp / f"results-{n}.csv")]
            )  # fmt: skip
        urllib.request.urlopen(urllib.request.Request(url + "/stats/reset", method="POST"))
        started = time.monotonic()
        procs = [
            subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            for cmd in commands
        ]
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]
        elapsed = time.monotonic() - started
        figures = stats(url)
    finally:
        server.terminate()
        server.wait(timeout=10)
    done = sum(out.count("Every row was answered") for out in outputs)
    burst = max(int(args.rpm / 60), 1)
    span = (figures["last_at"] or 0) - (figures["first_at"] or 0)
    accepted_per_minute = (figures["completed"] - burst) / span * 60 if span > 0 else 0.0
    requests = figures["completed"] + figures["rejected"]
    return {
        "elapsed": elapsed,
        "ratio": accepted_per_minute / args.rpm,
        "per_100": 100 * figures["rejected"] / requests if requests else 0.0,
        "complete": done == len(procs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpm", type=float, default=1200)
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(f"quota R = {args.rpm:g} requests/min, {args.rows} rows, C = {args.concurrency}")
    print(f"{'set-up':<40} {'seconds':>8} {'rate / R':>9} {'429 / 100':>10} {'all done':>9}")
    for processes, label in ((1, "one run_batch"), (2, "two run_batch processes, Redis")):
        figures = run(processes, args)
        print(
            f"{label:<40} {figures['elapsed']:>8.1f} {figures['ratio']:>9.2f} "
            f"{figures['per_100']:>10.1f} {'yes' if figures['complete'] else 'NO':>9}",
            flush=True,
        )


if __name__ == "__main__":
    main()
