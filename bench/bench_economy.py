"""Benchmark (issue 25, "Done when"): a 2,000-row batch in economy mode against the fake
batch server, run by `manage.py run_batch --economy` in a process of its own; then the
same with that process killed (SIGKILL) once half its provider batches are submitted, and a
second `run_batch --resume` finishing the batch.

Run: .venv/bin/python bench/bench_economy.py [--rows 2000] [--per-batch 500]

The fake server (chats/tests/fake_batch_servers.py, in this process) speaks OpenAI's
files/batches protocol and counts real-time completion calls. Figures per scenario: wall
time, rows done / failed, provider batches, requests submitted (and how many distinct),
real-time completion calls, and the cost at the batch price against the real-time price
(AI_PRICES openai:gpt-4o-mini=0.15/0.60; the shipped batch discount, half). Targets: every row
answered once, 0 real-time calls, cost = half the real-time price; the same after the kill.
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
sys.path.insert(0, str(ROOT))


def child_env(server_url: str, db: str, per_batch: int) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{db}",
            "OPENAI_API_KEY": "sk-bench",
            "OPENAI_BASE_URL": f"{server_url}/v1",
            "ECONOMY_POLL_SECONDS": "0.2",
            "ECONOMY_MAX_REQUESTS": str(per_batch),
            "AI_PRICES": "openai:gpt-4o-mini=0.15/0.60",
            "CELERY_BROKER_URL": "",
            # Rows a killed process was preparing are claimed again after this lease.
            "BATCH_LEASE_SECONDS": "5",
        }
    )
    env.pop("REDIS_URL", None)
    return env


def manage(env: dict, *args: str, wait: bool = True):
    command = [sys.executable, "manage.py", *args]
    if not wait:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)


def figures(env: dict) -> dict:
    code = (
        "import django, json; django.setup();"
        "from batches.models import Batch; from batches.selectors import batch_stats;"
        "b = Batch.objects.latest('pk'); s = batch_stats(b);"
        "full = (s.input_tokens * 0.15 + s.output_tokens * 0.60) / 1e6;"
        "print(json.dumps({'status': b.status, 'done': b.processed_items,"
        " 'failed': b.failed_items, 'provider_batches': b.provider_batches.count(),"
        " 'cost': s.estimated_cost, 'realtime_price': full}))"
    )
    env = {**env, "DJANGO_SETTINGS_MODULE": "batchchat.settings"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def scenario(rows: int, per_batch: int, *, kill: bool) -> dict:
    from chats.tests.fake_batch_servers import FakeBatchServer

    with tempfile.TemporaryDirectory() as tmp, FakeBatchServer() as server:
        db = str(Path(tmp) / "bench.sqlite3")
        env = child_env(server.url, db, per_batch)
        source = Path(tmp) / "questions.csv"
        source.write_text("question\n" + "".join(f"Question {i}?\n" for i in range(rows)))
        migrated = manage(env, "migrate", "--no-input", "-v", "0")
        assert migrated.returncode == 0, migrated.stderr
        expected_batches = -(-rows // per_batch)
        args = [
            "run_batch",
            str(source),
            "--provider",
            "openai",
            "--search",
            "none",
            "--economy",
            "--out",
            str(Path(tmp) / "results.csv"),
        ]
        started = time.monotonic()
        if kill:
            server.auto_complete = False
            child = manage(env, *args, wait=False)
            deadline = time.monotonic() + 300
            # Killed mid-way: half its provider batches submitted, the next being prepared.
            while len(server.batches) < max(expected_batches // 2, 1) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.05)
            child.send_signal(signal.SIGKILL)
            child.wait()
            server.finish()
            server.auto_complete = True
            resumed = manage(
                env, "run_batch", "--resume", "1", "--out", str(Path(tmp) / "results.csv")
            )
            assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        else:
            result = manage(env, *args)
            assert result.returncode == 0, result.stdout + result.stderr
        wall = time.monotonic() - started
        ids = server.submitted_custom_ids()
        return {
            "scenario": "killed mid-way, resumed" if kill else "one run",
            "wall_s": round(wall, 1),
            **figures(env),
            "requests_submitted": len(ids),
            "distinct_requests": len(set(ids)),
            "realtime_calls": server.realtime_calls,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--per-batch", type=int, default=500)
    args = parser.parse_args()
    for kill in (False, True):
        print(json.dumps(scenario(args.rows, args.per_batch, kill=kill)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
