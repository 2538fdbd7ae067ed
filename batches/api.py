"""The batch endpoints of the HTTP API (`/api/batch/...`, see DESIGN "HTTP API"): a
django-ninja router that batchchat.api mounts, with the API's authentication and JSON
errors.

Every endpoint is thin: fetch the batch through `batches_for(user)` (another user's batch
is 404, never 403), call one service, answer with a typed schema. Errors are raised
(ApiError, or a service's own: UploadError, BatchStateError, ProviderNotConfigured, ...)
and answered by batchchat.api's handlers.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Query, Router, Status
from ninja.errors import ValidationError
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from batchchat.api_base import ApiError, error_docs, multipart_file
from batches import costs, hooks, runners, services
from batches.admission import slice_admission
from batches.api_schemas import (
    BatchIdIn,
    BatchIdQuery,
    BatchListOut,
    BatchOut,
    BudgetIn,
    CreatedOut,
    CreateFields,
    CreateJsonIn,
    CreateMultipartIn,
    DeletedOut,
    EstimateOut,
    GradesOut,
    GuessedColumnsOut,
    ListQuery,
    PreviewIn,
    PreviewOut,
    ProcessIn,
    ProcessOut,
    ProjectedCallsOut,
    ProviderBatchOut,
    ResultsQuery,
    RunAgainIn,
    StartOut,
)
from batches.errors import JsonBodyError, UploadError
from batches.estimate import estimate_batch, projected_calls, refresh_estimate
from batches.events import run_slice
from batches.export import XLSX_CONTENT_TYPE, export_response
from batches.models import Batch, UploadDraft
from batches.selectors import (
    STAFF_READ_ONLY,
    batches_for,
    guard_counts_for,
    may_act_on,
    worker_alive,
)
from batches.uploads import (
    BAD_CHARACTERS,
    PREVIEW_ROWS,
    ColumnChoice,
    ParsedRow,
    clean_filename,
    parse_upload,
    parse_upload_file,
    read_json_body,
    read_upload_bytes,
)
from chats.services import ProviderNotConfigured

# One call of process-for-duration holds a worker (and the HTTP connection) this long at most.
MAX_SLICE_SECONDS = 60.0
WORKER_START_MESSAGE = (
    "The batch is queued; the background worker (manage.py run_worker) processes it: "
    "poll GET /api/batch/status until it is completed."
)
INLINE_START_MESSAGE = (
    "The inline runner processes a batch only while a client drives it: call "
    "POST /api/batch/process-for-duration with this batchId until `remaining` is 0 "
    "(or start the background worker, manage.py run_worker, or configure CELERY_BROKER_URL)."
)

# --- Helpers ------------------------------------------------------------------------------


def _batch_for(
    request: HttpRequest, batch_id: int, *, act: bool = False, shared: bool = True
) -> Batch:
    """The batch when the caller may see it (404 otherwise; `shared`: batches shared with
    them as reviewer count); with `act`, 403 when they may see it but not change it
    (staff on another user's batch, see may_act_on), 404 for a reviewer."""
    batch = batches_for(request.auth, shared=shared).filter(pk=batch_id).first()
    if batch is None or act and not may_act_on(request.auth, batch) and not request.auth.is_staff:
        # The same answer whether the batch does not exist or belongs to someone else.
        raise ApiError(404, f"No batch with batchId {batch_id}.")
    if act and not may_act_on(request.auth, batch):
        raise ApiError(403, STAFF_READ_ONLY, code="forbidden")
    return batch


COMMON_ERRORS = (400, 401, 403, 404)


def check_repeats(repeats: int | None) -> None:
    """422 naming `repeats` and its range when it is not 1..MAX_REPEATS."""
    if repeats is None:
        return
    try:
        services.check_repeats(repeats)
    except UploadError as exc:
        raise ApiError(
            422, exc.message, code="invalid_repeats", fields={"repeats": [exc.message]}
        ) from None


def check_economy_retry(economy_retry: str) -> None:
    """422 naming `economyRetry` and its choices when it is not one of them."""
    try:
        services.check_economy_retry(economy_retry)
    except ProviderNotConfigured as exc:
        message = str(exc)
        raise ApiError(
            422, message, code="invalid_economy_retry", fields={"economyRetry": [message]}
        ) from None


def created_out(batch: Batch, *, estimate: dict | None = None) -> CreatedOut:
    """A new batch as create, run-again and sets/run answer it: with its question set,
    the provider calls it will make and (create) the estimate before start."""
    set_ids = hooks.graders().question_set_ids([batch.pk])
    return CreatedOut.of(
        batch,
        question_set_id=set_ids.get(batch.pk),
        projected_calls=ProjectedCallsOut.of(projected_calls(batch)),
        estimate=estimate,
    )


def _validated_fields(model: type[CreateFields], data: dict[str, Any]) -> CreateFields:
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(exc.errors(include_url=False)) from None


def _column_choice(fields: CreateFields) -> ColumnChoice:
    if fields.columns is None:
        return ColumnChoice()
    return ColumnChoice(**fields.columns.model_dump())


def _draft_for(request: HttpRequest, upload_id: int) -> UploadDraft:
    draft = UploadDraft.objects.live().filter(owner=request.auth, pk=upload_id).first()
    if draft is None:
        raise ApiError(
            404,
            f"No upload with uploadId {upload_id} (uploads are kept for a day and used "
            "once): send the file to /api/batch/preview again.",
        )
    return draft


def _check_characters(data: dict[str, Any]) -> None:
    """422 naming the field when a text field holds what no database stores (NUL, an
    unpaired surrogate); rows are checked by the parser, with their row and column."""
    bad = {
        key: ["Remove the NUL character or unpaired surrogate: it cannot be stored."]
        for key, value in data.items()
        if isinstance(value, str) and BAD_CHARACTERS.search(value)
    }
    if bad:
        raise ApiError(
            422,
            f"Check these fields: {', '.join(bad)}. They hold characters that cannot be stored.",
            code="bad_characters",
            fields=bad,
        )


def _read_create_request(
    request: HttpRequest,
) -> tuple[CreateFields, list[ParsedRow], str, UploadDraft | None]:
    """The form fields, the parsed rows (none when the file is a kept upload: `uploadId`),
    the file name and that upload, from multipart or JSON."""
    if request.content_type == "multipart/form-data":
        data = {key: request.POST.get(key) for key in request.POST}
        _check_characters(data)
        fields = _validated_fields(CreateFields, data)
        if fields.upload_id is not None:
            draft = _draft_for(request, fields.upload_id)
            return fields, [], draft.filename, draft
        upload = request.FILES.get("file")
        if upload is None:
            raise ApiError(
                400,
                "Choose a CSV or XLSX file to upload (multipart field `file`).",
                code="invalid_fields",
                fields={"file": ["Choose a CSV or XLSX file."]},
            )
        filename = clean_filename(upload.name or "")
        parsed = parse_upload_file(file=upload, filename=filename, columns=_column_choice(fields))
        return fields, parsed.rows, filename, None
    if request.content_type in ("application/json", ""):
        try:
            # Rows are checked (and counted) while the body is read, not after.
            body, read_rows = read_json_body(request.body)
        except JsonBodyError as exc:
            raise ApiError(400, str(exc), code="bad_json") from None
        _check_characters(body)
        if "uploadId" in body and read_rows is None:
            fields = _validated_fields(CreateFields, body)
            draft = _draft_for(request, fields.upload_id)
            return fields, [], draft.filename, draft
        if read_rows is None:
            raise ApiError(
                400,
                "Give the questions as `rows` (a list of objects with a `question`), or "
                "upload a file as multipart/form-data.",
                code="invalid_fields",
                fields={"rows": ["Field required"]},
            )
        fields = _validated_fields(CreateFields, body)
        return fields, read_rows(_column_choice(fields)), "", None
    raise ApiError(
        415,
        f"Unsupported content type '{request.content_type}': send multipart/form-data with "
        "a file, or application/json with rows.",
    )


def _camel(value: Any) -> Any:
    """The estimate's keys in the API's camelCase (its values as they are)."""
    if isinstance(value, dict):
        return {to_camel(str(key)): _camel(item) for key, item in value.items()}
    return value


def _schema_ref(model: type) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")


CREATE_REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": _schema_ref(CreateMultipartIn)},
        "application/json": {"schema": _schema_ref(CreateJsonIn)},
    },
}

