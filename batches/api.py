"""The batch HTTP API (`/api/...`, see DESIGN "HTTP API"), built with django-ninja.

Every endpoint is thin: authenticate (token or session + CSRF), fetch the batch through
`batches_for(user)` (another user's batch is 404, never 403), call one service, answer with
a typed schema. Every error, including unexpected ones and unknown paths, is JSON:
`{"error": {"code", "message", "fields"?}}`.
"""

from __future__ import annotations

import logging
import math
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from ninja import NinjaAPI, Query, Router, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from pydantic import ValidationError as PydanticValidationError

from accounts.auth import SessionCsrfAuth, TokenAuth
from accounts.throttle import TooManyBadTokens
from batches import services
from batches.admission import SliceRefused, slice_admission
from batches.api_schemas import (
    BatchIdIn,
    BatchIdQuery,
    BatchListOut,
    BatchOut,
    CompareQuery,
    CreateFields,
    CreateJsonIn,
    CreateMultipartIn,
    DeletedOut,
    ErrorOut,
    GradesOut,
    GuessedColumnsOut,
    ListQuery,
    PreviewIn,
    PreviewOut,
    ProcessIn,
    ProcessOut,
    ProvidersOut,
    RegradeIn,
    ResultsQuery,
    RunAgainIn,
    StartOut,
)
from batches.compare import compare_batches, compare_response, comparison_json
from batches.events import run_slice
from batches.export import XLSX_CONTENT_TYPE, export_response
from batches.grading import grade_summaries, grade_summary, regrade_batch
from batches.ingest import (
    BAD_CHARACTERS,
    PREVIEW_ROWS,
    ColumnChoice,
    JsonBodyError,
    ParsedRow,
    UploadError,
    clean_filename,
    parse_upload,
    parse_upload_file,
    read_json_body,
    read_upload_bytes,
)
from batches.models import Batch, UploadDraft
from batches.selectors import batches_for, guard_counts_for, may_act_on, worker_alive
from chats.services import ProviderNotConfigured, provider_choices, search_choices

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"
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

STAFF_READ_ONLY = (
    "Staff may read every batch, but only its owner (or a superuser) may start, process, "
    "cancel, retry or delete it."
)

ERROR_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    500: "server_error",
}


# --- Errors -------------------------------------------------------------------------------


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    fields: dict[str, list[str]] | None = None,
    **extra: Any,
) -> JsonResponse:
    error: dict[str, Any] = {"code": code or ERROR_CODES.get(status, "error"), "message": message}
    if fields:
        error["fields"] = fields
    error.update({key: value for key, value in extra.items() if value is not None})
    return JsonResponse({"error": error}, status=status)


class ApiError(Exception):
    """Raised by the views; the handler turns it into the JSON error answer."""

    def __init__(self, status: int, message: str, *, code: str | None = None, **extra) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra


def _field_name(loc: tuple | list) -> str:
    # ninja prefixes locations with the parameter source and name ("body", "payload",
    # "batchId"); a person wants the field as sent.
    names = [str(part) for part in loc if not isinstance(part, int)]
    names = [name for name in names if name not in {"body", "query", "payload", "form", "file"}]
    return names[-1] if names else "body"


def _fields_from(errors: list[dict[str, Any]]) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for error in errors:
        fields.setdefault(_field_name(error.get("loc", ())), []).append(str(error.get("msg")))
    return fields


def _invalid_fields(fields: dict[str, list[str]]) -> JsonResponse:
    names = ", ".join(fields)
    return error_response(
        400, f"Check these fields: {names}.", code="invalid_fields", fields=fields
    )


