"""Benchmark: the graders' CPU cost per row (no database, no judge).

Run: .venv/bin/python bench/bench_grading.py [--rows 10000]

Grades realistic answer / expected pairs (about 60 and 25 words) with the three local
graders (citation match, ROUGE-L similarity over tagged expected text, answer found) and
the verdict as grade_items does, and prints
the time per row. Prints figures; nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORDS = [
    "passport",
    "renew",
    "online",
    "form",
    "office",
    "mail",
    "fee",
    "dollars",
    "weeks",
    "apply",
    "citizen",
    "canada",
    "service",
    "application",
    "photo",
    "guarantor",
    "document",
    "travel",
    "urgent",
    "pickup",
    "status",
    "check",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchchat.settings")
    import django

    django.setup()
    from evaluation.grading import answer_found, answer_similarity, citation_match, decide_verdict

    rng = random.Random(0)
    pairs = [
        (
            " ".join(rng.choice(WORDS) for _ in range(60)) + ".",
            " ".join(rng.choice(WORDS) for _ in range(25)) + ".",
        )
        for _ in range(args.rows)
    ]
    started = time.perf_counter()
    for answer, expected in pairs:
        matched = citation_match("https://www.canada.ca/en/x/", "https://canada.ca/en/x")
        similarity = answer_similarity(answer, f"<s-1>{expected}</s-1>")
        answer_found(answer, "en")
        decide_verdict(
            expected_outcome="normal",
            answer_type="normal",
            citation_match=matched if len(answer) % 2 else None,
            judge_verdict="",
            similarity=similarity,
            threshold=0.3,
        )
    elapsed = time.perf_counter() - started
    print(
        f"{args.rows:,} rows graded in {elapsed:.2f} s: "
        f"{elapsed / args.rows * 1e6:.0f} µs per row ({args.rows / elapsed:,.0f} rows/s)"
    )


if __name__ == "__main__":
    main()
