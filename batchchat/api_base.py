"""What every app's API router builds on: camelCase schemas and the JSON error format
`{"error": {"code", "message", "fields"?}}` (ErrorOut to document it, error_response to
answer with it, ApiError to raise it from a view).

Apart from batchchat.api, which imports the apps' routers to mount them: a router imports
this module, never the API it is mounted on.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse
from ninja import Schema
from pydantic import ConfigDict
from pydantic.alias_generators import to_camel

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


class CamelSchema(Schema):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ErrorDetail(Schema):
    code: str
    message: str
    fields: dict[str, list[str]] | None = None


class ErrorOut(Schema):
    error: ErrorDetail


def error_docs(*statuses: int) -> dict[int, Any]:
    """An operation's documented error answers: `response={200: ..., **error_docs(404)}`."""
    return {status: ErrorOut for status in statuses}


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


def multipart_file(request, *, what: str):
    """The multipart field `file` of `request`: 415 when the request is not
    multipart/form-data, 400 naming the field when it holds no file (`what`: the kind of
    file asked for, e.g. "a CSV or XLSX file")."""
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "Send the file as multipart/form-data (field `file`).")
    upload = request.FILES.get("file")
    if upload is None:
        raise ApiError(
            400,
            f"Choose {what} (multipart field `file`).",
            code="invalid_fields",
            fields={"file": [f"Choose {what}."]},
        )
    return upload