def _signed_in(view):
    """The API description and its docs page, like the API, are for signed-in users and
    token holders; others get the JSON 401."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        try:
            if request.user.is_authenticated or TokenAuth()(request) is not None:
                return view(request, *args, **kwargs)
        except TooManyBadTokens as exc:
            return _too_many_bad_tokens(exc)
        return error_response(
            401, "Log in, or send your API token (Authorization: Bearer <token>)."
        )

    return wrapper


api = NinjaAPI(
    title="BatchChat API",
    version="1",
    description=(
        "Batches of questions answered by the BatchChat pipeline. Authenticate with a "
        "personal API token (`Authorization: Bearer <token>`, created on /settings/tokens/ "
        "or with `manage.py api_token create USERNAME`) or, from the browser, with the "
        "session cookie plus the X-CSRFToken header. Errors are always "
        '`{"error": {"code", "message", "fields"?}}`.'
    ),
    urls_namespace="api",
    auth=[TokenAuth(), SessionCsrfAuth()],
    openapi_url="/schema",
    docs_url="/docs",
    docs_decorator=_signed_in,
)


@api.exception_handler(ValidationError)
def _on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return _invalid_fields(_fields_from(exc.errors))


@api.exception_handler(AuthenticationError)
def _on_authentication_error(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = error_response(
        401,
        "Log in, or send a personal API token as 'Authorization: Bearer <token>' "
        "(create one on /settings/tokens/). A revoked or mistyped token is refused.",
    )
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


@api.exception_handler(HttpError)
def _on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    code = "csrf_failed" if exc.status_code == 403 else None
    if exc.status_code == 400:
        message = "The request body is not valid JSON: send a JSON object."
        return error_response(400, message, code="bad_json")
    return error_response(exc.status_code, exc.message, code=code)


@api.exception_handler(ApiError)
def _on_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(exc.status, exc.message, code=exc.code, **exc.extra)


@api.exception_handler(Http404)
def _on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(404, "Not found.")


@api.exception_handler(services.BatchStateError)
def _on_state_error(request: HttpRequest, exc: services.BatchStateError) -> HttpResponse:
    return error_response(409, str(exc), code="conflict")


def _too_many_bad_tokens(exc: TooManyBadTokens) -> HttpResponse:
    response = error_response(429, str(exc), code="too_many_attempts")
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(TooManyBadTokens)
def _on_too_many_bad_tokens(request: HttpRequest, exc: TooManyBadTokens) -> HttpResponse:
    return _too_many_bad_tokens(exc)


@api.exception_handler(SliceRefused)
def _on_slice_refused(request: HttpRequest, exc: SliceRefused) -> HttpResponse:
    response = error_response(exc.status, exc.message, code=exc.code)
    response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(UploadError)
def _on_upload_error(request: HttpRequest, exc: UploadError) -> HttpResponse:
    status = 413 if exc.code == "too_large" else 422
    code = "too_large" if status == 413 else "upload_rejected"
    return error_response(
        status, exc.message, code=code, reason=exc.code, row=exc.row, column=exc.column
    )


@api.exception_handler(ProviderNotConfigured)
def _on_provider_not_configured(request: HttpRequest, exc: ProviderNotConfigured) -> HttpResponse:
    message = str(exc)
    field = getattr(exc, "api_field", "aiProvider")
    return error_response(422, message, code="provider_not_configured", fields={field: [message]})


@api.exception_handler(RequestDataTooBig)
def _on_too_big(request: HttpRequest, exc: Exception) -> HttpResponse:
    limit = settings.MAX_UPLOAD_BYTES
    return error_response(
        413,
        f"The request is larger than the {limit:,}-byte limit. Split the questions into "
        "several batches.",
    )


@api.exception_handler(TooManyFieldsSent)
def _on_too_many_fields(request: HttpRequest, exc: Exception) -> HttpResponse:
    return error_response(400, "The form has too many fields.")


@api.exception_handler(Exception)
def _on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("unexpected error in %s %s", request.method, request.path)
    return _server_error_response()


def _server_error_response() -> JsonResponse:
    return error_response(
        500,
        "Something went wrong on the server; it has been logged. Try again, and tell the "
        "administrator if it keeps happening.",
    )


# --- Helpers ------------------------------------------------------------------------------


def _batch_for(request: HttpRequest, batch_id: int, *, act: bool = False) -> Batch:
    """The batch when the caller may see it (404 otherwise); with `act`, 403 when they may
    see it but not change it (staff on another user's batch, see may_act_on)."""
    batch = batches_for(request.auth).filter(pk=batch_id).first()
    if batch is None:
        # The same answer whether the batch does not exist or belongs to someone else.
        raise ApiError(404, f"No batch with batchId {batch_id}.")
    if act and not may_act_on(request.auth, batch):
        raise ApiError(403, STAFF_READ_ONLY, code="forbidden")
    return batch


def _response_docs(*statuses: int) -> dict[int, Any]:
    return {status: ErrorOut for status in statuses}


COMMON_ERRORS = (400, 401, 403, 404)


def _check_providers(fields: CreateFields) -> tuple[str, str]:
    """The AI and search provider keys to use; 422 naming the field when one is not enabled."""
    ai_provider = fields.ai_provider or settings.DEFAULT_AI_PROVIDER
    search_provider = fields.search_provider or settings.DEFAULT_SEARCH_PROVIDER
    ai_keys = [key for key, _label, _models in provider_choices()]
    if ai_provider not in ai_keys:
        exc = ProviderNotConfigured(
            f"The AI provider '{ai_provider}' is not available here. "
            f"Choose one of: {', '.join(ai_keys) or 'none configured'}."
        )
        exc.api_field = "aiProvider"
        raise exc
    search_keys = [key for key, _label in search_choices()]
    if search_provider not in search_keys:
        exc = ProviderNotConfigured(
            f"The search provider '{search_provider}' is not available here. "
            f"Choose one of: {', '.join(search_keys) or 'none configured'}."
        )
        exc.api_field = "searchProvider"
        raise exc
    return ai_provider, search_provider


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
    draft = UploadDraft.objects.filter(owner=request.auth, pk=upload_id).first()
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
    response={201: BatchOut, **_response_docs(*COMMON_ERRORS, 413, 415, 422)},
    openapi_extra={"requestBody": CREATE_REQUEST_BODY},
    summary="Create a batch from a file (multipart) or from JSON rows",
)
def create(request: HttpRequest):
    """Multipart with the form's fields and `file` (CSV or XLSX), or JSON with `rows`.

    Nothing is created when the upload or a field is refused. The batch starts as
    `uploaded`: drive it with process-for-duration (inline) or start it (Celery)."""
    fields, rows, filename, draft = _read_create_request(request)
    ai_provider, search_provider = _check_providers(fields)
    settings_fields = {
        "uploader": request.auth,
        "name": fields.name,
        "ai_provider": ai_provider,
        "model": fields.model,
        "search_provider": search_provider,
        "page_language": fields.page_language,
        "apply_overrides": fields.apply_overrides,
        "judge_enabled": fields.judge_enabled,
    }
    try:
        if draft is not None:
            batch = services.create_batch_from_draft(
                draft=draft, columns=_column_choice(fields), **settings_fields
            )
        else:
            batch = services.create_batch_run(
                rows=rows, source_filename=filename, **settings_fields
            )
    except ProviderNotConfigured as exc:
        # Both providers are enabled (checked above), so what is left to refuse is the model.
        exc.api_field = "model"
        raise
    return Status(201, BatchOut.of(batch))


