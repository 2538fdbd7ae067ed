"""Reliability around one provider call: concurrency limit, retries with backoff, typed errors.

Every network provider calls `call_with_retries`. The SDK clients are built with
`max_retries=0`: retrying is decided here, in one place, with one policy:

- at most settings.PROVIDER_MAX_ATTEMPTS attempts;
- retry on 408/409/429/5xx, timeouts and connection errors; never on other 4xx;
- wait `full jitter` exponential backoff: uniform(0, min(MAX, BASE * 2**(attempt-1))),
  and at least the server's Retry-After (`retry-after-ms`, `Retry-After` in seconds or as
  an HTTP date). A Retry-After longer than PROVIDER_BACKOFF_MAX is not slept through: the
  call fails at once with TransientProviderError(retry_after=...) so the caller (a batch
  slice) can come back later instead of holding a worker;
- optionally, a process-wide safety cap of PROVIDER_MAX_CONCURRENCY calls in flight per
  provider (0, the default, means none: the batch's concurrency is what runs), released
  while backing off. When set below a batch's concurrency, run_batch and the batch page say
  so.

Calls run on the process's provider loop (`chats.aio`): `call_with_retries` is a coroutine
and waits with `await sleep(...)`.

Messages are for people, name the setting to fix, and never contain a key: server error
text is only quoted for 400/422 (it explains a bad request) and is scrubbed of the key.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

from django.conf import settings

from chats import aio
from chats.errors import (
    ChatPipelineError,
    ProviderError,
    ProviderUnavailable,
    TransientProviderError,
)
from chats.http import parse_retry_after
from chats.providers import breaker, limits

logger = logging.getLogger(__name__)

T = TypeVar("T")
TokenCallback = Callable[[str], None]

RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
MAX_QUOTED_SERVER_MESSAGE = 300

# Tests replace these to observe waits without slowing down (or set a tiny backoff base);
# `sleep` may be a coroutine function (the default) or a plain one.
sleep: Callable[[float], Awaitable[None] | None] = asyncio.sleep
jitter: Callable[[float, float], float] = random.uniform


class _NoCap:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_CAP = _NoCap()


def safety_cap() -> int:
    """PROVIDER_MAX_CONCURRENCY, or 0 when there is no cap."""
    return max(0, int(settings.PROVIDER_MAX_CONCURRENCY or 0))


def provider_semaphore(key: str) -> asyncio.Semaphore | _NoCap:
    """The process-wide slot pool of one provider when a safety cap is set (keyed with its
    size, so a test that changes PROVIDER_MAX_CONCURRENCY gets a pool of the new size).
    Call on the provider loop."""
    size = safety_cap()
    if not size:
        return _NO_CAP
    return aio.loop_cache(("provider-cap", key, size), lambda: asyncio.Semaphore(size))


@dataclass(frozen=True)
class CallContext:
    """What error messages may mention about the call (never the key itself)."""

    provider_label: str  # "OpenAI"
    key_setting: str  # "OPENAI_API_KEY", named when the key is rejected
    model: str
    model_word: str = "model"  # "deployment" for Azure
    secrets: Sequence[str] = ()  # scrubbed from any server text we quote


class FailedAttempt(Exception):
    """Internal: an SDK error translated into what the retry loop needs to know."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        rate_limited: bool = False,
        outage: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.rate_limited = rate_limited  # a 429: the key's calls in flight shrink
        self.outage = outage  # "connection", "timeout", "server-error": for the breaker


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


def _server_message(exc: Exception, secrets: Sequence[str]) -> str:
    body = getattr(exc, "body", None)
    message = ""
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message", "") if isinstance(error, dict) else str(error)
    message = " ".join(str(message or "").split())[:MAX_QUOTED_SERVER_MESSAGE]
    return redact(message, secrets)


