"""Typed shapes of the batch API (django-ninja / pydantic). Field names are camelCase on the
wire (aliases); Python code uses snake_case."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from batchchat.api_base import CamelSchema
from batches.costs import MAX_BUDGET
from batches.models import Batch
from batches.selectors import guard_counts
from chats.models import Language

BatchStatus = Literal[
    "uploaded", "queued", "processing", "paused", "completed", "cancelled", "failed"
]
ExportFormat = Literal["csv", "json", "xlsx"]
PageLanguage = Literal[tuple(Language.values)]  # the Language choices: Literal["en", "fr"]
MAX_PAGE_SIZE = 100


def _no_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL; Django's form fields refuse it the same way.
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# --- Answers ------------------------------------------------------------------------------


class OutageOut(CamelSchema):
    reason: Literal["connection", "timeout", "server-error"] | str = Field(
        description="Why the provider is held to be down: connection refused or dropped, "
        "timeouts, 5xx server errors"
    )
    since: datetime | None = Field(description="When the circuit breaker opened")
    last_success: datetime | None = Field(
        description="The provider's last answer seen by the worker, if any"
    )
    rows_waiting: int = Field(description="Rows left, waiting for the provider to answer")

    @classmethod
    def of(cls, batch: Batch) -> OutageOut | None:
        outage = batch.outage
        if outage is None:
            return None
        return cls(**outage, rows_waiting=batch.remaining)


class ThrottleOut(CamelSchema):
    resumes_in_seconds: int | None = Field(
        description="Seconds until the provider's rate limit lets calls go again, if waiting"
    )
    calls_in_flight: int
    call_limit: int | None = Field(
        description="Calls in flight allowed after 429s (adaptive), if below the concurrency"
    )
    concurrency: int

    @classmethod
    def of(cls, batch: Batch) -> ThrottleOut | None:
        throttle = batch.throttle or {}
        if not (throttle.get("until") or throttle.get("limit")) or not batch.is_active:
            return None  # nothing of the quota holds it back (an outage is `outage`)
        return cls(
            resumes_in_seconds=batch.throttle_wait_seconds,
            calls_in_flight=int(throttle.get("in_flight") or 0),
            call_limit=throttle.get("limit"),
            concurrency=int(throttle.get("concurrency") or 0),
        )


class GradesOut(CamelSchema):
    """A batch's grade summary: each rate (0-1, null when no row has that grade) with the
    number of rows it is computed over."""

    pass_rate: float | None = Field(description="Pass verdicts over graded (pass + fail) rows")
    verdict_graded: int
    verdict_passed: int
    verdict_ungraded: int
    expert_reviewed: int = Field(
        default=0,
        description="Rows whose verdict is an expert's review (correct: pass; partly correct "
        "or incorrect: fail), counted in verdictGraded and verdictPassed",
    )
    outcome_accuracy: float | None = Field(
        description="Rows whose expected outcome was met, over rows with one"
    )
    outcome_checked: int
    citation_match_rate: float | None
    citation_checked: int
    mean_similarity: float | None
    similarity_count: int
    answer_found_rate: float | None
    found_checked: int
    judge_pass_rate: float | None
    judged: int
    judge_passed: int
    judge_failed: int
    judge_no_verdict: int = Field(description="Rows the judge gave no verdict on (errors)")
    guard_precision: float | None = Field(
        description="Rows expected blocked among the blocked ones (expected blocking column)"
    )
    guard_blocked: int
    guard_recall: float | None = Field(description="Rows blocked among those expected blocked")
    guard_expected_blocks: int
    repeats: int = Field(default=1, description="Answers per question (k)")
    questions: int = Field(default=0, description="With repeats: the batch's questions")
    questions_graded: int = Field(default=0, description="With repeats: questions with a grade")
    pass_at_k_rate: float | None = Field(
        default=None, description="With repeats: questions with at least one pass, over graded"
    )
    pass_at_k_count: int = 0
    pass_all_k_rate: float | None = Field(
        default=None, description="With repeats: questions whose k answers all passed"
    )
    pass_all_k_count: int = 0


class ProjectedCallsOut(CamelSchema):
    """The provider calls a batch will make (batches.estimate.projected_calls)."""

    questions: int
    repeats: int
    rows: int = Field(description="questions × repeats")
    blocked_rows: int = Field(description="Rows the guard will block at upload: no call")
    answer_calls: int
    judge_calls: int = Field(description="With the AI judge: rows with an expected answer")
    guard_calls: int = Field(description="With GUARD_AI_CHECK: one check per row sent")
    total: int

    @classmethod
    def of(cls, projected) -> ProjectedCallsOut:
        return cls(
            questions=projected.questions,
            repeats=projected.repeats,
            rows=projected.rows,
            blocked_rows=projected.blocked_rows,
            answer_calls=projected.answer_calls,
            judge_calls=projected.judge_calls,
            guard_calls=projected.guard_calls,
            total=projected.total,
        )


class ProviderBatchOut(CamelSchema):
    """One submission to the provider's batch API (economy mode)."""

    provider: str
    kind: Literal["answer", "judge"] = Field(
        default="answer", description="answer: the rows' answer calls; judge: the AI judge's"
    )
    provider_batch_id: str = Field(description="The provider's id; '' until it has it")
    status: Literal["preparing", "submitting", "submitted", "ended"]
    provider_status: str = Field(description="The provider's own word (in_progress, ...)")
    request_count: int
    succeeded_count: int
    failed_count: int
    submitted_at: datetime | None
    expected_by: datetime | None = Field(description="submittedAt + 24 h")
    ended_at: datetime | None
    error: str

    @classmethod
    def of(cls, pb) -> ProviderBatchOut:
        return cls(
            provider=pb.provider,
            kind=pb.kind,
            provider_batch_id=pb.provider_batch_id,
            status=pb.status,
            provider_status=pb.provider_status,
            request_count=pb.request_count,
            succeeded_count=pb.succeeded_count,
            failed_count=pb.failed_count,
            submitted_at=pb.submitted_at,
            expected_by=pb.expected_by,
            ended_at=pb.ended_at,
            error=pb.error,
        )


