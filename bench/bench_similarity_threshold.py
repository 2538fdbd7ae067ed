"""Benchmark: which GRADE_SIMILARITY_PASS agrees best with a judged pass / fail.

Run: .venv/bin/python bench/bench_similarity_threshold.py [--labels bench/data/similarity_labels.csv]

Reads labelled rows (question, expected answer in the origin's sentence markup, an
answer, and a human judgement `pass` / `fail`), scores each answer with the grader's
`answer_similarity` (ROUGE-L F1 over the expected answer with its tags stripped), and
prints, for each threshold from 0.05 to 0.60, how often "similarity >= threshold" agrees
with the judgement, with the false passes and false fails. Prints figures; asserts
nothing. The default in batchchat/settings.py is the threshold chosen from this table
(docs/evaluation.md says why).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THRESHOLDS = [round(0.05 * step, 2) for step in range(1, 13)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", default=str(ROOT / "bench" / "data" / "similarity_labels.csv"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchchat.settings")
    import django

    django.setup()
    from django.conf import settings

    from batches.grading import answer_similarity

    with open(args.labels, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    scored = [(answer_similarity(r["answer"], r["expected"]) or 0.0, r["label"]) for r in rows]
    passes = sum(label == "pass" for _, label in scored)
    print(f"{len(scored)} judged rows ({passes} pass, {len(scored) - passes} fail)")
    for label in ("pass", "fail"):
        values = sorted(score for score, judged in scored if judged == label)
        print(f"  similarity of {label} rows: min {values[0]:.2f}  max {values[-1]:.2f}")
    print("threshold  agreement  false passes  false fails")
    best = None
    for threshold in THRESHOLDS:
        false_pass = sum(s >= threshold and lab == "fail" for s, lab in scored)
        false_fail = sum(s < threshold and lab == "pass" for s, lab in scored)
        agree = len(scored) - false_pass - false_fail
        mark = "  <- GRADE_SIMILARITY_PASS" if threshold == settings.GRADE_SIMILARITY_PASS else ""
        print(
            f"{threshold:9.2f}  {agree:3d}/{len(scored)} {agree / len(scored):5.0%}"
            f"  {false_pass:12d}  {false_fail:11d}{mark}"
        )
        if best is None or agree > best[1]:
            best = (threshold, agree)
    print(f"best agreement: {best[1]}/{len(scored)} first reached at {best[0]:.2f}")


if __name__ == "__main__":
    main()
