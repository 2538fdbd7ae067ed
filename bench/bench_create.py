"""Benchmark: upload parsing + create_batch_run on a throwaway SQLite database.

Run: .venv/bin/python bench/bench_create.py [--sizes 10000 100000] [--no-trace]
     [--database sqlite postgres] [--repeats K]

`--repeats K`: each size is rows of the batch, from a file of size / K questions answered
K times (issue 23: questions × k rows).

For each database and size, in a fresh child process (so that peak-memory figures belong
to that run alone): migrate a new SQLite file in a temp dir (or a fresh PostgreSQL
database at BENCH_PG_URL's server), write a CSV of realistic questions to
disk, then time `parse_upload_file` (reading the file, as an upload would) and
`create_batch_run` (Batch + Chat + BatchItem rows). Memory growth is the rise of the
process's peak RSS (ru_maxrss) during the timed run. With tracing on, a second child
repeats the run under tracemalloc (slower, so its times are not reported) to give the
Python heap peak of each step. DEBUG is off, as in production: with DEBUG on Django
keeps every SQL statement, which would be measured as our memory.
"""

from __future__ import annotations

import argparse
import csv
import gc
import io
import json
import os
import random
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# database: {rows: (seconds, MB growth)}; issue #10: 100,000 rows in <= 4 s on SQLite,
# <= 3 s on PostgreSQL.
TARGETS = {
    "sqlite": {10_000: (2.0, None), 100_000: (4.0, 200.0)},
    "postgres": {10_000: (2.0, None), 100_000: (3.0, 200.0)},
}
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_BENCH_DB = "batchchat_bench_create"


def _database_url(database: str, workdir: Path) -> str:
    if database == "sqlite":
        return f"sqlite:///{workdir / 'bench.sqlite3'}"
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_BENCH_DB}")
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_BENCH_DB}"


TOPICS = [
    ("passport", "https://www.canada.ca/en/immigration-refugees-citizenship/services/passports.html"),
    ("Employment Insurance", "https://www.canada.ca/en/services/benefits/ei.html"),
    ("Canada Pension Plan", "https://www.canada.ca/en/services/benefits/publicpensions/cpp.html"),
    ("social insurance number", "https://www.canada.ca/en/employment-social-development/services/sin.html"),
    ("GST/HST credit", "https://www.canada.ca/en/revenue-agency/services/child-family-benefits/gsthstc-apply.html"),
    ("work permit", "https://www.canada.ca/en/immigration-refugees-citizenship/services/work-canada/permit.html"),
    ("Canada child benefit", "https://www.canada.ca/en/revenue-agency/services/child-family-benefits/canada-child-benefit-overview.html"),
    ("tax return", "https://www.canada.ca/en/services/taxes/income-tax/personal-income-tax.html"),
    ("Old Age Security", "https://www.canada.ca/en/services/benefits/publicpensions/old-age-security.html"),
    ("citizenship test", "https://www.canada.ca/en/immigration-refugees-citizenship/services/canadian-citizenship/become-canadian-citizen/citizenship-test.html"),
]  # fmt: skip
TEMPLATES = [
    "How do I apply for my {topic} if I am living outside Canada?",
    "What documents do I need to renew my {topic}, and how long does it take?",
    "Can I check the status of my {topic} application online?",
    "My {topic} payment did not arrive this month; who should I contact?",
    "Is there a fee for the {topic}, and can I pay it by credit card?",
    "I moved to {province} last year. Do I need to update my {topic} information?",
    "What happens to my {topic} if I start a new job in {province}?",
    "Où puis-je trouver le formulaire pour mon {topic}?",
]
PROVINCES = ["Ontario", "Quebec", "Nova Scotia", "Manitoba", "British Columbia", "Yukon"]
DEPARTMENTS = ["IRCC", "ESDC", "CRA", "Service Canada"]


