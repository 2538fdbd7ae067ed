"""Errors of the batch services, shared by the engine, the pages, the commands and the API
(batchchat.api turns each into its JSON answer)."""

from __future__ import annotations


class BatchStateError(Exception):
    """The batch is in a state that does not allow this action (HTTP 409)."""


class UploadError(ValueError):
    """A file that cannot become a batch. The message names the problem for a person."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.row = row
        self.column = column


class JsonBodyError(ValueError):
    """A request body that is not the JSON object the API expects (HTTP 400)."""


class SliceRefused(Exception):
    """A slice that may not start now (batches.admission); `status` is the HTTP answer
    (409 or 429), `retry_after` the seconds to wait."""

    def __init__(self, message: str, *, status: int, code: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retry_after = retry_after


# A row's stored error stays English (written by the engine and the providers, read in
# logs, exports and the API); pages explain the kinds below in the reader's language
# (batch_tags.error_help). Checked in order: the first pattern found names the kind.
_ERROR_KINDS = (
    ("rate_limited", ("(429", "429 Too Many Requests", "rate limit")),
    ("timeout", ("did not answer within", "timed out", "timeout")),
    ("refused", ("could not connect", "connection refused", "connection failed")),
    ("guard", ("guard", "blocked")),
    (
        "provider_error",
        ("the provider answered", "reported an error", "the request was refused", "failed ("),
    ),
)


def error_kind(message: str) -> str:
    """The kind of a stored error message ("" when none of the known ones)."""
    text = (message or "").lower()
    for kind, patterns in _ERROR_KINDS:
        if any(pattern.lower() in text for pattern in patterns):
            return kind
    return ""
