"""The batches app's models, by concern: batches and their rows (batch), worker heartbeats
and upload drafts (runtime), economy mode's provider batches (economy)."""

from batches.models.batch import (
    EXPECTED_OUTCOMES,
    NOT_BLOCKED,
    Batch,
    BatchItem,
    JudgeVerdict,
    Verdict,
    VerdictReason,
    row_columns,
)
from batches.models.economy import ProviderBatch, ProviderRequest
from batches.models.runtime import DRAFT_MAX_AGE, UploadDraft, UploadDraftQuerySet, WorkerHeartbeat

__all__ = [
    "DRAFT_MAX_AGE",
    "EXPECTED_OUTCOMES",
    "NOT_BLOCKED",
    "Batch",
    "BatchItem",
    "JudgeVerdict",
    "ProviderBatch",
    "ProviderRequest",
    "UploadDraft",
    "UploadDraftQuerySet",
    "Verdict",
    "VerdictReason",
    "WorkerHeartbeat",
    "row_columns",
]
