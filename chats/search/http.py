"""One HTTP call to a search API, with errors mapped to chats.errors types.

Search providers make a single attempt: a TransientProviderError (429, 5xx, timeout,
connection error) carries the server's Retry-After, and the caller that retries rows (the
batch engine) decides when to come back. Messages name the setting to fix and never
contain a key: server text is scrubbed of every secret before it is quoted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

from chats import aio
from chats.errors import ProviderError, TransientProviderError
from chats.http import CLIENT_SHARDS, parse_retry_after, ssl_context
from chats.models import Language

MAX_QUOTED = 200
# Google reports per-minute quota errors as 403 with one of these reasons: they pass.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
# ... and an invalid key as 400 with one of these.
BAD_KEY_REASONS = frozenset({"keyInvalid", "API_KEY_INVALID"})


def client() -> httpx.AsyncClient:
    """Pooled clients on the provider loop (see chats.aio), taken in turn so that no pool
    grows large; call on that loop."""
    return aio.round_robin(
        "search-http",
        lambda: httpx.AsyncClient(
            follow_redirects=True,
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=64, keepalive_expiry=30
            ),
            verify=ssl_context(),
            headers={"User-Agent": "BatchChat search"},
        ),
        CLIENT_SHARDS,
    )


@dataclass(frozen=True)
class SearchCall:
    label: str  # "Google", named in messages
    url_setting: str  # named when the service cannot be reached
    key_setting: str = ""  # named when the key is rejected; empty for keyless services
    secrets: Sequence[str] = ()  # scrubbed from any text we quote
    forbidden_hint: str = ""  # what to do about a 401/403 when there is no key


def scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _server_detail(response: httpx.Response, call: SearchCall) -> tuple[str, set[str]]:
    """(a short quotable message, error reasons) from a JSON error body, if any."""
    try:
        body = response.json()
    except ValueError:
        return "", set()
    error = body.get("error") if isinstance(body, dict) else None
    message, reasons = "", set()
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        for item in [*(error.get("errors") or []), *(error.get("details") or [])]:
            if isinstance(item, dict) and item.get("reason"):
                reasons.add(str(item["reason"]))
    elif isinstance(error, str):
        message = error
    elif isinstance(body, dict) and body.get("message"):
        message = str(body["message"])
    message = " ".join(scrub(message, call.secrets).split())
    if len(message) > MAX_QUOTED:
        message = message[:MAX_QUOTED] + "…"
    return message, reasons


async def request_json(
    call: SearchCall,
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """The decoded JSON answer, or a chats.errors exception (see the module docstring)."""
    timeout = float(settings.PROVIDER_TIMEOUT)
    try:
        response = await client().request(
            method, url, params=params, json=json, headers=headers, timeout=timeout
        )
    except httpx.TimeoutException:
        raise TransientProviderError(
            f"The {call.label} search did not answer within {timeout:g} seconds."
        ) from None
    except httpx.UnsupportedProtocol:
        raise ProviderError(
            f"The {call.label} search address is not an http(s) URL: check {call.url_setting}."
        ) from None
    except httpx.TransportError as exc:
        # The exception text may hold the request URL (and a key in its query): only its
        # type is quoted.
        raise TransientProviderError(
            f"Could not connect to the {call.label} search ({type(exc).__name__}): "
            f"check {call.url_setting} and that the service is up."
        ) from None

    status = response.status_code
    if status >= 400:
        detail, reasons = _server_detail(response, call)
        retry_after = parse_retry_after(response.headers)
        suffix = f": {detail}" if detail else ""
        if status == 429 or status >= 500 or reasons & RATE_LIMIT_REASONS:
            raise TransientProviderError(
                f"The {call.label} search is unavailable or rate limited ({status}); "
                "it will be retried.",
                retry_after=retry_after,
            )
        if call.key_setting and (status in (401, 403) or reasons & BAD_KEY_REASONS):
            said = f" The service said: {detail}" if detail else ""
            raise ProviderError(
                f"The {call.label} search API key was rejected ({status}): "
                f"check {call.key_setting}.{said}"
            )
        if status in (401, 403) and call.forbidden_hint:
            raise ProviderError(
                f"The {call.label} search refused the request ({status}): {call.forbidden_hint}"
            )
        raise ProviderError(f"The {call.label} search failed ({status}){suffix}.")
    try:
        return response.json()
    except ValueError:
        raise ProviderError(
            f"The {call.label} search did not answer with JSON: check {call.url_setting}."
        ) from None


def clean(value: Any) -> str:
    """Text of a result field, on one line (APIs put HTML line breaks in snippets)."""
    return " ".join(str(value or "").split())


def search_language(language: str) -> str:
    return language if language in Language.values else Language.EN.value