@router.post(
    "/process-for-duration",
    response={200: ProcessOut, **_response_docs(*COMMON_ERRORS, 409, 429)},
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
    response={200: StartOut, **_response_docs(*COMMON_ERRORS, 409)},
    summary="Queue a batch (uploaded, cancelled or failed); Celery processes it",
)
def start(request: HttpRequest, payload: BatchIdIn):
    batch = services.start_batch(batch=_batch_for(request, payload.batch_id, act=True))
    mode = services.runner_mode()
    if mode == "inline" and worker_alive():
        mode, message = "worker", WORKER_START_MESSAGE
    elif mode == "inline":
        message = INLINE_START_MESSAGE
    else:
        message = "The batch is queued; Celery workers process it in the background."
    return StartOut.of(batch, runner=mode, message=message)


@router.post(
    "/cancel",
    response={200: BatchOut, **_response_docs(*COMMON_ERRORS, 409)},
    summary="Cancel a batch: pending rows are cancelled, rows in flight finish",
)
def cancel(request: HttpRequest, payload: BatchIdIn):
    return BatchOut.of(services.cancel_batch(batch=_batch_for(request, payload.batch_id, act=True)))


@router.post(
    "/retry-failed",
    response={200: BatchOut, **_response_docs(*COMMON_ERRORS, 409)},
    summary="Put failed and cancelled rows back to pending; the batch back to queued",
)
def retry_failed(request: HttpRequest, payload: BatchIdIn):
    return BatchOut.of(services.retry_failed(batch=_batch_for(request, payload.batch_id, act=True)))


@router.post(
    "/delete",
    response={200: DeletedOut, **_response_docs(*COMMON_ERRORS, 409)},
    summary="Delete a batch, its rows and the chats that belong only to it",
)
def delete(request: HttpRequest, payload: BatchIdIn):
    batch = _batch_for(request, payload.batch_id, act=True)
    batch_id = batch.pk
    services.delete_batch(batch=batch)
    return DeletedOut(batch_id=batch_id, deleted=True)


@router.get(
    "/status",
    response={200: BatchOut, **_response_docs(*COMMON_ERRORS)},
    summary="One batch with its progress",
)
def status(request: HttpRequest, query: Query[BatchIdQuery]):
    batch = _batch_for(request, query.batch_id)
    return BatchOut.of(batch, grades=_grades_out(grade_summary(batch)))


