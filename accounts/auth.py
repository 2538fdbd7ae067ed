"""API authentication: a personal token (Bearer) for scripts, or the browser's session + CSRF.

Used by the django-ninja API as `auth=[TokenAuth(), SessionCsrfAuth()]`: ninja tries each in
turn and answers 401 when none returns a user. Both are listed in the OpenAPI description.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from accounts.services import user_for_token
from accounts.throttle import check_token_throttle, record_bad_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class CsrfFailed(HttpError):
    def __init__(self) -> None:
        super().__init__(
            403,
            "CSRF check failed: send the X-CSRFToken header with the value of the csrftoken "
            "cookie, or authenticate with an API token (Authorization: Bearer <token>).",
        )


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`; no CSRF check, since a browser never sends it alone."""

    def __call__(self, request: HttpRequest):
        # Replaces HttpBearer.__call__, which logs an unexpected header verbatim in DEBUG:
        # that header may well be a credential.
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str):
        raw = token.strip()
        check_token_throttle(request, raw)  # raises TooManyBadTokens (429)
        user = user_for_token(raw=raw)
        if user is None:
            record_bad_token(request, raw)
        return user


class SessionCsrfAuth(APIKeyCookie):
    """The logged-in browser session; unsafe methods must pass Django's CSRF check."""

    param_name = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        # Unlike APIKeyCookie, no CSRF check here: it runs in authenticate(), only once the
        # session is known to be the credential. `csrf` stays True so that /api/docs sends
        # the CSRF header from the browser.
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None):
        if "authorization" in request.headers:
            # A script that sent a token which did not match gets 401, not a session
            # fallback (and not a confusing CSRF error).
            return None
        user = request.user
        if not user.is_authenticated:
            return None
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise CsrfFailed()
        return user
