"""Comparing two batches row by row (evaluation): alignment, change classes, word diff,
and the comparison as CSV, JSON or XLSX.

Alignment: two batches that come from the same rows (one was made from the other with
"Run again", or both from a common ancestor) are aligned by row number; other batches by
question text (case, spacing and surrounding punctuation ignored; a question asked twice
pairs its first occurrences first).

Change class of a pair (A = the first batch, B = the other):
- `only_in_a` / `only_in_b`: the row has no partner;
- `same`: both unanswered, or the same answer text (spacing ignored) citing the same page
  (normalised URL);
- `improved` / `regressed`: B answers where A did not (or the reverse); else the graders
  that both rows have (citation match, answer found, judge pass) counted as +1 / -1 each,
  and when those tie, the answer similarity moving by at least SIMILARITY_STEP;
- `changed`: a different answer or citation that the grades do not rank.
"""

from __future__ import annotations

import csv
import difflib
import json
import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header

from batches.export import (
    GRADE_COLUMNS,
    STREAM_CHUNK,
    XLSX_CONTENT_TYPE,
    XLSX_SPOOL_BYTES,
    _chunked,
    _csv_cell,
    _Echo,
    _xlsx_cell,
    grade_values,
)
from batches.grading import answer_similarity, normalise_url
from batches.models import Batch, BatchItem, JudgeVerdict

CHANGES = ("same", "changed", "improved", "regressed", "only_in_a", "only_in_b")
SIMILARITY_STEP = 0.1
# How far up "Run again" chains are followed to find a common source.
MAX_LINEAGE = 50
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


def _judge_score(item: BatchItem) -> bool | None:
    if item.judge_verdict in (JudgeVerdict.PASS, JudgeVerdict.FAIL):
        return item.judge_verdict == JudgeVerdict.PASS
    return None


def classify(a: BatchItem | None, b: BatchItem | None) -> str:
    """The change class of a pair (module docstring)."""
    if b is None:
        return "only_in_a"
    if a is None:
        return "only_in_b"
    answered_a, answered_b = _answered(a), _answered(b)
    if answered_a != answered_b:
        return "improved" if answered_b else "regressed"
    if not answered_a:
        return "same"
    ia, ib = a.interaction, b.interaction
    same_text = _SPACES.sub(" ", ia.answer).strip() == _SPACES.sub(" ", ib.answer).strip()
    if same_text and normalise_url(ia.citation_url) == normalise_url(ib.citation_url):
        return "same"
    score = 0
    for grade_a, grade_b in (
        (a.citation_match, b.citation_match),
        (a.answer_found, b.answer_found),
        (_judge_score(a), _judge_score(b)),
    ):
        if grade_a is not None and grade_b is not None:
            score += int(grade_b) - int(grade_a)
    if score == 0 and a.answer_similarity is not None and b.answer_similarity is not None:
        delta = b.answer_similarity - a.answer_similarity
        if abs(delta) >= SIMILARITY_STEP:
            score = 1 if delta > 0 else -1
    if score > 0:
        return "improved"
    if score < 0:
        return "regressed"
    return "changed"


# --- The comparison --------------------------------------------------------------------------


@dataclass
class ComparedRow:
    a: BatchItem | None
    b: BatchItem | None
    change: str
    similarity: float | None  # between the two answers (ROUGE-L F1), None if one is missing

    @property
    def row(self) -> int:
        """1-based row number: A's row, or B's for a row only in B."""
        item = self.a or self.b
        return item.position + 1

    @property
    def question(self) -> str:
        return (self.a or self.b).question

    def diff(self) -> list[tuple[str, str]]:
        return word_diff(_answer(self.a), _answer(self.b))


@dataclass
class Comparison:
    a: Batch
    b: Batch
    aligned_by: str  # "row" or "question"
    rows: list[ComparedRow]
    summary: dict[str, int] = field(default_factory=dict)


def _answer(item: BatchItem | None) -> str:
    return item.interaction.answer if item is not None and item.interaction else ""


def _lineage(batch: Batch) -> list[int]:
    """The batch id and the ids it was run from, nearest first (one query per step)."""
    ids = [batch.pk]
    parent = batch.run_from_id
    while parent is not None and parent not in ids and len(ids) < MAX_LINEAGE:
        ids.append(parent)
        parent = Batch.objects.filter(pk=parent).values_list("run_from_id", flat=True).first()
    return ids


def same_rows(a: Batch, b: Batch) -> bool:
    """Whether one batch was made from the other, or both from one source, by Run again."""
    if a.pk == b.pk:
        return True
    return bool(set(_lineage(a)) & set(_lineage(b)))


def comparison_items(batch: Batch) -> list[BatchItem]:
    """A batch's rows with their answers, in order (one query)."""
    return list(batch.items.select_related("interaction").order_by("position"))


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
    by_position = {item.position: item for item in items_b}
    pairs: list[tuple[BatchItem | None, BatchItem | None]] = [
        (item, by_position.pop(item.position, None)) for item in items_a
    ]
    pairs.extend((None, item) for item in sorted(by_position.values(), key=lambda i: i.position))
    return pairs


