"""The provider loop and its quotas for runners that drive many calls, the breaker's
outage state, the offline screen at upload, token counting and quotas per model."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from chats import aio
from chats.guard import screen, screen_url
from chats.models import GuardStatus
from chats.providers import (
    breaker,
    limits,
    tokens,
)

T = TypeVar("T")


def provider_loop() -> asyncio.AbstractEventLoop:
    """The process's provider event loop (chats.aio), started on first use: submit
    coroutines to it with `asyncio.run_coroutine_threadsafe`."""
    return aio.loop()


def run_on_provider_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on the provider loop and wait for its result (from any thread
    but the loop's own)."""
    return aio.run(coroutine)


def limits_snapshot(provider: str, model: str) -> dict | None:
    """This process's view of `provider` + `model`'s quota: calls in flight, the adaptive
    limit and until when callers wait (chats.providers.limits.snapshot)."""
    return limits.snapshot(provider, model)


def share_quotas(*, processes: int) -> None:
    """This process is one of `processes` engine processes on this machine: without
    Redis each budgets its quotas divided by `processes` (chats.providers.limits)."""
    limits.share_quotas(processes=processes)


# The kinds of outage failure, as English text (log lines, run_batch).
OUTAGE_REASONS = breaker.REASONS


def outage_snapshot(provider: str, model: str) -> dict | None:
    """When `provider` + `model` does not answer (its circuit breaker is open): since
    when, the kind of failure and the last success (chats.providers.breaker.snapshot)."""
    return breaker.snapshot(provider, model)


async def provider_down(provider: str, model: str) -> bool:
    """Whether `provider` + `model`'s circuit breaker is open (on the provider loop)."""
    return await breaker.is_open(provider, model)


def provider_probe_seconds() -> float:
    return breaker.probe_seconds()


@dataclass(frozen=True)
class UploadScreen:
    """The offline guard's verdict on an uploaded row, before it is answered: `status`
    (a GuardStatus value), the question and referring URL as they will be sent (redacted
    text; a blocked question shows its redacted text, never the original), the kinds found."""

    status: str
    question: str
    referring_url: str
    reasons: tuple[str, ...]


def screen_offline(question: str, referring_url: str = "", *, language: str = "en") -> UploadScreen:
    """The guard's pattern step (no AI check, no provider call) on one uploaded row: what the
    pages show before Start. The answer-time guard (`process_message`) stays the authority:
    it runs again when the row is answered, with the settings of that time and the AI check
    when on."""
    result = screen(question or "", language=language)
    url_result = screen_url(referring_url or "")
    if result.blocked or url_result.blocked:
        status = GuardStatus.BLOCKED
    elif result.changed or url_result.changed:
        status = GuardStatus.REDACTED
    else:
        status = GuardStatus.PASSED
    return UploadScreen(
        status=status,
        question=result.text,
        referring_url=url_result.text,
        reasons=tuple(sorted({*result.reasons, *url_result.reasons})),
    )


def count_tokens(text: str, *, provider: str, model: str) -> int:
    """`text`'s tokens as `provider`'s `model` counts them (chats.providers.tokens)."""
    return tokens.count(text, provider=provider, model=model)


def tokenizer_name(provider: str, model: str) -> tuple[str, bool]:
    """The encoding that counts `provider`'s tokens, and whether it is the model's own."""
    return tokens.encoding_name(provider, model), tokens.is_exact(provider)


def provider_quota(provider: str, model: str) -> tuple[float, float]:
    """The configured requests and tokens per minute for `provider`'s `model` (0: none)."""
    quota = limits.quota_for(provider, model)
    return quota.rpm, quota.tpm
