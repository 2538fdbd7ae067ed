"""The evaluation endpoints of the HTTP API, under `/api/batch/` beside the batch
endpoints (batchchat.api mounts this router on the same prefix): grading again and
comparing two runs; and the question sets' (`sets_router`, under `/api/sets/`): a new
run of a set. Thin like batches.api: fetch through `batches_for(user)` (another
user's batch is 404), call one service, answer with a typed schema."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from ninja import Query, Router, Status

from batchchat.api_base import ApiError, error_docs
from batches.api import COMMON_ERRORS, _batch_for, _grades_out, check_repeats, created_out
from batches.api_schemas import BatchOut, CompareQuery, RegradeIn, SetRunIn
from batches.export import XLSX_CONTENT_TYPE
from evaluation import regrade as regrading
from evaluation.compare import compare_batches, compare_response, comparison_json
from evaluation.grading import grade_summary
from evaluation.models import QuestionSet
from evaluation.sets import run_set

router = Router(tags=["batches"], by_alias=True)


@router.post(
    "/regrade",
    response={200: BatchOut, **error_docs(*COMMON_ERRORS)},
    summary="Grade the answered rows again (no new answers); optionally switch the judge",
)
def regrade(request: HttpRequest, payload: RegradeIn):
    """Without the AI judge the grades are in the answer. With it, and a Celery broker,
    the judge works in the background (the grades fill in as it goes: poll
    `batch/status`); without a broker the request judges every row before answering."""
    batch = _batch_for(request, payload.batch_id, act=True)
    job = regrading.start_regrade(batch=batch, judge_enabled=payload.judge_enabled)
    if job.active and not settings.CELERY_BROKER_URL:
        regrading.run_to_end(job)
    batch.refresh_from_db()
    return BatchOut.of(batch, grades=_grades_out(grade_summary(batch)))


COMPARE_RESPONSES = {
    "200": {
        "description": "The comparison, new vs baseline: JSON `{baseline, new, summary, rows}` "
        "or a CSV / XLSX download",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            XLSX_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.get(
    "/compare",
    response={**error_docs(*COMMON_ERRORS)},
    openapi_extra={"responses": COMPARE_RESPONSES},
    summary="Compare two batches, new vs baseline: rates side by side and row change classes",
)
def compare(request: HttpRequest, query: Query[CompareQuery]):
    """The two ids in any order: the baseline is the batch the other was run again from
    (up its chain), else the older one; the other is the new run.

    JSON: `baseline` and `new` (the two batches), `alignedBy`, `summary` (for each rate:
    `baseline`, `new` and `delta` = new - baseline; `changes`: rows per change class
    improved / regressed / changed / same / only_in_baseline / only_in_new) and `rows`,
    each with `row`, `change`, `baselineVerdict`, `newVerdict`, the question, the expected
    answer and citation, the similarity of the two answers, and both sides `baseline` and
    `new` (null when the row is missing there). CSV and XLSX: one line per row."""
    comparison = compare_batches(
        a=_batch_for(request, query.batch_id), b=_batch_for(request, query.other_batch_id)
    )
    if query.format == "json":
        return JsonResponse(comparison_json(comparison))
    return compare_response(comparison, query.format)


# --- Question sets ---------------------------------------------------------------------------

sets_router = Router(tags=["sets"], by_alias=True)
MAX_ID = 2**63 - 1


def _set_for(request: HttpRequest, set_id: int) -> QuestionSet:
    """The caller's set (a superuser's: any); 404 otherwise, whether it exists or not."""
    if set_id > MAX_ID:  # no database key is that large (and SQLite cannot compare it)
        raise ApiError(404, f"No question set with id {set_id}.")
    sets = QuestionSet.objects.all()
    if not request.auth.is_superuser:
        sets = sets.filter(owner=request.auth)
    question_set = sets.filter(pk=set_id).first()
    if question_set is None:
        raise ApiError(404, f"No question set with id {set_id}.")
    return question_set


@sets_router.post(
    "/{int:set_id}/run",
    response={201: BatchOut, **error_docs(*COMMON_ERRORS, 409, 422)},
    summary="Run a question set again: a new batch of its current questions and expectations",
)
def run(request: HttpRequest, set_id: int, payload: SetRunIn):
    """A new batch (a run of this set, at its current version) with the settings given;
    a setting left out is the server's default, like create. `repeats` (1-10) answers
    each question k times. With `start` true the batch is queued at once. Answers like
    create: `batchId`, `questionSetId`, `projectedCalls`."""
    question_set = _set_for(request, set_id)
    check_repeats(payload.repeats)
    batch = run_set(
        question_set=question_set,
        uploader=request.auth,
        name=payload.name,
        ai_provider=payload.ai_provider,
        model=payload.model,
        search_provider=payload.search_provider,
        page_language=payload.page_language,
        apply_overrides=payload.apply_overrides,
        judge_enabled=payload.judge_enabled,
        repeats=payload.repeats,
        start=payload.start,
    )
    batch.refresh_from_db()
    return Status(201, created_out(batch))
