"""Request-level guards that must run before anything reads the body."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.utils.html import escape
from django.utils.translation import gettext as _

# A multipart upload carries the form's other fields and the part headers beside the file.
FORM_OVERHEAD_BYTES = 1024 * 1024


def request_body_limit() -> int:
    return settings.MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES


class RequestSizeLimitMiddleware:
    """Refuse a body larger than the upload limit from its Content-Length, before anyone
    (the CSRF check, the multipart parser) reads it.

    Django reads a body only up to its Content-Length (a request without one has an empty
    body), so refusing on the announced length also stops every read past the limit: no
    temporary file fills the disk with a 1 GB upload. Applies to every path, since any
    POST reaches the CSRF check, which parses a multipart body. Answers 413: JSON under
    /api/, a short page (or, for htmx, a message fragment) elsewhere.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads nothing of a body whose length it cannot parse
        limit = request_body_limit()
        if length > limit:
            return too_large_response(request, length)
        return self.get_response(request)


class RefuseNulMiddleware:
    """Answer 400 to a request whose path or query string holds a NUL character.

    No value of this application may contain one, and PostgreSQL refuses it in any text
    parameter (a search `?q=%00` or a chat id `ab%00` would be a 500 there): refused here
    once, for every view, rather than in each form and path converter.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values)
            for key, values in request.GET.lists()
        ):
            return nul_response(request)
        return self.get_response(request)


def nul_response(request: HttpRequest) -> HttpResponse:
    from batchchat.api import is_api_request
    from batchchat.api_base import error_response

    if is_api_request(request):
        return error_response(400, "The address holds a NUL character, which no value may contain.")
    message = _("The address holds a NUL character, which no value may contain.")
    return HttpResponseBadRequest(escape(message), content_type="text/plain; charset=utf-8")


def too_large_response(request: HttpRequest, length: int) -> HttpResponse:
    from batchchat.api import is_api_request
    from batchchat.api_base import error_response
    from batches.uploads import format_size

    allowed = format_size(settings.MAX_UPLOAD_BYTES)
    if is_api_request(request):
        return error_response(
            413,
            f"The request is {format_size(length)}; uploads are limited to {allowed}. Split the "
            "questions into several batches.",
            code="too_large",
        )
    message = _(
        "The upload is %(size)s; files are limited to %(limit)s. Split the questions into "
        "several files."
    ) % {"size": format_size(length), "limit": allowed}
    if request.headers.get("HX-Request") == "true":
        # static/js/app.js swaps this into the page's message region.
        body = f'<p class="flash flash-error">{escape(message)}</p>'
    else:
        title = _("Upload too large")
        back = _("Back to the batches")
        body = (
            f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"</head><body><main><h1>{escape(title)}</h1><p>{escape(message)}</p>"
            f'<p><a href="/batches/">{escape(back)}</a></p></main></body></html>'
        )
    response = HttpResponse(body, status=413, content_type="text/html; charset=utf-8")
    response["Connection"] = "close"  # the unread body must not be taken for a request
    return response
