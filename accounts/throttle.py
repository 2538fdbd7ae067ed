"""Brute-force throttle for API tokens (logins are throttled by django-axes).

A caller that sends `API_TOKEN_FAILURE_LIMIT` invalid tokens from one address, or with
one token prefix (the first 12 characters, which tell tokens apart), within
`API_TOKEN_LOCKOUT_MINUTES`, is refused with 429 for every token request from that
address or with that prefix until that period, counted from its first failure, is over:
a valid token does not help then either, so a guess that hits is not rewarded.

Counts live in Django's cache: the default local-memory cache is per process (each server
process counts on its own); configure a shared cache (Redis) to count across processes.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from batchchat.client_address import client_address

PREFIX_CHARS = 12


class TooManyBadTokens(Exception):
    """Raised by TokenAuth; the API answers 429 with Retry-After."""

    def __init__(self) -> None:
        minutes = settings.API_TOKEN_LOCKOUT_MINUTES
        super().__init__(
            f"Too many invalid API tokens from this address: token requests are refused for "
            f"up to {minutes} minutes. Check the token (create a new one on "
            "/settings/tokens/ if it was revoked) and try again later."
        )
        self.retry_after = minutes * 60


def _keys(request: HttpRequest, raw: str) -> list[str]:
    address = client_address(request) or "unknown"
    prefix = hashlib.sha256(raw[:PREFIX_CHARS].encode("utf-8", "replace")).hexdigest()[:32]
    return [f"bad-token:address:{address}", f"bad-token:prefix:{prefix}"]


def check_token_throttle(request: HttpRequest, raw: str) -> None:
    """Raise TooManyBadTokens when this address or this token prefix is locked out."""
    counts = cache.get_many(_keys(request, raw))
    if any(count >= settings.API_TOKEN_FAILURE_LIMIT for count in counts.values()):
        raise TooManyBadTokens()


def record_bad_token(request: HttpRequest, raw: str) -> None:
    window = settings.API_TOKEN_LOCKOUT_MINUTES * 60
    for key in _keys(request, raw):
        # add() starts the window at the first failure; incr() keeps its expiry.
        cache.add(key, 0, timeout=window)
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.set(key, 1, timeout=window)