def classify_status(
    status: int, *, headers: Any, context: CallContext, server_message: str = ""
) -> FailedAttempt:
    """An HTTP error status as a FailedAttempt with a message for people."""
    label = context.provider_label
    phrase = f"{status} {_phrase(status)}".strip()
    if status == 401:
        return FailedAttempt(
            f"{label}: the API key was rejected (401 Unauthorized). Check {context.key_setting}.",
            retryable=False,
        )
    if status == 403:
        return FailedAttempt(
            f"{label}: access was denied (403 Forbidden); the key may lack permission for "
            f"{context.model_word} '{context.model}'.",
            retryable=False,
        )
    if status == 404:
        return FailedAttempt(
            f"{label}: {context.model_word} '{context.model}' not found (404). Check the "
            f"{context.model_word} name and the provider's base URL.",
            retryable=False,
        )
    if status in RETRYABLE_STATUS:
        return FailedAttempt(
            f"{label}: the provider answered {phrase}",
            retryable=True,
            retry_after=parse_retry_after(headers),
            rate_limited=status == 429,
            outage="server-error" if status >= 500 else "",
        )
    detail = f": {redact(server_message, context.secrets)}" if server_message else ""
    return FailedAttempt(f"{label}: the request was refused ({phrase}){detail}", retryable=False)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _connection_failed(exc: BaseException) -> bool:
    """Whether an SDK "timeout" is really a refused or dropped connection. The SDKs' aiohttp
    transport maps every aiohttp connection error to a connect timeout; the exceptions it
    was raised from tell a real timeout from a connection that failed."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, TimeoutError):
            return False
        if isinstance(cause, OSError) or type(cause).__module__.startswith("aiohttp"):
            return True
        cause = cause.__cause__
    return False


def classify_sdk_error(exc: Exception, sdk: Any, context: CallContext) -> FailedAttempt | None:
    """Translate an exception of the `openai` or `anthropic` SDK (same class names in
    both); None when it is not an SDK error."""
    label = context.provider_label
    if isinstance(exc, sdk.APITimeoutError) and not _connection_failed(exc):
        timeout = settings.PROVIDER_TIMEOUT
        return FailedAttempt(
            f"{label}: the provider did not answer within {timeout:g} s",
            retryable=True,
            outage="timeout",
        )
    if isinstance(exc, sdk.APIConnectionError):
        return FailedAttempt(
            f"{label}: could not connect to the provider (connection failed or dropped)",
            retryable=True,
            outage="connection",
        )
    if isinstance(exc, sdk.APIStatusError) and exc.status_code < 400:
        # An `error` event inside a 200 stream (Anthropic's overloaded_error, ...).
        return FailedAttempt(
            f"{label}: the provider reported an error during the answer", retryable=True
        )
    if isinstance(exc, sdk.APIStatusError):
        response = getattr(exc, "response", None)
        return classify_status(
            exc.status_code,
            headers=getattr(response, "headers", None),
            context=context,
            server_message=_server_message(exc, context.secrets),
        )
    if isinstance(exc, sdk.APIError):
        # An error event inside a stream (e.g. `overloaded_error` after the headers).
        message = redact(" ".join(str(getattr(exc, "message", "")).split()), context.secrets)
        return FailedAttempt(
            f"{label}: the provider reported an error: {message[:MAX_QUOTED_SERVER_MESSAGE]}",
            retryable=True,
        )
    return None


def backoff_delay(attempt: int) -> float:
    """Full jitter: uniform(0, min(MAX, BASE * 2**(attempt-1)))."""
    ceiling = min(
        settings.PROVIDER_BACKOFF_MAX, settings.PROVIDER_BACKOFF_BASE * 2 ** (attempt - 1)
    )
    return jitter(0.0, max(0.0, ceiling))


async def call_with_retries(
    call: Callable[[TokenCallback | None], Awaitable[T]],
    *,
    provider_key: str,
    context: CallContext,
    sdk: Any,
    on_token: TokenCallback | None = None,
    tokens: int = 0,
) -> T:
    """Await `call(on_token)` under the provider's safety cap (if any) and its key's quota
    and adaptive concurrency (`chats.providers.limits`), retrying transient failures.
    `call` receives a token callback (or None) to pass to the stream; `tokens` is the
    estimated size of the call for a tokens-per-minute budget."""
    attempts = max(1, int(settings.PROVIDER_MAX_ATTEMPTS))
    semaphore = provider_semaphore(provider_key)
    quota = limits.quota_for(provider_key, context.model)
    key = limits.key_for(provider_key, context.model, context.secrets)
    delivered = False
    own_pause = 0.0

    def deliver(token: str) -> None:
        nonlocal delivered
        delivered = True
        on_token(token)

    for attempt in range(1, attempts + 1):
        if not await breaker.admit(provider_key, context.model):
            raise _unavailable(provider_key, context)
        place = limits.slot(key, quota, tokens=tokens, own_pause=own_pause)
        async with semaphore, place:
            try:
                result = await call(deliver if on_token is not None else None)
            except ChatPipelineError:
                raise
            except Exception as exc:
                failure = classify_sdk_error(exc, sdk, context)
                if failure is None:
                    raise
                if failure.rate_limited:
                    own_pause = await place.throttled(failure.retry_after)
                if failure.outage:
                    await breaker.failed(provider_key, context.model, failure.outage)
            else:
                await breaker.succeeded(provider_key, context.model)
                used = [
                    getattr(result, "input_tokens", None),
                    getattr(result, "output_tokens", None),
                ]
                await place.used(sum(used) if None not in used else None)
                return result
        # Retrying a stream after the first token would send the reader the start of the
        # answer twice (on_token cannot take text back) and the stored answer would no
        # longer equal what was streamed. So a stream that breaks after delivering fails
        # here; the row can be retried as a whole.
        if delivered:
            raise TransientProviderError(
                f"{failure.message}; the answer stream broke after it had started, so it "
                "was not retried.",
                retry_after=failure.retry_after,
            )
        if not failure.retryable:
            raise ProviderError(failure.message)
        if failure.outage and await breaker.is_open(provider_key, context.model):
            # The provider is down, not this question: the caller gives the row back.
            raise _unavailable(provider_key, context)
        if attempt == attempts:
            raise TransientProviderError(
                f"{failure.message.replace('answered', 'kept answering', 1)} after "
                f"{attempts} attempt{'s' if attempts > 1 else ''}.",
                retry_after=failure.retry_after,
            )
        if failure.retry_after is not None and failure.retry_after > settings.PROVIDER_BACKOFF_MAX:
            raise TransientProviderError(
                f"{failure.message}; it asked to wait {failure.retry_after:g} s before "
                "trying again.",
                retry_after=failure.retry_after,
            )
        delay = max(backoff_delay(attempt), failure.retry_after or 0.0)
        logger.warning(
            "%s; retrying in %.2f s (attempt %d of %d)",
            failure.message,
            delay,
            attempt + 1,
            attempts,
        )
        await aio.maybe_await(sleep(delay))
    raise AssertionError("unreachable")  # the loop returns or raises


def _unavailable(provider_key: str, context: CallContext) -> ProviderUnavailable:
    shot = breaker.snapshot(provider_key, context.model) or {}
    reason = f" ({breaker.REASONS.get(shot.get('reason', ''), '')})" if shot else ""
    return ProviderUnavailable(
        f"{context.provider_label}: the provider does not answer{reason}; calls are paused "
        f"and it is probed every {breaker.probe_seconds():g} s."
    )
