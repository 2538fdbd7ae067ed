"""A set's whole grid (every question × every visible run) as the API's JSON, and as a
CSV or XLSX download with one row per question and a column per run.

JSON (camelCase like the rest of the API):
- `set`: the set (`setId`, `name`, `version`);
- `runs`, newest first: `batchId`, `number` (1 = the set's first run), `name`,
  `createdAt`, `version`, `status`, the settings (`aiProvider`, `model`,
  `searchProvider`, `pageLanguage`, `judgeEnabled`, `repeats`) and `rates` (the batch's
  grade summary, as `grades` in /api/batch/status);
- `rows`, in question order: `position` (0-based), `question`, and `runs`: per batch id
  (a string key) `verdicts` (in repeat order; "" = not graded yet), `passes`, `k`,
  `passAtK`, `passAllK` (null while nothing is graded), `chatIds` and `reviewVerdicts`
  (the experts' review of each answer, "" when none).

CSV / XLSX: `position` (1-based, as on the page), `question`, `expected_answer`, then per
run, newest first, a column `#<number> <name> (<date>)` holding `pass`, `fail`,
`ungraded` or `""` (no answer) for one answer, `<passes>/<k>` with repeats.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify

from batches.export import (
    XLSX_CONTENT_TYPE,
    ReviewSheet,
    _chunked,
    _csv_cell,
    _Echo,
    _xlsx_cell,
)
from evaluation.models import QuestionSet
from evaluation.selectors import (
    EMPTY_CELL,
    Cell,
    GridRun,
    attach_run_grades,
    cells_for,
    grid_runs,
)

GRID_FORMATS = ("json", "csv", "xlsx")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def run_json(grid_run: GridRun) -> dict[str, Any]:
    batch = grid_run.batch
    return {
        "batchId": batch.pk,
        "number": grid_run.number,
        "name": batch.name,
        "createdAt": batch.created_at.isoformat(),
        "version": grid_run.run.version,
        "status": batch.status,
        "aiProvider": batch.ai_provider,
        "model": batch.model,
        "searchProvider": batch.search_provider,
        "pageLanguage": batch.page_language,
        "judgeEnabled": batch.judge_enabled,
        "repeats": batch.repeats,
        "rates": {_camel(key): value for key, value in grid_run.grades.as_dict().items()},
    }


def cell_json(cell: Cell) -> dict[str, Any]:
    result = cell.result
    return {
        "verdicts": list(cell.verdicts),
        "passes": result.passes,
        "k": result.k,
        "passAtK": result.pass_at_k,
        "passAllK": result.pass_all_k,
        "chatIds": list(cell.chat_ids),
        "reviewVerdicts": list(cell.reviews),
    }


def cell_text(cell: Cell) -> str:
    if not cell.k:
        return ""
    if cell.k == 1:
        return cell.verdicts[0] or ""
    return f"{cell.passes}/{cell.k}"


class Grid:
    """The whole grid of a set for `user`: five queries, whatever its size."""

    def __init__(self, user, question_set: QuestionSet) -> None:
        self.question_set = question_set
        self.runs = grid_runs(user, question_set)
        attach_run_grades(self.runs)
        self.questions = list(
            question_set.questions.order_by("position").values(
                "position", "question", "expected_answer"
            )
        )
        self.cells = cells_for([grid_run.batch.pk for grid_run in self.runs])

    def cell(self, grid_run: GridRun, position: int) -> Cell:
        return self.cells.get((grid_run.batch.pk, position), EMPTY_CELL)

    def as_json(self) -> dict[str, Any]:
        return {
            "set": {
                "setId": self.question_set.pk,
                "name": self.question_set.name,
                "version": self.question_set.version,
            },
            "runs": [run_json(grid_run) for grid_run in self.runs],
            "rows": [
                {
                    "position": question["position"],
                    "question": question["question"],
                    "runs": {
                        str(grid_run.batch.pk): cell_json(self.cell(grid_run, question["position"]))
                        for grid_run in self.runs
                    },
                }
                for question in self.questions
            ],
        }

    def columns(self) -> list[str]:
        runs = [
            f"#{r.number} {r.batch.name} ({timezone.localtime(r.batch.created_at):%Y-%m-%d %H:%M})"
            for r in self.runs
        ]
        return ["position", "question", "expected_answer", *runs]

    def records(self) -> Iterator[list[Any]]:
        for question in self.questions:
            position = question["position"]
            yield [
                position + 1,
                question["question"],
                question["expected_answer"],
                *(cell_text(self.cell(grid_run, position)) for grid_run in self.runs),
            ]


def _stream_csv(grid: Grid) -> Iterator[bytes]:
    def lines() -> Iterator[str]:
        writer = csv.writer(_Echo())
        yield "\ufeff"
        yield writer.writerow([_csv_cell(column) for column in grid.columns()])
        for record in grid.records():
            yield writer.writerow([_csv_cell(value) for value in record])

    return _chunked(lines())


def _stream_xlsx(grid: Grid) -> Iterator[bytes]:
    widths = {"position": 9, "question": 60, "expected_answer": 40}
    sheet = ReviewSheet(
        "Grid",
        grid.columns(),
        width_of=lambda column: widths.get(column, 18),
        wrapped=frozenset({"question", "expected_answer"}),
    )
    for record in grid.records():
        sheet.append([_xlsx_cell(value) for value in record])
    yield from sheet.chunks()


def _stream_json(grid: Grid) -> Iterator[bytes]:
    yield json.dumps(grid.as_json(), ensure_ascii=False).encode()


_STREAMS = {
    "json": ("application/json; charset=utf-8", _stream_json),
    "csv": ("text/csv; charset=utf-8", _stream_csv),
    "xlsx": (XLSX_CONTENT_TYPE, _stream_xlsx),
}


def grid_response(grid: Grid, fmt: str) -> StreamingHttpResponse:
    """The grid as a download (`fmt` one of GRID_FORMATS)."""
    content_type, stream = _STREAMS[fmt]
    response = StreamingHttpResponse(stream(grid), content_type=content_type)
    slug = slugify(grid.question_set.name)[:60].strip("-") or "set"
    filename = f"batchchat-set-{grid.question_set.pk}-{slug}-{timezone.localdate():%Y-%m-%d}.{fmt}"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "private, no-store"
    return response