def make_csv(rows: int, *, seed: int = 7) -> bytes:
    """A CSV like a real export: id, question, url, department, chatId (some multi-turn)."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "question", "url", "department", "chatId"])
    chat = 0
    for i in range(rows):
        topic, url = rng.choice(TOPICS)
        question = rng.choice(TEMPLATES).format(topic=topic, province=rng.choice(PROVINCES))
        if rng.random() > 0.2:  # about one row in five continues the previous conversation
            chat += 1
        writer.writerow([i + 1, question, url, rng.choice(DEPARTMENTS), f"c{chat}"])
    return out.getvalue().encode()


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def run_one(rows: int, *, trace: bool, database: str, repeats: int = 1) -> dict:
    """In this (child) process: fresh database, one upload of `rows` rows."""
    workdir = Path(tempfile.mkdtemp(prefix="batchchat-bench-"))
    try:
        os.environ.update(
            DJANGO_SETTINGS_MODULE="batchchat.settings",
            DATABASE_URL=_database_url(database, workdir),
            MAX_BATCH_ITEMS=str(max(rows, 10_000)),
            MAX_UPLOAD_BYTES=str(512 * 1024 * 1024),
            DJANGO_DEBUG="0",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        )
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from batches.models import BatchItem
        from batches.services import create_batch_run
        from batches.uploads import parse_upload_file

        call_command("migrate", verbosity=0)
        user = get_user_model().objects.create(username="bench")
        path = workdir / "questions.csv"
        path.write_bytes(make_csv(rows // repeats))
        gc.collect()
        if trace:
            tracemalloc.start()
        rss_before = _rss_mb()

        cpu_started = _cpu_s()
        started = time.perf_counter()
        with path.open("rb") as handle:
            parsed = parse_upload_file(file=handle, filename=path.name)
        parsed_at = time.perf_counter()
        parse_peak = tracemalloc.get_traced_memory()[1] if trace else 0
        batch = create_batch_run(
            uploader=user,
            name="bench",
            rows=parsed.rows,
            ai_provider="extractive",
            search_provider="local",
            source_filename=path.name,
            **({"repeats": repeats} if repeats > 1 else {}),
        )
        finished = time.perf_counter()
        cpu = _cpu_s() - cpu_started
        total_peak = tracemalloc.get_traced_memory()[1] if trace else 0
        if trace:
            tracemalloc.stop()

        assert BatchItem.objects.filter(batch=batch).count() == rows // repeats * repeats
        return {
            "rows": rows,
            "file_mb": path.stat().st_size / 2**20,
            "chats": batch.chats.distinct().count(),
            "parse_s": parsed_at - started,
            "create_s": finished - parsed_at,
            "total_s": finished - started,
            "cpu_s": cpu,
            "rss_growth_mb": _rss_mb() - rss_before,
            "parse_peak_mb": parse_peak / 2**20,
            "total_peak_mb": total_peak / 2**20,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _child(rows: int, trace: bool, database: str, repeats: int = 1) -> dict:
    command = [sys.executable, __file__, "--one", str(rows), "--database", database]
    command += ["--repeats", str(repeats)]
    command += ["--trace"] if trace else []
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode:
        sys.exit(f"benchmark child failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument(
        "--database", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"]
    )
    parser.add_argument("--repeats", type=int, default=1, help="answers per question (k)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(
            json.dumps(
                run_one(args.one, trace=args.trace, database=args.database[0], repeats=args.repeats)
            )
        )
        return

    header = (
        f"{'rows':>8} {'file MB':>8} {'parse s':>8} {'create s':>9} {'total s':>8} "
        f"{'rows/s':>8} {'CPU s':>6} {'RSS +MB':>8} {'heap peak MB (parse/all)':>25}  target"
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load}; DEBUG off; repeats {args.repeats}")
    print(f"{'database':<9}" + header)
    failed = False
    for database, rows in [(d, n) for d in args.database for n in args.sizes]:
        timed = _child(rows, trace=False, database=database, repeats=args.repeats)
        traced = (
            None
            if args.no_trace
            else _child(rows, trace=True, database=database, repeats=args.repeats)
        )
        peaks = f"{traced['parse_peak_mb']:.0f} / {traced['total_peak_mb']:.0f}" if traced else "-"
        seconds, megabytes = TARGETS[database].get(rows, (None, None))
        verdict = ""
        if seconds is not None:
            ok = timed["total_s"] <= seconds
            growth = max(timed["rss_growth_mb"], traced["total_peak_mb"] if traced else 0)
            if megabytes is not None:
                ok = ok and growth <= megabytes
            verdict = f"{'ok' if ok else 'MISSED'} (<= {seconds:g} s"
            verdict += f", <= {megabytes:g} MB)" if megabytes else ")"
            failed = failed or not ok
        print(
            f"{database:<9}{rows:>8,} {timed['file_mb']:>8.1f} {timed['parse_s']:>8.2f} "
            f"{timed['create_s']:>9.2f} {timed['total_s']:>8.2f} "
            f"{rows / timed['total_s']:>8,.0f} {timed['cpu_s']:>6.2f} "
            f"{timed['rss_growth_mb']:>8.0f} {peaks:>25}  {verdict}"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
