"""Personal API tokens: created once (the secret is returned, never stored), looked up by hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import ApiToken

TOKEN_PREFIX = "bct_"
# How many leading characters identify a token in lists (the marker + 8 random ones).
PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
# last_used_at is informative; writing it on every request would turn each API read into
# a write, so it is refreshed at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenNotFound(LookupError):
    """No token matches the given prefix or id (or it belongs to another user)."""


def hash_token(raw: str) -> str:
    # A plain SHA-256 suffices: the token carries 256 random bits, so there is nothing to
    # brute-force, and a fast hash keeps the per-request lookup cheap.
    return hashlib.sha256(raw.encode()).hexdigest()


def create_api_token(*, user, name: str) -> tuple[ApiToken, str]:
    """Create a token for `user`; return it and the secret, which is never shown again."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=(name or "").strip()[:100] or "API token",
        prefix=raw[:PREFIX_LENGTH],
        token_hash=hash_token(raw),
    )
    return token, raw


def tokens_for(user) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user)


def find_token(*, key: str, user=None) -> ApiToken:
    """The one token whose id or prefix is `key` (limited to `user`'s when given)."""
    key = key.strip().rstrip("…")
    queryset = ApiToken.objects.select_related("user")
    if user is not None:
        queryset = queryset.filter(user=user)
    match = Q(prefix=key)
    if key.isdigit():
        match |= Q(pk=int(key))
    found = list(queryset.filter(match)[:2])
    if not found:
        raise TokenNotFound(f"No API token matches '{key}'.")
    if len(found) > 1:
        raise TokenNotFound(f"Several API tokens match '{key}': use the token's id instead.")
    return found[0]


def revoke_api_token(*, token: ApiToken) -> None:
    """Revoking deletes the row: a revoked token can never authenticate again."""
    token.delete()


def user_for_token(*, raw: str):
    """The active user owning the token `raw`, or None. Refreshes `last_used_at`."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=hash_token(raw), user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
