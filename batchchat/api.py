"""The HTTP API (`/api/...`, see DESIGN "HTTP API"), built with django-ninja: the NinjaAPI,
its authentication, the JSON error answers of every exception, and the apps' routers
mounted on it (`chats.api`: /providers; `batches.api`: /batch/...; `evaluation.api`:
/batch/regrade, /batch/compare; `evaluation.sets_api`: /sets...).

Every error, including unexpected ones and unknown paths, is JSON:
`{"error": {"code", "message", "fields"?}}` (batchchat.api_base). A new app adds its router
here, and a handler here for an error of its own.
"""

from __future__ import annotations

import json
import logging
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, HttpError, ValidationError

from accounts.auth import SessionCsrfAuth, TokenAuth
from accounts.throttle import TooManyBadTokens
from batchchat.api_base import ApiError, error_response
from batches.api import router as batches_router
from batches.errors import BatchStateError, SliceRefused, UploadError
from chats.api import router as chats_router
from chats.errors import ProviderNotConfigured
from evaluation.api import router as evaluation_router
from evaluation.api import sets_router
from evaluation.review_api import router as review_router
from evaluation.sets_api import router as set_reads_router

logger = logging.getLogger(__name__)

API_PREFIX = "/api/"

# The JSON name of each chat setting that ProviderNotConfigured.field names; an error
# about no one field is shown on the AI provider.
PROVIDER_FIELDS = {
    "ai_provider": "aiProvider",
    "search_provider": "searchProvider",
    "model": "model",
    "mode": "mode",
}


# --- Errors -------------------------------------------------------------------------------


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


class LocalSwagger(Swagger):
    """The Swagger UI page from django-ninja's own template and static files, which
    batchchat.apps.NinjaAssetsConfig installs (ninja picks its CDN page unless the app is
    installed under the name "ninja", which costs every process the import at start)."""

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs) -> HttpResponse:
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        auth = api.auth if isinstance(api.auth, list | tuple) else []
        context = {
            "swagger_settings": json.dumps(self.settings, indent=1),
            "api": api,
            "add_csrf": any(getattr(method, "csrf", False) for method in auth),
        }
        return render(request, self.template, context)


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
    docs=LocalSwagger(),
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


@api.exception_handler(BatchStateError)
def _on_state_error(request: HttpRequest, exc: BatchStateError) -> HttpResponse:
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
    field = PROVIDER_FIELDS.get(exc.field, "aiProvider")
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


# --- Routers ------------------------------------------------------------------------------

api.add_router("/", chats_router)
api.add_router("/batch/", batches_router)
api.add_router("/batch/", evaluation_router)
api.add_router("/sets", set_reads_router)
api.add_router("/sets/", sets_router)
api.add_router("/batch/", review_router)


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
