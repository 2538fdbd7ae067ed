"""Benchmark: the guard's cost per question (chats.guard.screen), in one process.

Run: .venv/bin/python bench/bench_guard.py [--runs 5000]

The batch engine screens every row before anything else, at up to ~500 rows/s in one
process, so screening must stay far below 2 ms a question; the aim is well under 0.5 ms
for an ordinary question. Prints the mean time of `screen` for a few typical questions
and over the labelled table of chats/tests/guard_table.py, and the rows per second one
core can screen. No database, no network.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchchat.settings")

import django  # noqa: E402

django.setup()

from chats.guard import screen  # noqa: E402
from chats.tests.guard_table import TABLE  # noqa: E402

SAMPLES = {
    "ordinary (en)": "How do I apply for the Canada Child Benefit if I moved from France last year?",
    "ordinary (fr)": "Comment l'ARC calcule-t-elle l'allocation canadienne pour enfants?",
    "numbers, no PII": "I moved to Ottawa in 2023 and owe $1,250 on form T1 line 15000, why?",
    "phone number": "please call me back at 613-555-0123 about my EI claim",
    "disguised (fullwidth)": "Mon NAS est ０４６\u200b４５４\u00a0２８６, quel délai?",
    "long (1,500 chars)": ("Where do I send form IMM 5257 for my parents' visit? " * 28),
}


def _mean_ms(questions: list[tuple[str, str]], runs: int) -> float:
    for language, question in questions:
        screen(question, language=language)  # compile and cache first
    started = time.perf_counter()
    for _ in range(runs):
        for language, question in questions:
            screen(question, language=language)
    return (time.perf_counter() - started) / (runs * len(questions)) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000, help="repetitions per sample")
    args = parser.parse_args()
    print(f"{'question':<22} {'ms':>8} {'rows/s':>9}")
    for label, question in SAMPLES.items():
        ms = _mean_ms([("en", question)], args.runs)
        print(f"{label:<22} {ms:>8.3f} {1000 / ms:>9,.0f}")
    table = [(language, question) for language, question, _kinds in TABLE]
    ms = _mean_ms(table, max(args.runs // 50, 20))
    print(f"{f'table ({len(table)} q.)':<22} {ms:>8.3f} {1000 / ms:>9,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
