"""Comparing two batches row by row (evaluation): direction, alignment, change classes,
word diff, both runs' rates side by side, and the comparison as CSV, JSON or XLSX.

Direction: the comparison is always "new vs baseline", whatever order the two batches are
given in. The baseline is the batch the other was run again from (directly or up its
"Run again" chain); otherwise the older batch (created first; the lower id on a tie).

Alignment is by question: two batches that come from the same rows (one was made from
the other with "Run again", or both from a common ancestor) are aligned by question
number; other batches by question text (case, spacing and surrounding punctuation
ignored; a question asked twice pairs its first occurrences first).

Repeats: a batch may answer each question k times (`Batch.repeats`). A compared row is a
question, whatever the k of either side: its answer, citation and grades are its first
repeat's row (repeat 1), and its result is its k verdicts read by evaluation.repeats
(passes out of graded, pass@k, pass^k) with the agreement of its answers. Without
repeats (k = 1) this is the row itself, as before.

Change class of a pair, by the first rule that applies:
- `only_in_baseline` / `only_in_new`: the question has no partner;
- `improved` / `regressed`: the question's share of passing answers (passes out of its
  graded repeats) rose / fell; with k = 1 on both sides, the verdict went from fail to
  pass / from pass to fail;
- `same`: both unanswered, or the same answer text (spacing ignored) citing the same page
  (normalised URL);
- `changed`: anything else (a different answer or citation the verdicts do not rank).
"""

from __future__ import annotations

import csv
import difflib
import json
import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header

from batches.export import (
    GRADE_COLUMNS,
    XLSX_CONTENT_TYPE,
    XLSX_DEFAULT_WIDTH,
    ReviewSheet,
    _chunked,
    _csv_cell,
    _Echo,
    _xlsx_cell,
    grade_values,
)
from batches.models import Batch, BatchItem
from batches.selectors import run_from_chain
from evaluation.grading import GradeSummary, answer_similarity, grade_summaries, normalise_url
from evaluation.repeats import QuestionResult, question_results, repeat_result

CHANGES = ("improved", "regressed", "changed", "same", "only_in_baseline", "only_in_new")
# GradeSummary rates shown side by side (name in GradeSummary.as_dict, API key).
RATES: tuple[tuple[str, str], ...] = (
    ("pass_rate", "passRate"),
    ("outcome_accuracy", "outcomeAccuracy"),
    ("citation_match_rate", "citationMatchRate"),
    ("mean_similarity", "meanSimilarity"),
    ("answer_found_rate", "answerFoundRate"),
    ("judge_pass_rate", "judgePassRate"),
    ("guard_precision", "guardPrecision"),
    ("guard_recall", "guardRecall"),
)
_SPACES = re.compile(r"\s+")
_TOKENS = re.compile(r"\s*(?:\w+|[^\w\s])")


# --- Pure parts ------------------------------------------------------------------------------


def normalise_question(text: str) -> str:
    return _SPACES.sub(" ", (text or "").casefold()).strip(" .?!¿¡:;,\"'«»")


def _diff_units(a: str, b: str) -> Iterator[tuple[str, str, str]]:
    """(op, a_text, b_text) per run of units: words and punctuation marks are matched,
    spacing is not (each unit carries the spaces before it, from its own side)."""
    left, right = _TOKENS.findall(a or ""), _TOKENS.findall(b or "")
    matcher = difflib.SequenceMatcher(
        None, [t.strip() for t in left], [t.strip() for t in right], autojunk=False
    )
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        yield op, "".join(left[i1:i2]), "".join(right[j1:j2])


def word_diff(a: str, b: str) -> list[tuple[str, str]]:
    """Word-level diff of `a` -> `b` as (op, text) pieces: op is "equal" (a's text),
    "delete" (only in a) or "insert" (only in b)."""
    pieces: list[tuple[str, str]] = []
    for op, a_text, b_text in _diff_units(a, b):
        if op == "equal":
            pieces.append(("equal", a_text))
            continue
        if op in ("delete", "replace"):
            pieces.append(("delete", a_text))
        if op in ("insert", "replace"):
            pieces.append(("insert", b_text))
    return [(op, text) for op, text in pieces if text]