EXPORT_RESPONSES = {
    "200": {
        "description": "The results as a download (one row per interaction, failed rows too)",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            XLSX_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


# --- Endpoints ----------------------------------------------------------------------------

router = Router(tags=["batches"], by_alias=True)


@router.post(
    "/create",
    response={201: CreatedOut, **error_docs(*COMMON_ERRORS, 413, 415, 422)},
    openapi_extra={"requestBody": CREATE_REQUEST_BODY},
    summary="Create a batch from a file (multipart) or from JSON rows",
)
def create(request: HttpRequest):
    """Multipart with the form's fields and `file` (CSV or XLSX), or JSON with `rows`.

    Nothing is created when the upload or a field is refused. The batch starts as
    `uploaded`: drive it with process-for-duration (inline) or start it (Celery)."""
    fields, rows, filename, draft = _read_create_request(request)
    check_repeats(fields.repeats)
    check_economy_retry(fields.economy_retry)
    settings_fields = {
        "uploader": request.auth,
        "name": fields.name,
        "ai_provider": fields.ai_provider,
        "model": fields.model,
        "search_provider": fields.search_provider,
        "page_language": fields.page_language,
        "apply_overrides": fields.apply_overrides,
        "judge_enabled": fields.judge_enabled,
        "repeats": fields.repeats,
        "mode": fields.mode,
        "economy_retry": fields.economy_retry,
    }
    if draft is not None:
        batch = services.create_batch_from_draft(
            draft=draft, columns=_column_choice(fields), **settings_fields
        )
    else:
        batch = services.create_batch_run(rows=rows, source_filename=filename, **settings_fields)
    if fields.budget is not None:
        batch = costs.set_budget(batch=batch, budget=Decimal(str(fields.budget)))
    return Status(201, created_out(batch, estimate=_camel(refresh_estimate(batch))))


@router.get(
    "/estimate",
    response={200: EstimateOut, **error_docs(*COMMON_ERRORS)},
    summary="What the rows left will cost: calls, tokens, cost, duration",
)
def estimate(request: HttpRequest, query: Query[BatchIdQuery]):
    """Before start: built from the real prompts of a sample of rows. While the batch
    runs: corrected from the tokens measured so far (rows left only)."""
    batch = _batch_for(request, query.batch_id)
    return EstimateOut(batch_id=batch.pk, estimate=_camel(estimate_batch(batch)))


@router.post(
    "/budget",
    response={200: BatchOut, **error_docs(*COMMON_ERRORS, 409)},
    summary="Set or raise a batch's budget (raising it resumes a paused batch)",
)
def budget(request: HttpRequest, payload: BudgetIn):
    batch = _batch_for(request, payload.batch_id, act=True)
    value = None if payload.budget is None else Decimal(str(payload.budget))
    return BatchOut.of(costs.set_budget(batch=batch, budget=value))


@router.post(
    "/process-for-duration",
    response={200: ProcessOut, **error_docs(*COMMON_ERRORS, 409, 429)},
    summary="Process rows for a while (this drives the inline runner)",
)
def process_for_duration(request: HttpRequest, payload: ProcessIn):
    """Works on the batch for `seconds` (default BATCH_SLICE_SECONDS, at most 60), then
    answers with its progress; call again while `remaining` > 0. Safe to call from several
    clients at once. A cancelled or failed batch answers 409: start it first. A second call
    on the same batch while yours runs answers 409 (`slice_running`); more than
    MAX_SLICES_PER_USER of your slices, or MAX_CONCURRENT_SLICES on the server, answer 429
    with Retry-After."""
    batch = _batch_for(request, payload.batch_id, act=True)
    seconds = payload.seconds or settings.BATCH_SLICE_SECONDS
    seconds = min(seconds, MAX_SLICE_SECONDS) if math.isfinite(seconds) else MAX_SLICE_SECONDS
    with slice_admission(user=request.auth, batch_id=batch.pk):
        result = run_slice(
            batch_id=batch.pk, seconds=seconds, runner="api", concurrency=payload.concurrency
        )
    batch.refresh_from_db()
    return ProcessOut.of(
        batch, remaining=result.remaining, slice_done=result.done, slice_failed=result.failed
    )


@router.post(
    "/start",
    response={200: StartOut, **error_docs(*COMMON_ERRORS, 409)},
    summary="Queue a batch (uploaded, cancelled or failed); Celery processes it",
)
def start(request: HttpRequest, payload: BatchIdIn):
    batch = services.start_batch(batch=_batch_for(request, payload.batch_id, act=True))
    mode = runners.runner_mode()
    if mode == "inline" and worker_alive():
        mode, message = "worker", WORKER_START_MESSAGE
    elif mode == "inline":
        message = INLINE_START_MESSAGE
    else:
        message = "The batch is queued; Celery workers process it in the background."
    return StartOut.of(batch, runner=mode, message=message)


@router.post(
    "/cancel",
    response={200: BatchOut, **error_docs(*COMMON_ERRORS, 409)},
    summary="Cancel a batch: pending rows are cancelled, rows in flight finish",
)
def cancel(request: HttpRequest, payload: BatchIdIn):
    return BatchOut.of(services.cancel_batch(batch=_batch_for(request, payload.batch_id, act=True)))


@router.post(
    "/retry-failed",
    response={200: BatchOut, **error_docs(*COMMON_ERRORS, 409)},
    summary="Put failed and cancelled rows back to pending; the batch back to queued",
)
def retry_failed(request: HttpRequest, payload: BatchIdIn):
    return BatchOut.of(services.retry_failed(batch=_batch_for(request, payload.batch_id, act=True)))


@router.post(
    "/delete",
    response={200: DeletedOut, **error_docs(*COMMON_ERRORS, 409)},
    summary="Delete a batch, its rows and the chats that belong only to it",
)
def delete(request: HttpRequest, payload: BatchIdIn):
    batch = _batch_for(request, payload.batch_id, act=True)
    batch_id = batch.pk
    services.delete_batch(batch=batch)
    return DeletedOut(batch_id=batch_id, deleted=True)


@router.get(
    "/status",
    response={200: BatchOut, **error_docs(*COMMON_ERRORS)},
    summary="One batch with its progress",
)
def status(request: HttpRequest, query: Query[BatchIdQuery]):
    batch = _batch_for(request, query.batch_id)
    graders = hooks.graders()
    grades = _grades_out(graders.summaries([batch.pk])[batch.pk])
    review = graders.review_summary(batch.pk) if graders.review_summary else None
    projected = None
    if batch.status == Batch.Status.UPLOADED:  # before anything is sent
        projected = ProjectedCallsOut.of(projected_calls(batch))
    provider_batches = None
    if batch.is_economy:
        provider_batches = [ProviderBatchOut.of(pb) for pb in batch.provider_batches.all()]
    return BatchOut.of(
        batch,
        grades=grades,
        review=review,
        projected_calls=projected,
        provider_batches=provider_batches,
    )


@router.get(
    "/list",
    response={200: BatchListOut, **error_docs(400, 401)},
    summary="Your batches (staff: everyone's), newest first, paginated",
)
def list_batches(request: HttpRequest, query: Query[ListQuery]):
    batches = batches_for(request.auth)
    if query.status:
        batches = batches.filter(status=query.status)
    total = batches.count()
    start = (query.page - 1) * query.page_size
    page = list(batches.order_by("-created_at", "-id")[start : start + query.page_size])
    counts = guard_counts_for([batch.pk for batch in page])
    for batch in page:
        batch.guard_counts = counts[batch.pk]
    summaries = hooks.graders().summaries(batch.pk for batch in page)
    return BatchListOut(
        batches=[BatchOut.of(batch, grades=_grades_out(summaries[batch.pk])) for batch in page],
        page=query.page,
        page_size=query.page_size,
        total=total,
        pages=max(math.ceil(total / query.page_size), 1),
    )


@router.get(
    "/results",
    response={**error_docs(*COMMON_ERRORS)},
    openapi_extra={"responses": EXPORT_RESPONSES},
    summary="Download the results as CSV, JSON or XLSX (streamed)",
)
def results(request: HttpRequest, query: Query[ResultsQuery]):
    return export_response(_batch_for(request, query.batch_id), query.format)


# --- Evaluation -----------------------------------------------------------------------------


def _grades_out(summary) -> GradesOut:
    return GradesOut(**summary.as_dict())


@router.post(
    "/preview",
    response={200: PreviewOut, **error_docs(*COMMON_ERRORS, 413, 415, 422)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": _schema_ref(PreviewIn)}},
        }
    },
    summary="Read a file's header and first rows, for choosing its columns",
)
def preview(request: HttpRequest):
    """Multipart `file`. The file is kept on the server for a day: create the batch with
    its `uploadId` and a `columns` mapping (role -> header), without sending it again."""
    upload = multipart_file(request, what="a CSV or XLSX file")
    data = read_upload_bytes(file=upload)
    parsed = parse_upload(data=data, filename=upload.name or "", preview=PREVIEW_ROWS)
    draft = services.save_upload_draft(
        owner=request.auth, filename=upload.name or "", data=data, parsed_preview=parsed
    )
    return PreviewOut(
        upload_id=draft.pk,
        filename=draft.filename,
        columns=parsed.columns,
        rows=parsed.preview_rows,
        guessed=GuessedColumnsOut(**parsed.roles),
    )


@router.post(
    "/run-again",
    response={201: BatchOut, **error_docs(*COMMON_ERRORS, 422)},
    summary="A new batch from the same rows with other settings (remembers runFrom)",
)
def run_again(request: HttpRequest, payload: RunAgainIn):
    # Settings the payload leaves out are the source batch's own (services.run_again).
    check_repeats(payload.repeats)
    batch = services.run_again(
        batch=_batch_for(request, payload.batch_id, shared=False),
        uploader=request.auth,
        name=payload.name,
        ai_provider=payload.ai_provider,
        model=payload.model,
        search_provider=payload.search_provider,
        page_language=payload.page_language,
        apply_overrides=payload.apply_overrides,
        judge_enabled=payload.judge_enabled,
        repeats=payload.repeats,
    )
    return Status(201, created_out(batch))
