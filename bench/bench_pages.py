"""Benchmark: database queries per page and per API call, and export memory.

Run: .venv/bin/python bench/bench_pages.py [--batches 10 200] [--rows 50 10000]
     [--grid 1000 20] [--grid-only]
     .venv/bin/python bench/bench_pages.py --time [--database-url postgres://...]
     .venv/bin/python bench/bench_pages.py --load 20 --database-url postgres://...

On a fresh throwaway SQLite database (DEBUG off), builds two data sets (few and many
batches, a short and a long batch, answered rows with interactions) and requests each page
and API route as the owner, counting SQL queries with CaptureQueriesContext. A page
whose count grows with the data would show as two different numbers. Then streams the
CSV / JSON / XLSX export of the largest batch and reports the peak Python heap
(tracemalloc) while doing so, against the size of the file produced.

Then a question set of `--grid` questions × runs (default 1,000 × 20, every row graded,
with answers), and the set pages and API: the grid page (first page, a filter, a
search), a question's history and the whole grid as JSON and CSV, each with its queries
and the median time of five requests (target of issue 23: the grid page ≤ 300 ms).

`--time` times the pages a user watching a running 10,000-row batch asks for (median and
p95, size, queries; `--profile LABEL` prints that page's cProfile), each poll as the page
asks it: with what the page shows (204), with the rows' counts changed, and from nothing.
`--load USERS` runs the production server under USERS watching users (bench/pages_load.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(tmp: str, database_url: str = "") -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="batchchat.settings",
        DATABASE_URL=database_url or f"sqlite:///{tmp}/bench.sqlite3",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="bench-only-secret-key-bench-only-secret-key-0123456789",
        DJANGO_ALLOWED_HOSTS="testserver",
        LOCAL_SEARCH_INDEX=f"{tmp}/search.sqlite3",
        DJANGO_STATIC_ROOT=f"{tmp}/static",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # DEBUG off: pages name their static files from the manifest.
    call_command("collectstatic", interactive=False, verbosity=0)


def build(owner, *, batches: int, rows: int, running: bool = False):
    """`batches` batches: small ones (10 rows), then one of `rows` answered rows, returned.
    With `running`, the large batch is mid-run (processing, its last quarter pending) and
    its rows carry tokens, latencies, grades and some "not found" answers, as a real run."""
    from django.utils import timezone

    from batches.models import Batch, BatchItem, Verdict
    from batches.services import create_batch_run
    from batches.uploads import ParsedRow
    from chats.models import Interaction

    batch = None
    for n in range(batches):
        batch = create_batch_run(
            uploader=owner,
            name=f"bench {n}",
            rows=[
                ParsedRow(question=f"Question {i}?", columns={"question": f"Question {i}?", "team": "A"})
                for i in range(rows if n == batches - 1 else 10)
            ],
            ai_provider="extractive",
            search_provider="none",
        )  # fmt: skip
    items = list(batch.items.select_related("chat"))
    interactions = Interaction.objects.bulk_create(
        Interaction(
            chat=item.chat,
            position=0,
            question=item.question,
            answer=(
                "I could not find an answer to this question."
                if running and n % 10 == 0
                else f"An answer to {item.question} " * 5
            ),
            citation_url="https://example.org/doc",
            search_results=[{"title": "Doc", "url": "https://example.org/doc", "snippet": "…"}],
            input_tokens=120 + n % 50 if running else None,
            output_tokens=40 + n % 20 if running else None,
            latency_ms=300 + n % 400 if running else None,
        )
        for n, item in enumerate(items)
    )
    now = timezone.now()
    finished = len(items) * 3 // 4 if running else len(items)
    for n, (item, interaction) in enumerate(zip(items, interactions, strict=True)):
        if n >= finished:
            break
        item.interaction = interaction
        item.status = BatchItem.Status.DONE
        item.finished_at = now - timedelta(seconds=(finished - n) / 50)
        if running:
            item.answer_similarity = (n % 100) / 100
            item.answer_found = n % 10 != 0
            item.verdict = Verdict.PASS if n % 3 else Verdict.FAIL
    BatchItem.objects.bulk_update(
        items[:finished],
        ["interaction", "status", "finished_at", "answer_similarity", "answer_found", "verdict"],
        batch_size=500,
    )
    if running:
        Batch.objects.filter(pk=batch.pk).update(
            status=Batch.Status.PROCESSING, started_at=now - timedelta(seconds=finished / 50)
        )
    batch.recount()
    if running:
        # Last written a minute ago: what the pages say of it ("waiting for a worker")
        # stays the same while they are timed.
        Batch.objects.filter(pk=batch.pk).update(updated_at=now - timedelta(minutes=1))
    batch.refresh_from_db()
    return batch


def count_queries(client, method: str, url: str, **kwargs) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(url, **kwargs)
        if hasattr(response, "streaming_content"):
            for _chunk in response.streaming_content:
                pass
    assert response.status_code in (200, 204, 286), (url, response.status_code)
    return len(captured.captured_queries)


def routes(batch, chat_id: str) -> list[tuple[str, str, str, dict]]:
    htmx = {"HTTP_HX_REQUEST": "true"}
    return [
        ("BatchPage /batches/", "get", "/batches/", {}),
        ("BatchList rows (htmx poll)", "get", "/batches/rows/", htmx),
        ("batch detail", "get", f"/batches/{batch.pk}/", {}),
        ("batch detail, done rows", "get", f"/batches/{batch.pk}/?status=done", {}),
        (
            "batch detail, search + sort",
            "get",
            f"/batches/{batch.pk}/?q=Question&sort=-latency",
            {},
        ),
        ("batch detail, not found", "get", f"/batches/{batch.pk}/?status=not_found", {}),
        ("batch rows (htmx poll)", "get", f"/batches/{batch.pk}/rows/?page=3", htmx),
        ("batch progress (htmx poll)", "get", f"/batches/{batch.pk}/progress/", htmx),
        ("chat page", "get", f"/chats/{chat_id}/", {}),
        ("API list", "get", "/api/batch/list", {}),
        ("API status", "get", f"/api/batch/status?batchId={batch.pk}", {}),
        ("admin batch list", "get", "/admin/batches/batch/", {}),
        ("admin batch page", "get", f"/admin/batches/batch/{batch.pk}/change/", {}),
        ("admin chat list", "get", "/admin/chats/chat/", {}),
    ]


def poll_url(client, page_url: str, marker: str) -> str:
    """The poll URL a page carries (its hx-get on the element with `marker` as id)."""
    import html
    import re

    body = client.get(page_url).content.decode()
    found = re.search(rf'id="{marker}"[^>]*hx-get="([^"]+)"', body)
    return html.unescape(found.group(1))


def timed_routes(client, batch) -> list[tuple[str, str, dict]]:
    """The pages a user watching a running batch asks for, as the browser does. A poll
    carries what its page shows: asked with it as drawn, nothing changed (204); with the
    rows' counters changed but not the table's rows (the progress section and the counts);
    with nothing known (the progress section, the whole rows section and the grades)."""
    htmx = {"HTTP_HX_REQUEST": "true"}
    progress = poll_url(client, batch.get_absolute_url(), "batch-progress")
    rows_seen = progress.split("v=")[1].split(".")[0]
    counts_changed = progress.replace(f"v={rows_seen}.", "v=changed.")
    listed = poll_url(client, "/batches/", "batch-rows")
    return [
        ("list page", "/batches/", {}),
        ("list poll, changed", "/batches/rows/", htmx),
        ("list poll, same", listed, htmx),
        ("batch page", batch.get_absolute_url(), {}),
        # Nothing kept in Django's cache (the rendered table, the shared summaries): the
        # first user to open the page, or one on another page of rows.
        ("batch page, cold", batch.get_absolute_url(), {}),
        ("rows partial", f"/batches/{batch.pk}/rows/", htmx),
        ("batch poll, all new", f"/batches/{batch.pk}/progress/", htmx),
        ("batch poll, counts", counts_changed, htmx),
        # The first to ask at new counters: nothing shared yet (the rows' counts, the
        # summaries), as a poll right after the engine's writer moved them.
        ("batch poll, counts, cold", counts_changed, htmx),
        ("batch poll, same", progress, htmx),
    ]


def time_pages(client, batch, *, repeats: int, profile: str = "") -> list[tuple]:
    """(label, median ms, p95 ms, median CPU ms of this process, KB, queries) per page,
    each asked `repeats` times after one warm-up; with `profile` (a label), that page's
    cProfile top functions are printed."""
    import cProfile
    import pstats
    import statistics

    from django.core.cache import cache

    results = []
    for label, url, extra in timed_routes(client, batch):
        queries = count_queries(client, "get", url, **extra)
        timings, cpu = [], []
        size = 0
        profiler = cProfile.Profile() if label == profile else None
        for _n in range(repeats):
            if label.endswith(", cold"):
                cache.clear()
            started, cpu_started = time.perf_counter(), time.process_time()
            if profiler:
                profiler.enable()
            response = client.get(url, **extra)
            if profiler:
                profiler.disable()
            timings.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
            size = len(response.content)
        timings.sort()
        p95 = timings[min(len(timings) - 1, int(round(0.95 * (len(timings) - 1))))]
        results.append(
            (label, statistics.median(timings), p95, statistics.median(cpu), size / 1000, queries)
        )
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return results


def export_memory(batch) -> list[tuple[str, float, float]]:
    from batches.export import stream_csv, stream_json, stream_xlsx

    results = []
    for name, stream in (("csv", stream_csv), ("json", stream_json), ("xlsx", stream_xlsx)):
        tracemalloc.start()
        size = sum(len(chunk) for chunk in stream(batch))
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        results.append((name, size / 1e6, peak / 1e6))
    return results


def build_grid(owner, *, questions: int, runs: int):
    """A set of `questions` questions and `runs` runs, every row answered and graded
    (verdicts that flip between runs, so that every filter finds rows); bulk inserts."""
    from datetime import timedelta

    from django.utils import timezone

    from batches.models import Batch, BatchItem
    from chats.models import Chat, Interaction
    from evaluation.models import Question, QuestionSet, Run

    question_set = QuestionSet.objects.create(owner=owner, name="bench grid", fingerprint="x")
    Question.objects.bulk_create(
        Question(
            question_set=question_set,
            position=i,
            question=f"Question {i} about passports and visas?",
            expected_answer=f"Expected answer {i}",
        )
        for i in range(questions)
    )
    start = timezone.now() - timedelta(days=runs)
    for r in range(runs):
        batch = Batch.objects.create(
            name=f"grid run {r}",
            uploader=owner,
            ai_provider="extractive",
            model="extractive",
            search_provider="none",
            status=Batch.Status.COMPLETED,
            created_at=start + timedelta(days=r),
        )
        chats = Chat.objects.bulk_create(
            Chat(uploader=owner, ai_provider="extractive") for _ in range(questions)
        )
        interactions = Interaction.objects.bulk_create(
            Interaction(chat=chat, position=0, question="q", answer=f"Answer {i} of run {r} " * 4)
            for i, chat in enumerate(chats)
        )
        verdicts = ("pass", "fail", "ungraded")
        BatchItem.objects.bulk_create(
            (
                BatchItem(
                    batch=batch,
                    chat=chat,
                    interaction=interaction,
                    position=i,
                    question_index=i,
                    question=f"Question {i} about passports and visas?",
                    status=BatchItem.Status.DONE,
                    verdict=verdicts[(i * (r + 1)) % 3 if i % 4 else 0],
                    citation_match=(i + r) % 2 == 0,
                )
                for i, (chat, interaction) in enumerate(zip(chats, interactions, strict=True))
            ),
            batch_size=1000,
        )
        batch.recount()
        Run.objects.create(batch=batch, question_set=question_set, version=1)
    return question_set


def time_request(client, url: str, **extra) -> tuple[int, float]:
    """(queries, median ms of five requests after a warm-up)."""
    queries = count_queries(client, "get", url, **extra)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        response = client.get(url, **extra)
        if hasattr(response, "streaming_content"):
            for _chunk in response.streaming_content:
                pass
        times.append((time.perf_counter() - started) * 1000)
    return queries, statistics.median(times)


def grid_figures(owner, *, questions: int, runs: int) -> None:
    from django.test import Client

    question_set = build_grid(owner, questions=questions, runs=runs)
    client = Client()
    client.force_login(owner)
    base = f"/sets/{question_set.pk}/"
    cases = [
        ("set list /sets/", "/sets/"),
        ("grid page", base),
        ("grid page, flaky", f"{base}?filter=flaky"),
        ("grid page, regressed", f"{base}?filter=regressed"),
        ("grid page, search", f"{base}?q=passports+and&page=3"),
        ("grid page, older runs", f"{base}?runs=2&page=10"),
        ("question history", f"{base}questions/500/"),
        ("API grid JSON", f"/api/sets/{question_set.pk}/grid"),
        ("API grid CSV", f"/api/sets/{question_set.pk}/grid?format=csv"),
    ]
    print(f"\nquestion set of {questions:,} questions x {runs} runs: queries, median ms")
    for label, url in cases:
        queries, ms = time_request(client, url)
        print(f"{label:<30} {queries:>3} queries  {ms:>7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs=2, default=[10, 200])
    parser.add_argument("--rows", type=int, nargs=2, default=[50, 10000])
    parser.add_argument(
        "--time",
        action="store_true",
        help="time the pages of a running 10,000-row batch (--rows' second figure) instead",
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--profile", default="", help="a --time page label to profile")
    parser.add_argument(
        "--database-url", default="", help="a throwaway database (default: a new SQLite file)"
    )
    parser.add_argument(
        "--load",
        type=int,
        default=0,
        metavar="USERS",
        help="run bin/serve and a batch with USERS users watching it (bench/pages_load.py)",
    )
    parser.add_argument("--load-rows", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=1.0, help="the fake provider's, s")
    parser.add_argument("--grid", type=int, nargs=2, default=[1000, 20], metavar=("Q", "RUNS"))
    parser.add_argument("--grid-only", action="store_true", help="only the question set pages")
    args = parser.parse_args()
    if args.load:
        sys.path.insert(0, str(ROOT / "bench"))
        from pages_load import main_load

        return main_load(args, setup_django)
    setup_django(tempfile.mkdtemp(prefix="bench-pages-"), args.database_url)
    if args.time:
        return main_time(args)
    if args.grid_only:
        from django.contrib.auth import get_user_model

        owner = get_user_model().objects.create_user("grid-owner", password="x")
        grid_figures(owner, questions=args.grid[0], runs=args.grid[1])
        return

    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.services import create_api_token

    figures: dict[str, list[int]] = {}
    sizes = list(zip(args.batches, args.rows, strict=True))
    last = None
    for n, (batches, rows) in enumerate(sizes):
        owner = get_user_model().objects.create_superuser(f"owner{n}", password="x")
        batch = build(owner, batches=batches, rows=rows)
        client = Client()
        client.force_login(owner)
        token = create_api_token(user=owner, name="bench")[1]
        chat_id = batch.items.first().chat.chat_id
        for label, method, url, extra in routes(batch, chat_id):
            if url.startswith("/api/"):
                extra = {**extra, "HTTP_AUTHORIZATION": f"Bearer {token}"}
            figures.setdefault(label, []).append(count_queries(client, method, url, **extra))
        last = batch

    header = "  ".join(f"{b} batches x {r} rows" for b, r in sizes)
    print(f"{'queries per request':<30} {header}")
    for label, counts in figures.items():
        print(
            f"{label:<30} "
            + "  ".join(
                f"{c:>{len(f'{b} batches x {r} rows')}}"
                for c, (b, r) in zip(counts, sizes, strict=True)
            )
        )
    print(f"\nexport of one batch of {last.total_items:,} rows: file MB, peak Python heap MB")
    for name, size, peak in export_memory(last):
        print(f"{name:<6} {size:>8.2f} MB file  {peak:>6.2f} MB peak heap")
    owner = get_user_model().objects.create_user("grid-owner", password="x")
    grid_figures(owner, questions=args.grid[0], runs=args.grid[1])


def main_time(args) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    owner = get_user_model().objects.create_user(f"timer{time.time_ns()}", password="x")
    batch = build(owner, batches=10, rows=args.rows[1], running=True)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would have, after the bulk inserts
    client = Client()
    client.force_login(owner)
    print(
        f"{connection.vendor}, a {batch.total_items:,}-row batch, {batch.finished_count:,} "
        f"answered, processing; median / p95 of {args.repeats} requests; load "
        f"{os.getloadavg()[0]:.2f}"
    )
    print(f"{'page':<24} {'median ms':>10} {'p95 ms':>8} {'CPU ms':>7} {'KB':>7} {'queries':>8}")
    for label, median, p95, cpu, size, queries in time_pages(
        client, batch, repeats=args.repeats, profile=args.profile
    ):
        print(f"{label:<24} {median:>10.1f} {p95:>8.1f} {cpu:>7.1f} {size:>7.1f} {queries:>8}")


if __name__ == "__main__":
    main()