class BatchOut(CamelSchema):
    batch_id: int
    name: str
    status: BatchStatus
    ai_provider: str
    model: str
    search_provider: str
    page_language: str
    apply_overrides: bool
    source_filename: str
    total_items: int
    processed_items: int
    failed_items: int
    last_processed_index: int
    blocked_items: int = Field(
        description="Rows answered with the guard's fixed message (personal information or "
        "abuse found); counted in processedItems too"
    )
    redacted_items: int = Field(
        description="Rows answered after the guard replaced personal information or abuse "
        "with placeholders; counted in processedItems too"
    )
    progress_percent: int = Field(description="(processed + failed) / total, 0-100")
    error: str = Field(description="A batch-level fault (e.g. provider not configured), or ''")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    judge_enabled: bool = False
    repeats: int = Field(default=1, description="Answers per question (k): k rows per question")
    question_set_id: int | None = Field(
        default=None,
        description="The question set this batch is a run of (create, run-again, sets/run)",
    )
    projected_calls: ProjectedCallsOut | None = Field(
        default=None,
        description="Provider calls the batch will make once started (create, status, "
        "before it starts)",
    )
    mode: Literal["realtime", "economy"] = "realtime"
    economy_retry: Literal["batch", "realtime"] = Field(
        default="batch",
        description="Economy mode: where an expired or errored request is retried once",
    )
    provider_batches: list[ProviderBatchOut] | None = Field(
        default=None,
        description="Economy mode, in `status`: the provider batches with their status and counts",
    )
    budget: float | None = Field(
        default=None, description="The most this batch may spend (AI_PRICE_CURRENCY), or null"
    )
    spent: float = Field(default=0.0, description="What the rows' answers cost so far")
    status_reason: str = Field(
        default="", description="Why a paused batch is paused ('budget reached'), or ''"
    )
    run_from: int | None = Field(default=None, description="The batch this one was run again from")
    grades: GradesOut | None = Field(
        default=None, description="Grade summary (status, list, regrade answers)"
    )
    review: dict | None = Field(
        default=None,
        description="Expert reviews (status only): answered and reviewed rows, each review "
        "verdict's count and percent, and the agreement of the automatic verdict and of the "
        "AI judge with the reviewers (compared, agreed, percent, kappa, confusion counts)",
    )
    throttle: ThrottleOut | None = Field(
        description="Set while the provider's rate limit holds the batch back"
    )
    outage: OutageOut | None = Field(
        default=None,
        description="Set while the provider does not answer (connection refused, timeouts, "
        "5xx): rows wait as pending and the worker probes it every few seconds",
    )
    activity: Literal["processing", "waiting_for_worker"] | None = Field(
        default=None,
        description="For an active batch: 'processing' when a worker (or a client holding "
        "its rows) works on it, 'waiting_for_worker' when nothing moves it; null otherwise",
    )

    @classmethod
    def fields_of(cls, batch: Batch) -> dict[str, Any]:
        # A list sets `guard_counts` on its batches (one query for the page); else one query.
        guard = getattr(batch, "guard_counts", None) or guard_counts(batch)
        return {
            "batch_id": batch.pk,
            "name": batch.name,
            "status": batch.status,
            "activity": batch.activity or None,
            "ai_provider": batch.ai_provider,
            "model": batch.model,
            "search_provider": batch.search_provider,
            "page_language": batch.page_language,
            "apply_overrides": batch.apply_overrides,
            "source_filename": batch.source_filename,
            "total_items": batch.total_items,
            "processed_items": batch.processed_items,
            "failed_items": batch.failed_items,
            "last_processed_index": batch.last_processed_index,
            "blocked_items": guard["blocked"],
            "redacted_items": guard["redacted"],
            "progress_percent": batch.progress_percent,
            "error": batch.error,
            "created_at": batch.created_at,
            "started_at": batch.started_at,
            "finished_at": batch.finished_at,
            "throttle": ThrottleOut.of(batch),
            "outage": OutageOut.of(batch),
            "judge_enabled": batch.judge_enabled,
            "repeats": batch.repeats,
            "mode": batch.mode,
            "economy_retry": batch.economy_retry,
            "budget": None if batch.budget is None else float(batch.budget),
            "spent": round(batch.spent, 6),
            "status_reason": batch.status_reason,
            "run_from": batch.run_from_id,
        }

    @classmethod
    def of(cls, batch: Batch, **extra: Any) -> BatchOut:
        return cls(**cls.fields_of(batch), **extra)