@router.get(
    "/list",
    response={200: BatchListOut, **_response_docs(400, 401)},
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
    summaries = grade_summaries(batch.pk for batch in page)
    return BatchListOut(
        batches=[BatchOut.of(batch, grades=_grades_out(summaries[batch.pk])) for batch in page],
        page=query.page,
        page_size=query.page_size,
        total=total,
        pages=max(math.ceil(total / query.page_size), 1),
    )


@router.get(
    "/results",
    response={**_response_docs(*COMMON_ERRORS)},
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
    response={200: PreviewOut, **_response_docs(*COMMON_ERRORS, 413, 415, 422)},
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
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "Send the file as multipart/form-data (field `file`).")
    upload = request.FILES.get("file")
    if upload is None:
        raise ApiError(
            400,
            "Choose a CSV or XLSX file (multipart field `file`).",
            code="invalid_fields",
            fields={"file": ["Choose a CSV or XLSX file."]},
        )
    data = read_upload_bytes(file=upload)
    parsed = parse_upload(data=data, filename=upload.name or "", preview=PREVIEW_ROWS)
    draft = services.save_upload_draft(owner=request.auth, filename=upload.name or "", data=data)
    return PreviewOut(
        upload_id=draft.pk,
        filename=draft.filename,
        columns=parsed.columns,
        rows=parsed.preview_rows,
        guessed=GuessedColumnsOut(**parsed.roles),
    )


@router.post(
    "/regrade",
    response={200: BatchOut, **_response_docs(*COMMON_ERRORS)},
    summary="Grade the answered rows again (no new answers); optionally switch the judge",
)
def regrade(request: HttpRequest, payload: RegradeIn):
    batch = _batch_for(request, payload.batch_id)
    regrade_batch(batch=batch, judge_enabled=payload.judge_enabled)
    batch.refresh_from_db()
    return BatchOut.of(batch, grades=_grades_out(grade_summary(batch)))


@router.post(
    "/run-again",
    response={201: BatchOut, **_response_docs(*COMMON_ERRORS, 422)},
    summary="A new batch from the same rows with other settings (remembers runFrom)",
)
def run_again(request: HttpRequest, payload: RunAgainIn):
    source = _batch_for(request, payload.batch_id)
    changed_provider = payload.ai_provider is not None and payload.ai_provider != source.ai_provider
    fields = CreateFields(
        ai_provider=payload.ai_provider or source.ai_provider,
        search_provider=payload.search_provider or source.search_provider,
    )
    ai_provider, search_provider = _check_providers(fields)
    model = (
        payload.model if payload.model is not None else ("" if changed_provider else source.model)
    )
    try:
        batch = services.run_again(
            batch=source,
            uploader=request.auth,
            name=payload.name,
            ai_provider=ai_provider,
            model=model,
            search_provider=search_provider,
            page_language=payload.page_language or source.page_language,
            apply_overrides=source.apply_overrides
            if payload.apply_overrides is None
            else payload.apply_overrides,
            judge_enabled=payload.judge_enabled,
        )
    except ProviderNotConfigured as exc:
        exc.api_field = "model"
        raise
    return Status(201, BatchOut.of(batch))


COMPARE_RESPONSES = {
    "200": {
        "description": "The comparison: JSON `{summary, rows}` or a CSV / XLSX download",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            XLSX_CONTENT_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.get(
    "/compare",
    response={**_response_docs(*COMMON_ERRORS)},
    openapi_extra={"responses": COMPARE_RESPONSES},
    summary="Compare two batches row by row (same/changed/improved/regressed/only_in_a/b)",
)
def compare(request: HttpRequest, query: Query[CompareQuery]):
    """JSON: `summary` (rows per change class) and `rows`, each with `row`, `change`, the
    question, the expected answer and citation, the similarity of the two answers, and both
    sides `a` and `b` (null when the row is missing there). CSV and XLSX: one line per row."""
    comparison = compare_batches(
        a=_batch_for(request, query.batch_id), b=_batch_for(request, query.other_batch_id)
    )
    if query.format == "json":
        return JsonResponse(comparison_json(comparison))
    return compare_response(comparison, query.format)


@api.get(
    "/providers",
    response={200: ProvidersOut, **_response_docs(401)},
    by_alias=True,
    tags=["providers"],
    summary="The AI and search providers enabled on this server",
)
def providers(request: HttpRequest):
    return ProvidersOut(
        ai_providers=[
            {"key": key, "label": label, "models": models}
            for key, label, models in provider_choices()
        ],
        search_providers=[{"key": key, "label": label} for key, label in search_choices()],
        default_ai_provider=settings.DEFAULT_AI_PROVIDER,
        default_search_provider=settings.DEFAULT_SEARCH_PROVIDER,
    )


api.add_router("/batch/", router)


# --- Outside ninja: unknown paths, wrong methods, and Django-level error handlers ----------


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """The catch-all of /api/: an unknown path is a JSON 404, never Django's HTML page."""
    return error_response(
        404, f"No API endpoint at {request.path}. The API is described at /api/schema."
    )


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def server_error_handler(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """handler500: JSON under /api/ (an exception outside ninja, e.g. in a middleware)."""
    if is_api_request(request):
        return _server_error_response()
    return defaults.server_error(request, *args, **kwargs)


def bad_request_handler(request: HttpRequest, exception: Exception, *args, **kwargs):
    """handler400 (e.g. a disallowed Host, a malformed multipart body): JSON under /api/."""
    if is_api_request(request):
        return error_response(400, "The request could not be read.")
    return defaults.bad_request(request, exception, *args, **kwargs)
