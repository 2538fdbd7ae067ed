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