class CreatedOut(BatchOut):
    estimate: dict[str, Any] | None = Field(
        default=None, description="The estimate before start, as GET /api/batch/estimate"
    )


class EstimateOut(CamelSchema):
    batch_id: int
    estimate: dict[str, Any] = Field(
        description="calls (answer, judge, guard, total), tokens (input, output, per row, "
        "basis: sample or measured, counted_by), cost (known, currency, spent, realtime, "
        "economy, price with date and source), duration (seconds, limited_by, concurrency, "
        "rpm, tpm); see docs/running-batches.md"
    )


class ProcessOut(BatchOut):
    remaining: int = Field(description="Rows of the batch not finished yet")
    slice_done: int = Field(description="Rows answered during this call")
    slice_failed: int = Field(description="Rows that failed during this call")


class StartOut(BatchOut):
    runner: Literal["inline", "worker", "celery"]
    message: str


class BatchListOut(CamelSchema):
    batches: list[BatchOut]
    page: int
    page_size: int
    total: int
    pages: int


class DeletedOut(CamelSchema):
    batch_id: int
    deleted: bool


# --- Requests -----------------------------------------------------------------------------


class BatchIdIn(CamelSchema):
    batch_id: int = Field(ge=1, le=2**63 - 1)


class BudgetIn(BatchIdIn):
    budget: float | None = Field(
        ge=0,
        le=MAX_BUDGET,
        description="The most the batch may spend; null: no limit. Raising it resumes "
        "a batch paused with 'budget reached'",
    )


class ProcessIn(BatchIdIn):
    seconds: float | None = Field(
        default=None,
        gt=0,
        description="How long to work; default BATCH_SLICE_SECONDS; longer values are clamped",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Provider calls in flight at once; default BATCH_CONCURRENCY",
    )


class BatchIdQuery(CamelSchema):
    batch_id: int = Field(ge=1, le=2**63 - 1)


class ResultsQuery(BatchIdQuery):
    format: ExportFormat = "csv"


class ListQuery(CamelSchema):
    status: BatchStatus | None = None
    page: int = Field(default=1, ge=1, le=1_000_000)
    page_size: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)

    @field_validator("status", mode="before")
    @classmethod
    def _blank_is_any(cls, value: Any) -> Any:
        # `?status=` (an empty filter from a form) means every status.
        return None if value == "" else value


class ColumnsIn(CamelSchema):
    """Which column plays which role: a header name, "" for none; a role left out is found
    by its aliases (see the upload rules)."""

    _text = field_validator("*")(_no_nul)

    question: str | None = Field(default=None, max_length=500)
    url: str | None = Field(default=None, max_length=500)
    chat_id: str | None = Field(default=None, max_length=500)
    expected_answer: str | None = Field(default=None, max_length=500)
    expected_citation: str | None = Field(default=None, max_length=500)
    expected_outcome: str | None = Field(default=None, max_length=500)
    expected_block: str | None = Field(default=None, max_length=500)


