"""The question set endpoints of the HTTP API, under `/api/sets` (batchchat.api mounts
this router): the user's sets, one set with its runs and questions, and its grid as JSON,
CSV or XLSX. Thin like batches.api: fetch through `sets_for(user)` (another user's set is
404), read through evaluation.selectors, answer with a typed schema."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest, JsonResponse
from ninja import Path, Query, Router
from pydantic import Field

from batchchat.api_base import ApiError, CamelSchema, error_docs
from batches.api_schemas import MAX_PAGE_SIZE
from batches.export import XLSX_CONTENT_TYPE
from evaluation.grid_export import Grid, grid_response, run_json
from evaluation.models import QuestionSet
from evaluation.selectors import (
    attach_latest_grades,
    attach_run_grades,
    grid_runs,
    set_list_for,
)

router = Router(tags=["sets"], by_alias=True)
# A set id as the database holds it (a larger one would overflow SQLite's integer).
SET_ID = Path(..., ge=1, le=2**63 - 1)
ERRORS = (400, 401, 404)


class SetOut(CamelSchema):
    set_id: int
    name: str
    version: int = Field(description="Counts the changes of expectations (1 = as uploaded)")
    question_count: int
    run_count: int = Field(description="Runs whose batch you may see")
    latest_batch_id: int | None = Field(description="The newest run's batch")
    latest_pass_rate: float | None = Field(description="The newest run's pass rate (0-1)")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, question_set: QuestionSet) -> SetOut:
        grades = getattr(question_set, "latest_grades", None)
        return cls(
            set_id=question_set.pk,
            name=question_set.name,
            version=question_set.version,
            question_count=question_set.question_count or 0,
            run_count=question_set.run_count or 0,
            latest_batch_id=question_set.latest_batch_id,
            latest_pass_rate=grades.pass_rate if grades else None,
            created_at=question_set.created_at,
            updated_at=question_set.updated_at,
        )


class SetListOut(CamelSchema):
    sets: list[SetOut]
    page: int
    page_size: int
    total: int
    pages: int


class SetListQuery(CamelSchema):
    page: int = Field(default=1, ge=1, le=1_000_000)
    page_size: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)


class QuestionOut(CamelSchema):
    position: int = Field(description="0-based, the question's place in the upload")
    question: str
    referring_url: str
    expected_answer: str
    expected_citation_url: str
    expected_outcome: str
    version: int = Field(description="The set version these expectations were set in")


class SetDetailOut(SetOut):
    runs: list[dict[str, Any]] = Field(
        description="Newest first, as in the grid's `runs`: batchId, number, name, "
        "createdAt, version, status, settings, repeats and rates"
    )
    questions: list[QuestionOut]


class GridQuery(CamelSchema):
    format: Literal["json", "csv", "xlsx"] = "json"


GRID_RESPONSES = {
    "200": {
        "description": "The grid: JSON `{set, runs, rows}`, or a CSV / XLSX download with "
        "one row per question and a column per run",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            XLSX_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _set_for(request: HttpRequest, set_id: int) -> QuestionSet:
    question_set = set_list_for(request.auth).filter(pk=set_id).first()
    if question_set is None:
        # The same answer whether the set does not exist or belongs to someone else.
        raise ApiError(404, f"No question set with id {set_id}.")
    return question_set


@router.get(
    "",
    response={200: SetListOut, **error_docs(*ERRORS)},
    summary="Your question sets (staff: everyone's), newest first, paginated",
)
def list_sets(request: HttpRequest, query: Query[SetListQuery]):
    sets = set_list_for(request.auth)
    total = sets.count()
    start = (query.page - 1) * query.page_size
    page = list(sets[start : start + query.page_size])
    attach_latest_grades(page)
    return SetListOut(
        sets=[SetOut.of(question_set) for question_set in page],
        page=query.page,
        page_size=query.page_size,
        total=total,
        pages=max(math.ceil(total / query.page_size), 1),
    )


@router.get(
    "/{set_id}",
    response={200: SetDetailOut, **error_docs(*ERRORS)},
    summary="One question set: its runs (with their settings and rates) and its questions",
)
def set_detail(request: HttpRequest, set_id: int = SET_ID):
    question_set = _set_for(request, set_id)
    attach_latest_grades([question_set])
    runs = grid_runs(request.auth, question_set)
    attach_run_grades(runs)
    questions = question_set.questions.order_by("position")
    return SetDetailOut(
        **SetOut.of(question_set).model_dump(),
        runs=[run_json(grid_run) for grid_run in runs],
        questions=[
            QuestionOut.model_validate(question, from_attributes=True) for question in questions
        ],
    )


@router.get(
    "/{set_id}/grid",
    response={**error_docs(*ERRORS)},
    openapi_extra={"responses": GRID_RESPONSES},
    summary="The set's grid: every question × every run, as JSON, CSV or XLSX",
)
def set_grid(request: HttpRequest, query: Query[GridQuery], set_id: int = SET_ID):
    """JSON: `set`; `runs`, newest first, each with `batchId`, `number`, `createdAt`, its
    settings (`aiProvider`, `model`, `searchProvider`, `pageLanguage`, `judgeEnabled`,
    `repeats`) and `rates`; `rows` in question order, each with `position`, `question`
    and `runs`: per batch id, `verdicts` (in repeat order), `passes`, `k`, `passAtK`,
    `passAllK` (null while nothing is graded) and `chatIds`. CSV and XLSX: one row per
    question, a column per run (`pass` / `fail` / `ungraded`, or passes/k with repeats)."""
    question_set = _set_for(request, set_id)
    grid = Grid(request.auth, question_set)
    if query.format == "json":
        return JsonResponse(grid.as_json())
    return grid_response(grid, query.format)