def diff_sides(a: str, b: str) -> tuple[list[tuple[bool, str]], list[tuple[bool, str]]]:
    """Both texts as (changed, text) pieces, each side with its own text and spacing:
    `a`'s words missing from `b` and `b`'s words missing from `a` are `changed`."""
    side_a: list[tuple[bool, str]] = []
    side_b: list[tuple[bool, str]] = []
    for op, a_text, b_text in _diff_units(a, b):
        if a_text:
            side_a.append((op != "equal", a_text))
        if b_text:
            side_b.append((op != "equal", b_text))
    return side_a, side_b


def _answered(item: BatchItem) -> bool:
    return item.status == BatchItem.Status.DONE and item.interaction is not None


def _pass_share(item: BatchItem, result: QuestionResult | None) -> float | None:
    """Passes out of graded repeats (the row's own verdict without a result)."""
    read = result.result if result is not None else repeat_result([item.verdict])
    return read.passes / read.graded if read.graded else None


def classify(
    baseline: BatchItem | None,
    new: BatchItem | None,
    baseline_result: QuestionResult | None = None,
    new_result: QuestionResult | None = None,
) -> str:
    """The change class of a pair of questions (module docstring): their first repeats'
    rows, and the results of their k repeats (None: the row alone)."""
    if new is None:
        return "only_in_baseline"
    if baseline is None:
        return "only_in_new"
    old_share, new_share = _pass_share(baseline, baseline_result), _pass_share(new, new_result)
    if old_share is not None and new_share is not None and old_share != new_share:
        return "improved" if new_share > old_share else "regressed"
    answered_old, answered_new = _answered(baseline), _answered(new)
    if not answered_old and not answered_new:
        return "same"
    if answered_old != answered_new:
        return "changed"
    old, fresh = baseline.interaction, new.interaction
    same_text = _SPACES.sub(" ", old.answer).strip() == _SPACES.sub(" ", fresh.answer).strip()
    if same_text and normalise_url(old.citation_url) == normalise_url(fresh.citation_url):
        return "same"
    return "changed"


# --- The comparison --------------------------------------------------------------------------


@dataclass
class ComparedRow:
    """One question of both runs: each side's first repeat's row and its k repeats' result."""

    baseline: BatchItem | None
    new: BatchItem | None
    change: str
    similarity: float | None  # between the two answers (ROUGE-L F1), None if one is missing
    baseline_result: QuestionResult | None = None
    new_result: QuestionResult | None = None

    @property
    def row(self) -> int:
        """1-based question number: the baseline's, or the new run's for a question only
        there (without repeats, the row number)."""
        item = self.baseline or self.new
        return item.question_index + 1

    @property
    def question(self) -> str:
        return (self.baseline or self.new).question

    def diff(self) -> list[tuple[str, str]]:
        return word_diff(_answer(self.baseline), _answer(self.new))


@dataclass
class RateDelta:
    """One GradeSummary rate of both runs and its difference (new - baseline)."""

    name: str  # GradeSummary.as_dict key
    key: str  # API key (camelCase)
    baseline: float | None
    new: float | None

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.new is None:
            return None
        return round(self.new - self.baseline, 4)


@dataclass
class Comparison:
    baseline: Batch
    new: Batch
    aligned_by: str  # "row" or "question"
    rows: list[ComparedRow]
    summary: dict[str, int] = field(default_factory=dict)  # rows per change class
    grades: tuple[GradeSummary, GradeSummary] | None = None  # baseline's, new's
    rates: list[RateDelta] = field(default_factory=list)