class CreateFields(CamelSchema):
    """The form's fields; `file` (multipart), `rows` (JSON) or `uploadId` (a file sent to
    preview before) comes beside them."""

    name: str = Field(
        default="", max_length=200, description="Default: the file name without its extension"
    )
    ai_provider: str | None = Field(default=None, max_length=32, description="Default: settings")
    model: str = Field(default="", max_length=128, description="Default: the provider's first")
    search_provider: str | None = Field(default=None, max_length=32)
    page_language: PageLanguage = "en"
    apply_overrides: bool = False
    judge_enabled: bool = Field(default=False, description="Grade answers with an AI judge too")
    repeats: int = Field(
        default=1, description="Answers per question, 1-10 (k rows and chats per question)"
    )
    mode: Literal["realtime", "economy"] = Field(
        default="realtime",
        description="economy: the answer calls go to the provider's batch API (OpenAI, Azure "
        "OpenAI, Anthropic) at the batch price, results within 24 h",
    )
    economy_retry: str = Field(
        default="batch",
        max_length=16,
        json_schema_extra={"enum": ["batch", "realtime"]},
        description="Economy mode: a request that comes back expired or errored is retried "
        "once, in a new provider batch (batch) or in real time at the real-time price "
        "(realtime); then the row fails with the provider's reason",
    )
    budget: float | None = Field(
        default=None,
        ge=0,
        le=MAX_BUDGET,
        description="The most the batch may spend; default: no limit",
    )
    upload_id: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="A file sent to /preview, instead of file"
    )
    columns: ColumnsIn | None = Field(
        default=None,
        description="The column chooser: role -> header (multipart: the object as JSON text)",
    )

    @field_validator("columns", mode="before")
    @classmethod
    def _columns_from_text(cls, value: Any) -> Any:
        # A multipart form carries the object as JSON text.
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("columns must be a JSON object") from None
        return value


class CreateJsonIn(CreateFields):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Passport questions",
                    "aiProvider": "extractive",
                    "searchProvider": "none",
                    "pageLanguage": "en",
                    "rows": [
                        {"question": "How do I renew my passport?", "url": "https://example.ca"},
                        {"question": "How long does it take?", "team": "B"},
                    ],
                }
            ]
        }
    )

    rows: list[dict[str, Any]] | None = Field(
        default=None,
        description="Objects with at least `question` (or an alias); optional `url`, `chatid`, "
        "any other columns (kept for the export); or give `uploadId`",
    )


class CreateMultipartIn(CreateFields):
    file: bytes | None = Field(
        default=None,
        json_schema_extra={"format": "binary"},
        description="A CSV or XLSX file of questions (or give `uploadId`)",
    )


class PreviewIn(CamelSchema):
    file: bytes = Field(
        json_schema_extra={"format": "binary"}, description="A CSV or XLSX file of questions"
    )


class GuessedColumnsOut(CamelSchema):
    question: str | None
    url: str | None
    chat_id: str | None
    expected_answer: str | None
    expected_citation: str | None
    expected_outcome: str | None
    expected_block: str | None


class PreviewOut(CamelSchema):
    upload_id: int = Field(description="Give it to create (with `columns`) within a day")
    filename: str
    columns: list[str] = Field(description="The file's headers, in order")
    rows: list[list[str]] = Field(description="The first rows' cells, one per header")
    guessed: GuessedColumnsOut = Field(description="The column found for each role, or null")


class RegradeIn(CamelSchema):
    batch_id: int = Field(ge=1, le=2**63 - 1)
    judge_enabled: bool | None = Field(
        default=None, description="Switch the AI judge on or off first; default: as it is"
    )


class RunAgainIn(CamelSchema):
    """A new batch from the same rows; every setting left out is the source batch's."""

    _text = field_validator("name", "ai_provider", "model", "search_provider")(_no_nul)

    batch_id: int = Field(ge=1, le=2**63 - 1)
    name: str = Field(default="", max_length=200)
    ai_provider: str | None = Field(default=None, max_length=32)
    model: str | None = Field(default=None, max_length=128)
    search_provider: str | None = Field(default=None, max_length=32)
    page_language: PageLanguage | None = None
    apply_overrides: bool | None = None
    judge_enabled: bool | None = None
    repeats: int | None = Field(default=None, description="Answers per question, 1-10")


class SetRunIn(CamelSchema):
    """A new run of a question set: the batch settings (a setting left out is the
    server's default, as in create), `repeats` and whether to start at once."""

    _text = field_validator("name", "ai_provider", "model", "search_provider")(_no_nul)

    name: str = Field(default="", max_length=200, description="Default: the set's name")
    ai_provider: str | None = Field(default=None, max_length=32)
    model: str = Field(default="", max_length=128)
    search_provider: str | None = Field(default=None, max_length=32)
    page_language: PageLanguage = "en"
    apply_overrides: bool = False
    judge_enabled: bool = False
    repeats: int = Field(default=1, description="Answers per question, 1-10")
    start: bool = Field(default=False, description="Queue the batch at once")


class CompareQuery(BatchIdQuery):
    other_batch_id: int = Field(ge=1, le=2**63 - 1)
    format: ExportFormat = "json"
