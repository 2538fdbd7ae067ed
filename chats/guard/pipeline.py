"""Step 0 of the chat pipeline: the guard applied to one turn (see `chats.guard.policy`).

`guard_step(question=..., chat=..., referring_url=...)` screens the question and the
referring URL (its path segments and query values, `policy.screen_url`) (and, when GUARD_AI_CHECK is on
and the chat's provider is a language model, asks that model for personal information the
patterns missed) and says what the rest of the pipeline uses:

- blocked: no search, no AI call; the turn is stored with `blocked_fields()` (the fixed,
  translated answer, model "guard");
- redacted / passed: the pipeline goes on with `question` (the redacted text) for the
  search query and the prompt, and stores `fields()`.

`fields()` decide what the database keeps: the redacted question as `question` unless
GUARD_STORE_ORIGINAL (then the original, with the redacted text beside it); the same for
`referring_url` (the redacted URL unless GUARD_STORE_ORIGINAL). The status and reasons
cover every field; `guard_fields` says which field held which kind (`url:email`). Logs
name the chat, the field and the kinds, never the text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from chats.guard.policy import (
    BLOCKED,
    PASSED,
    REDACTED,
    GuardResult,
    ai_check,
    blocked_message,
    screen,
    screen_url,
)
from chats.models import URL_MAX_LENGTH, AnswerType, Chat
from chats.providers import get_provider, uses_language_model

logger = logging.getLogger(__name__)

GUARD_MODEL = "guard"


@dataclass(frozen=True)
class GuardStep:
    result: GuardResult
    original: str
    language: str
    url_result: GuardResult = GuardResult(PASSED, "")
    original_url: str = ""

    @property
    def blocked(self) -> bool:
        return self.result.blocked or self.url_result.blocked

    @property
    def status(self) -> str:
        """The turn's outcome over every field sent (question and referring URL)."""
        if self.blocked:
            return BLOCKED
        return REDACTED if self.result.changed or self.url_result.changed else PASSED

    @property
    def reasons(self) -> tuple[str, ...]:
        """The kinds found in any field, sorted."""
        return tuple(sorted({*self.result.reasons, *self.url_result.reasons}))

    @property
    def field_reasons(self) -> list[str]:
        """Which field held which kind: `question:phone`, `url:email`, ..."""
        return [f"question:{kind}" for kind in self.result.reasons] + [
            f"url:{kind}" for kind in self.url_result.reasons
        ]

    @property
    def referring_url(self) -> str:
        """What the prompt gets: the redacted referring URL."""
        return self.url_result.text

    @property
    def question(self) -> str:
        """What the pipeline sends on (search query, prompt): the redacted text."""
        return self.result.text

    @property
    def answer(self) -> str:
        """The fixed answer of a blocked question, in the page language."""
        return blocked_message(self.reasons, language=self.language)

    def fields(self) -> dict:
        """Interaction fields of the guard, whatever the outcome."""
        changed = self.result.changed
        keep_original = settings.GUARD_STORE_ORIGINAL
        return {
            "question": self.original if keep_original or not changed else self.result.text,
            "redacted_question": self.result.text if changed else "",
            "guard_status": self.status,
            "guard_reasons": list(self.reasons),
            "guard_fields": self.field_reasons,
            "referring_url": (self.original_url if keep_original else self.referring_url)[
                :URL_MAX_LENGTH
            ],
        }

    def blocked_fields(self) -> dict:
        """Every field of the Interaction that answers a blocked question."""
        return {
            **self.fields(),
            "answer": self.answer,
            "answer_type": AnswerType.BLOCKED,
            "search_query": "",
            "search_results": [],
            "model": GUARD_MODEL,
            "input_tokens": None,
            "output_tokens": None,
            "latency_ms": 0,
        }


async def guard_step(*, question: str, chat: Chat, referring_url: str = "") -> GuardStep:
    """Screen `question` and `referring_url` for `chat` (see the module docstring), on the
    provider loop. May raise the provider's errors when the AI check runs
    (ProviderNotConfigured, TransientProviderError, ...)."""
    result = screen(question, language=chat.page_language)
    url_result = screen_url(referring_url)
    # Only a language model can run the check (not the extractive answerer).
    if (
        settings.GUARD_AI_CHECK
        and not result.blocked
        and not url_result.blocked
        and uses_language_model(chat.ai_provider)
    ):
        result = await _ai_check(result, chat)
    step = GuardStep(
        result=result,
        original=question,
        language=chat.page_language,
        url_result=url_result,
        original_url=referring_url,
    )
    for field, screened in (("question", result), ("url", url_result)):
        if screened.changed:
            logger.info(
                "guard: chat %s %s %s (%s)",
                chat.chat_id,
                field,
                screened.status,
                ",".join(screened.reasons),
            )
    return step


async def _ai_check(result: GuardResult, chat: Chat) -> GuardResult:
    """The one provider call of the guard: the chat's own provider and model, through the
    same retry policy and quota as its answers."""
    provider = get_provider(chat.ai_provider)
    model = chat.model or (provider.models() or [""])[0]
    return await ai_check(
        result, agenerate=provider.agenerate, language=chat.page_language, model=model
    )
