"""Benchmark: database queries per page and per API call, and export memory.

Run: .venv/bin/python bench/bench_pages.py [--batches 10 200] [--rows 50 10000]
     [--grid 1000 20] [--grid-only]

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
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(tmp: str) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="batchchat.settings",
        DATABASE_URL=f"sqlite:///{tmp}/bench.sqlite3",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="bench-only-secret-key-bench-only-secret-key-0123456789",
        DJANGO_ALLOWED_HOSTS="testserver",
        LOCAL_SEARCH_INDEX=f"{tmp}/search.sqlite3",
        LOG_LEVEL="WARNING",
        # DEBUG off serves hashed static names: collected into the throwaway folder.
        DJANGO_STATIC_ROOT=f"{tmp}/static",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", verbosity=0, interactive=False)


def build(owner, *, batches: int, rows: int):
    """`batches` batches: small ones (10 rows), then one of `rows` answered rows, returned."""
    from batches.models import BatchItem
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
            answer=f"An answer to {item.question} " * 5,
            citation_url="https://example.org/doc",
            search_results=[{"title": "Doc", "url": "https://example.org/doc", "snippet": "…"}],
        )
        for item in items
    )
    for item, interaction in zip(items, interactions, strict=True):
        item.interaction = interaction
        item.status = BatchItem.Status.DONE
    BatchItem.objects.bulk_update(items, ["interaction", "status"], batch_size=500)
    return batch


def count_queries(client, method: str, url: str, **kwargs) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(url, **kwargs)
        if hasattr(response, "streaming_content"):
            for _chunk in response.streaming_content:
                pass
    assert response.status_code in (200, 286), (url, response.status_code)
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
    parser.add_argument("--grid", type=int, nargs=2, default=[1000, 20], metavar=("Q", "RUNS"))
    parser.add_argument("--grid-only", action="store_true", help="only the question set pages")
    args = parser.parse_args()
    setup_django(tempfile.mkdtemp(prefix="bench-pages-"))
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


if __name__ == "__main__":
    main()