def rate_deltas(baseline: GradeSummary, new: GradeSummary) -> list[RateDelta]:
    """Each RATES entry for both runs, side by side with the difference."""
    old_values, new_values = baseline.as_dict(), new.as_dict()
    return [RateDelta(name, key, old_values[name], new_values[name]) for name, key in RATES]


def _answer(item: BatchItem | None) -> str:
    return item.interaction.answer if item is not None and item.interaction else ""


Chains = tuple[list[int], list[int]]  # run_from_chain of two batches, in their order


def same_rows(a: Batch, b: Batch, chains: Chains | None = None) -> bool:
    """Whether one batch was made from the other, or both from one source, by Run again."""
    if a.pk == b.pk:
        return True
    chain_a, chain_b = chains or (run_from_chain(a), run_from_chain(b))
    return bool(set(chain_a) & set(chain_b))


def comparison_items(batch: Batch) -> list[BatchItem]:
    """A batch's rows with their answers, in order (one query)."""
    return list(batch.items.select_related("interaction").order_by("position"))


def question_rows(items: list[BatchItem]) -> tuple[list[BatchItem], dict[int, QuestionResult]]:
    """Each question's first repeat in question order, and every question's result over
    its k repeats (module docstring)."""
    first: dict[int, BatchItem] = {}
    for item in items:
        known = first.get(item.question_index)
        if known is None or item.repeat < known.repeat:
            first[item.question_index] = item
    return sorted(first.values(), key=lambda i: i.question_index), question_results(items)


def _pair_by_question(
    items_a: list[BatchItem], items_b: list[BatchItem]
) -> list[tuple[BatchItem | None, BatchItem | None]]:
    waiting: dict[str, deque[BatchItem]] = defaultdict(deque)
    for item in items_b:
        waiting[normalise_question(item.question)].append(item)
    pairs: list[tuple[BatchItem | None, BatchItem | None]] = []
    paired: set[int] = set()
    for item in items_a:
        queue = waiting.get(normalise_question(item.question))
        partner = queue.popleft() if queue else None
        if partner is not None:
            paired.add(partner.pk)
        pairs.append((item, partner))
    pairs.extend((None, item) for item in items_b if item.pk not in paired)
    return pairs


def _pair_by_row(
    items_a: list[BatchItem], items_b: list[BatchItem]
) -> list[tuple[BatchItem | None, BatchItem | None]]:
    """Questions paired by question number (first repeats only, one per question)."""
    by_index = {item.question_index: item for item in items_b}
    pairs: list[tuple[BatchItem | None, BatchItem | None]] = [
        (item, by_index.pop(item.question_index, None)) for item in items_a
    ]
    pairs.extend((None, item) for item in sorted(by_index.values(), key=lambda i: i.question_index))
    return pairs


def is_baseline(first: Batch, second: Batch, chains: Chains | None = None) -> bool:
    """Whether `first` is the baseline of a comparison with `second` (module docstring):
    `second` was run again from it (up the chain), or neither was run from the other and
    `first` is older."""
    if first.pk == second.pk:
        return True
    first_chain, second_chain = chains or (run_from_chain(first), run_from_chain(second))
    if first.pk in second_chain:
        return True
    if second.pk in first_chain:
        return False
    return (first.created_at, first.pk) <= (second.created_at, second.pk)


def order_batches(first: Batch, second: Batch, chains: Chains | None = None) -> tuple[Batch, Batch]:
    """(baseline, new) of two batches, whatever order they come in."""
    return (first, second) if is_baseline(first, second, chains) else (second, first)


