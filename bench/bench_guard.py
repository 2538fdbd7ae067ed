"""Benchmark: the guard's cost per question (chats.guard.screen), in one process.

Run: .venv/bin/python bench/bench_guard.py [--runs 5000]

The batch engine screens every row before anything else, at up to ~500 rows/s in one
process, so screening must stay far below 2 ms a question; the aim is well under 0.5 ms
for an ordinary question. Prints the mean time of `screen` for a few typical questions
and over the labelled table of chats/tests/guard_table.py, and the rows per second one
core can screen; then the table's precision and recall per kind, the recall of the
questions that must be blocked (any personal or abuse kind) and the false blocks among
those that must pass (with `--misses`, each of them). No database, no network.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchchat.settings")

import django  # noqa: E402

django.setup()

from chats.guard import PASSED, screen  # noqa: E402
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


def quality(table, *, show_misses: bool = False) -> dict:
    """Precision and recall per kind over `table`, the recall of must-block rows and the
    false blocks among must-pass rows (a row passes when its status is `passed`)."""
    per_kind: dict[str, Counter] = {}
    missed, false_blocks = [], []
    for language, question, expected in table:
        result = screen(question, language=language)
        found = set(result.reasons)
        for kind in expected | found:
            counts = per_kind.setdefault(kind, Counter())
            counts[
                "tp" if kind in expected and kind in found else "fn" if kind in expected else "fp"
            ] += 1
        if expected and result.status == PASSED:
            missed.append((language, question, sorted(expected)))
        if not expected and result.status != PASSED:
            false_blocks.append((language, question, sorted(found)))
    must_block = sum(1 for _l, _q, expected in table if expected)
    must_pass = len(table) - must_block
    print(
        f"\n{'kind':<12} {'cases':>5} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7}"
    )
    for kind in sorted(per_kind):
        c = per_kind[kind]
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        print(
            f"{kind:<12} {c['tp'] + c['fn']:>5} {c['tp']:>4} {c['fp']:>4} {c['fn']:>4} "
            f"{precision:>9.2f} {recall:>7.2f}"
        )
    recall = (must_block - len(missed)) / must_block if must_block else 1.0
    print(f"must-block recall: {must_block - len(missed)}/{must_block} = {recall:.3f}")
    print(f"false blocks among must-pass: {len(false_blocks)}/{must_pass}")
    if show_misses:
        for language, question, kinds in missed:
            print(f"  missed  [{language}] {question!r} {kinds}")
        for language, question, kinds in false_blocks:
            print(f"  blocked [{language}] {question!r} {kinds}")
    return {"recall": recall, "false_blocks": len(false_blocks), "per_kind": per_kind}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5000, help="repetitions per sample")
    parser.add_argument("--misses", action="store_true", help="list missed and false blocks")
    parser.add_argument("--quality-only", action="store_true", help="skip the timings")
    args = parser.parse_args()
    if args.quality_only:
        quality(TABLE, show_misses=args.misses)
        origin_shaped(show_misses=args.misses)
        return 0
    print(f"{'question':<22} {'ms':>8} {'rows/s':>9}")
    for label, question in SAMPLES.items():
        ms = _mean_ms([("en", question)], args.runs)
        print(f"{label:<22} {ms:>8.3f} {1000 / ms:>9,.0f}")
    table = [(language, question) for language, question, _kinds in TABLE]
    ms = _mean_ms(table, max(args.runs // 50, 20))
    print(f"{f'table ({len(table)} q.)':<22} {ms:>8.3f} {1000 / ms:>9,.0f}")
    quality(TABLE, show_misses=args.misses)
    origin_shaped(show_misses=args.misses)
    return 0


def origin_shaped(*, show_misses: bool = False) -> None:
    """The files shaped like the origin's test file: a question, must it be blocked."""
    for path in sorted((ROOT / "chats" / "tests" / "data").glob("guard_origin_shape*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        table = [
            (
                "en",
                row["question"],
                frozenset({"x"}) if row["should_block"] == "yes" else frozenset(),
            )
            for row in rows
        ]
        print(f"\n{path.name} ({len(rows)} questions)")
        outcome = [(q, expected, screen(q).status) for _l, q, expected in table]
        to_block = [o for o in outcome if o[1]]
        missed = [o for o in to_block if o[2] == PASSED]
        stopped = [o for o in outcome if not o[1] and o[2] != PASSED]
        print(
            f"must-block recall: {len(to_block) - len(missed)}/{len(to_block)}; "
            f"false blocks among must-pass: {len(stopped)}/{len(outcome) - len(to_block)}"
        )
        if show_misses:
            for question, _expected, status in missed + stopped:
                print(f"  {status:<8} {question!r}")


if __name__ == "__main__":
    raise SystemExit(main())
