"""The interface every AI provider implements, and the values that cross it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from chats import aio
from chats.search.base import SearchResult


@dataclass(frozen=True)
class Message:
    role: str  # "user" or "assistant" (the system prompt travels separately)
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a provider may need; network providers use `system` + `messages`,
    the offline extractive one uses `question` + `search_results`."""

    system: str
    messages: list[Message]  # earlier turns, then the current question last
    question: str
    search_results: list[SearchResult] = field(default_factory=list)
    language: str = "en"
    model: str = ""


@dataclass(frozen=True)
class Generation:
    text: str
    model: str
    input_tokens: int | None = None
    output_tokens: int | None = None


class AIProvider:
    """One AI provider. Instances are cheap; configuration comes from settings.

    A provider implements `agenerate` (network providers: the SDK's async client on the
    provider loop) or `generate` (blocking work such as the offline extractive answerer,
    which `agenerate` then runs in a thread); the other one comes from this class.
    """

    key: ClassVar[str]
    label: ClassVar[str]
    # False for an answerer that is no language model (extractive): it reads no system
    # prompt (so no prompt override), cannot judge answers or run the guard's AI check,
    # and its "tokens" are word counts. See chats.providers.uses_language_model.
    uses_language_model: ClassVar[bool] = True
    # The official SDK the provider calls through, imported on first use (the OpenAI SDK
    # costs about 0.8 s of CPU here): checking settings and choosing a model need none.
    # Long-running workers import it before their first slice (chats.services
    # preload_providers); "" for a provider without one.
    sdk_module: ClassVar[str] = ""

    def missing_setting(self) -> str | None:
        """The name of the setting that keeps this provider off, or None when enabled."""
        raise NotImplementedError

    def models(self) -> list[str]:
        """Models offered in forms and the API; the first is the default."""
        raise NotImplementedError

    def warm_up(self) -> None:
        """Make now what this process's first call would make (the SDK's clients), so
        that the first rows of a slice do not wait for it (on the provider loop)."""

    async def agenerate(
        self, request: GenerationRequest, *, on_token: Callable[[str], None] | None = None
    ) -> Generation:
        """Answer the request; with `on_token`, call it with each piece of text as it
        streams (on the provider loop: it must not block). Raise chats.errors types."""
        return await asyncio.to_thread(self.generate, request, on_token=on_token)

    def generate(
        self, request: GenerationRequest, *, on_token: Callable[[str], None] | None = None
    ) -> Generation:
        """`agenerate` for synchronous callers: runs it on the provider loop and waits."""
        return aio.run(self.agenerate(request, on_token=on_token))