def compare_batches(*, a: Batch, b: Batch) -> Comparison:
    """Compare two batches given in any order: find the baseline, align the rows, classify
    each pair, count the classes, and put both runs' rates side by side.

    Costs the two row queries and one summary query (plus one per Run-again step)."""
    chains = (run_from_chain(a), run_from_chain(b))  # each walked once
    baseline, new = order_batches(a, b, chains)
    aligned_by = "row" if same_rows(a, b, chains) else "question"
    items_old, results_old = question_rows(comparison_items(baseline))
    items_new, results_new = question_rows(comparison_items(new))
    pairer = _pair_by_row if aligned_by == "row" else _pair_by_question
    rows = []
    for old, fresh in pairer(items_old, items_new):
        similarity = None
        if old is not None and fresh is not None and _answered(old) and _answered(fresh):
            similarity = answer_similarity(_answer(fresh), _answer(old))
        old_result = results_old.get(old.question_index) if old is not None else None
        new_result = results_new.get(fresh.question_index) if fresh is not None else None
        change = classify(old, fresh, old_result, new_result)
        rows.append(ComparedRow(old, fresh, change, similarity, old_result, new_result))
    summary = dict.fromkeys(CHANGES, 0)
    for row in rows:
        summary[row.change] += 1
    summaries = grade_summaries([baseline.pk, new.pk])
    grades = (summaries[baseline.pk], summaries[new.pk])
    return Comparison(
        baseline=baseline,
        new=new,
        aligned_by=aligned_by,
        rows=rows,
        summary=summary,
        grades=grades,
        rates=rate_deltas(*grades),
    )


# --- Export ----------------------------------------------------------------------------------

SIDE_FIELDS = ("status", "answer", "citation_url", *GRADE_COLUMNS, "repeats", "passes")
COMPARE_COLUMNS: tuple[str, ...] = (
    "row",
    "change",
    "question",
    "expected_answer",
    "expected_citation_url",
    "answers_similarity",
    *(f"baseline_{name}" for name in SIDE_FIELDS),
    *(f"new_{name}" for name in SIDE_FIELDS),
)


def side(item: BatchItem | None, result: QuestionResult | None = None) -> dict[str, Any] | None:
    """One side of a compared row (API and export): its first repeat's row, and the
    question's result over its k repeats (`repeats` = k, `passes` out of `graded`)."""
    if item is None:
        return None
    interaction = item.interaction
    read = result.result if result is not None else repeat_result([item.verdict])
    return {
        "row": item.position + 1,
        "status": item.status,
        "answer": interaction.answer if interaction else "",
        "citation_url": interaction.citation_url if interaction else "",
        **grade_values(item),
        "judge_notes": item.judge_notes,
        "repeats": read.k,
        "passes": read.passes,
        "graded": read.graded,
        "pass_at_k": read.pass_at_k,
        "pass_all_k": read.pass_all_k,
        "agreement": result.agreement if result is not None else None,
    }


def compare_record(row: ComparedRow) -> dict[str, Any]:
    """A compared row as a flat record in COMPARE_COLUMNS order."""
    source = row.baseline or row.new
    record: dict[str, Any] = {
        "row": row.row,
        "change": row.change,
        "question": row.question,
        "expected_answer": source.expected_answer,
        "expected_citation_url": source.expected_citation_url,
        "answers_similarity": row.similarity,
    }
    for prefix, item, result in (
        ("baseline", row.baseline, row.baseline_result),
        ("new", row.new, row.new_result),
    ):
        values = side(item, result) or {}
        for name in SIDE_FIELDS:
            record[f"{prefix}_{name}"] = values.get(name)
    return record


