"""URLs under /api/: the ninja API, then a catch-all so that no /api/ path gets HTML."""

from __future__ import annotations

from functools import wraps

from django.http import Http404, HttpResponseNotAllowed
from django.urls import URLPattern, re_path
from django.views.decorators.csrf import csrf_exempt

from batchchat.api import api, not_found
from batchchat.api_base import error_response


def _json_errors(view):
    """ninja answers a wrong method with a bare 405, and its root view raises Http404:
    turn both into the API's JSON errors."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            response = view(request, *args, **kwargs)
        except Http404:
            return not_found(request)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            json_response = error_response(
                405, f"{request.method} is not allowed here; use {allowed}."
            )
            json_response["Allow"] = allowed
            return json_response
        return response

    wrapper.csrf_exempt = True  # ninja's own views are; CSRF is checked by its auth
    return wrapper


# ninja's reverse() of its own root is "api:api-root" (urls_namespace="api").
app_name = "api"
ninja_patterns, _ninja_app_name, _ninja_namespace = api.urls
for pattern in ninja_patterns:
    if isinstance(pattern, URLPattern):
        pattern.callback = _json_errors(pattern.callback)

urlpatterns = [
    *ninja_patterns,
    # Exempt from CSRF: it changes nothing, and a POST to an unknown path must get its JSON
    # 404 rather than Django's HTML CSRF page (a token client sends no CSRF cookie).
    re_path(r"^.*$", csrf_exempt(not_found), name="api-not-found"),
]