def compare_batches(*, a: Batch, b: Batch) -> Comparison:
    """Align the rows of `a` and `b`, classify each pair, count the classes.

    Costs the two row queries (plus one per Run-again step to find the common source)."""
    aligned_by = "row" if same_rows(a, b) else "question"
    items_a, items_b = comparison_items(a), comparison_items(b)
    pairer = _pair_by_row if aligned_by == "row" else _pair_by_question
    rows = []
    for item_a, item_b in pairer(items_a, items_b):
        similarity = None
        if item_a is not None and item_b is not None and _answered(item_a) and _answered(item_b):
            similarity = answer_similarity(_answer(item_b), _answer(item_a))
        rows.append(ComparedRow(item_a, item_b, classify(item_a, item_b), similarity))
    summary = dict.fromkeys(CHANGES, 0)
    for row in rows:
        summary[row.change] += 1
    return Comparison(a=a, b=b, aligned_by=aligned_by, rows=rows, summary=summary)


# --- Export ----------------------------------------------------------------------------------

SIDE_FIELDS = ("status", "answer", "citation_url", *GRADE_COLUMNS)
COMPARE_COLUMNS: tuple[str, ...] = (
    "row",
    "change",
    "question",
    "expected_answer",
    "expected_citation_url",
    "answers_similarity",
    *(f"a_{name}" for name in SIDE_FIELDS),
    *(f"b_{name}" for name in SIDE_FIELDS),
)


def side(item: BatchItem | None) -> dict[str, Any] | None:
    """One side of a compared row (API and export)."""
    if item is None:
        return None
    interaction = item.interaction
    return {
        "row": item.position + 1,
        "status": item.status,
        "answer": interaction.answer if interaction else "",
        "citation_url": interaction.citation_url if interaction else "",
        **grade_values(item),
        "judge_notes": item.judge_notes,
    }


def compare_record(row: ComparedRow) -> dict[str, Any]:
    """A compared row as a flat record in COMPARE_COLUMNS order."""
    source = row.a or row.b
    record: dict[str, Any] = {
        "row": row.row,
        "change": row.change,
        "question": row.question,
        "expected_answer": source.expected_answer,
        "expected_citation_url": source.expected_citation_url,
        "answers_similarity": row.similarity,
    }
    for prefix, item in (("a", row.a), ("b", row.b)):
        values = side(item) or {}
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


def comparison_json(comparison: Comparison) -> dict[str, Any]:
    """The API's JSON: `summary` (count per change class) and `rows`, each with `row`,
    `change`, the question and expectations, and both sides (`a`, `b`; null when absent).
    Keys are camelCase like the rest of the API."""
    rows = []
    for row in comparison.rows:
        source = row.a or row.b
        sides = {}
        for name, item in (("a", row.a), ("b", row.b)):
            values = side(item)
            sides[name] = None if values is None else {_camel(k): v for k, v in values.items()}
        rows.append(
            {
                "row": row.row,
                "change": row.change,
                "question": row.question,
                "expectedAnswer": source.expected_answer,
                "expectedCitationUrl": source.expected_citation_url,
                "answersSimilarity": row.similarity,
                **sides,
            }
        )
    return {
        "batchId": comparison.a.pk,
        "otherBatchId": comparison.b.pk,
        "alignedBy": comparison.aligned_by,
        "summary": comparison.summary,
        "rows": rows,
    }


def _stream_json(comparison: Comparison) -> Iterator[bytes]:
    yield json.dumps(comparison_json(comparison), ensure_ascii=False, default=str).encode()


def _stream_xlsx(comparison: Comparison) -> Iterator[bytes]:
    from openpyxl import Workbook  # only for this format (see batches.export.stream_xlsx)

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Comparison")
    sheet.append(list(COMPARE_COLUMNS))
    for row in comparison.rows:
        record = compare_record(row)
        sheet.append([_xlsx_cell(record[column]) for column in COMPARE_COLUMNS])
    with SpooledTemporaryFile(max_size=XLSX_SPOOL_BYTES) as out:
        workbook.save(out)
        out.seek(0)
        while chunk := out.read(STREAM_CHUNK):
            yield chunk


COMPARE_FORMATS: dict[str, tuple[str, Callable[[Comparison], Iterator[bytes]]]] = {
    "csv": ("text/csv; charset=utf-8", _stream_csv),
    "json": ("application/json; charset=utf-8", _stream_json),
    "xlsx": (XLSX_CONTENT_TYPE, _stream_xlsx),
}


def compare_response(comparison: Comparison, fmt: str) -> StreamingHttpResponse:
    """The comparison as a download: one record per aligned row (COMPARE_COLUMNS)."""
    content_type, stream = COMPARE_FORMATS[fmt]
    response = StreamingHttpResponse(stream(comparison), content_type=content_type)
    filename = (
        f"batchchat-compare-{comparison.a.pk}-{comparison.b.pk}-"
        f"{timezone.localdate():%Y-%m-%d}.{fmt}"
    )
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "private, no-store"
    return response