def _stream_csv(comparison: Comparison) -> Iterator[bytes]:
    def lines() -> Iterator[str]:
        writer = csv.writer(_Echo())
        yield "\ufeff"
        yield writer.writerow(COMPARE_COLUMNS)
        for row in comparison.rows:
            record = compare_record(row)
            yield writer.writerow([_csv_cell(record[column]) for column in COMPARE_COLUMNS])

    return _chunked(lines())


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _batch_json(batch: Batch) -> dict[str, Any]:
    return {
        "batchId": batch.pk,
        "name": batch.name,
        "createdAt": batch.created_at.isoformat(),
        "runFrom": batch.run_from_id,
        "aiProvider": batch.ai_provider,
        "model": batch.model,
        "searchProvider": batch.search_provider,
        "pageLanguage": batch.page_language,
    }


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """The API's JSON, new vs baseline: `baseline` and `new` (the two batches), `summary`
    (`baseline` / `new` / `delta` per rate, and `changes`: rows per change class) and
    `rows`, each with `row`, `change`, both verdicts, the question and expectations, and
    both sides (`baseline`, `new`; null when absent). Keys are camelCase like the rest of
    the API."""
    rows = []
    for row in comparison.rows:
        source = row.baseline or row.new
        sides = {}
        for name, item, result in (
            ("baseline", row.baseline, row.baseline_result),
            ("new", row.new, row.new_result),
        ):
            values = side(item, result)
            sides[name] = None if values is None else {_camel(k): v for k, v in values.items()}
        rows.append(
            {
                "row": row.row,
                "change": row.change,
                "baselineVerdict": row.baseline.verdict if row.baseline else None,
                "newVerdict": row.new.verdict if row.new else None,
                "question": row.question,
                "expectedAnswer": source.expected_answer,
                "expectedCitationUrl": source.expected_citation_url,
                "answersSimilarity": row.similarity,
                **sides,
            }
        )
    summary: dict[str, Any] = {
        rate.key: {"baseline": rate.baseline, "new": rate.new, "delta": rate.delta}
        for rate in comparison.rates
    }
    summary["changes"] = comparison.summary
    return {
        "baseline": _batch_json(comparison.baseline),
        "new": _batch_json(comparison.new),
        "alignedBy": comparison.aligned_by,
        "summary": summary,
        "rows": rows,
    }


def _stream_json(comparison: Comparison) -> Iterator[bytes]:
    yield json.dumps(comparison_json(comparison), ensure_ascii=False, default=str).encode()


# Widths (characters) and wrapped texts of the compare XLSX, like the results XLSX's.
COMPARE_XLSX_WIDTHS = {
    "question": 50,
    "expected_answer": 50,
    "expected_citation_url": 40,
    "baseline_answer": 70,
    "new_answer": 70,
    "baseline_citation_url": 40,
    "new_citation_url": 40,
}
COMPARE_XLSX_WRAPPED = frozenset({"question", "expected_answer", "baseline_answer", "new_answer"})


def _stream_xlsx(comparison: Comparison) -> Iterator[bytes]:
    """The comparison as an XLSX sheet "New vs baseline", laid out like the results XLSX
    (batches.export.ReviewSheet)."""
    sheet = ReviewSheet(
        "New vs baseline",
        COMPARE_COLUMNS,
        width_of=lambda column: COMPARE_XLSX_WIDTHS.get(column, XLSX_DEFAULT_WIDTH),
        wrapped=COMPARE_XLSX_WRAPPED,
    )
    for row in comparison.rows:
        record = compare_record(row)
        sheet.append([_xlsx_cell(record[column]) for column in COMPARE_COLUMNS])
    yield from sheet.chunks()


COMPARE_FORMATS: dict[str, tuple[str, Callable[[Comparison], Iterator[bytes]]]] = {
    "csv": ("text/csv; charset=utf-8", _stream_csv),
    "json": ("application/json; charset=utf-8", _stream_json),
    "xlsx": (XLSX_CONTENT_TYPE, _stream_xlsx),
}


def compare_response(comparison: Comparison, fmt: str) -> StreamingHttpResponse:
    """The comparison (new vs baseline) as a download: one record per aligned row
    (COMPARE_COLUMNS)."""
    content_type, stream = COMPARE_FORMATS[fmt]
    response = StreamingHttpResponse(stream(comparison), content_type=content_type)
    filename = (
        f"batchchat-compare-{comparison.new.pk}-vs-{comparison.baseline.pk}-"
        f"{timezone.localdate():%Y-%m-%d}.{fmt}"
    )
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "private, no-store"
    return response
