"""Step 0 of the chat pipeline: the guard applied to one turn (see `chats.guard.policy`).

`guard_step(question=..., chat=...)` screens the question (and, when GUARD_AI_CHECK is on
and the chat's provider is a language model, asks that model for personal information the
patterns missed) and says what the rest of the pipeline uses:

- blocked: no search, no AI call; the turn is stored with `blocked_fields()` (the fixed,
  translated answer, model "guard");
- redacted / passed: the pipeline goes on with `question` (the redacted text) for the
  search query and the prompt, and stores `fields()`.

`fields()` decide what the database keeps: the redacted question as `question` unless
GUARD_STORE_ORIGINAL (then the original, with the redacted text beside it). Logs name the
chat and the kinds found, never the text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings

from chats.guard.policy import GuardResult, ai_check, blocked_message, screen
from chats.models import URL_MAX_LENGTH, AnswerType, Chat
from chats.providers import get_provider, uses_language_model

logger = logging.getLogger(__name__)

GUARD_MODEL = "guard"


@dataclass(frozen=True)
class GuardStep:
    result: GuardResult
    original: str
    language: str

    @property
    def blocked(self) -> bool:
        return self.result.blocked

    @property
    def question(self) -> str:
        """What the pipeline sends on (search query, prompt): the redacted text."""
        return self.result.text

    @property
    def answer(self) -> str:
        """The fixed answer of a blocked question, in the page language."""
        return blocked_message(self.result.reasons, language=self.language)

    def fields(self) -> dict:
        """Interaction fields of the guard, whatever the outcome."""
        changed = self.result.changed
        keep_original = settings.GUARD_STORE_ORIGINAL
        return {
            "question": self.original if keep_original or not changed else self.result.text,
            "redacted_question": self.result.text if changed else "",
            "guard_status": self.result.status,
            "guard_reasons": list(self.result.reasons),
        }

    def blocked_fields(self, *, referring_url: str = "") -> dict:
        """Every field of the Interaction that answers a blocked question."""
        return {
            **self.fields(),
            "referring_url": referring_url[:URL_MAX_LENGTH],
            "answer": self.answer,
            "answer_type": AnswerType.BLOCKED,
            "search_query": "",
            "search_results": [],
            "model": GUARD_MODEL,
            "input_tokens": None,
            "output_tokens": None,
            "latency_ms": 0,
        }


async def guard_step(*, question: str, chat: Chat) -> GuardStep:
    """Screen `question` for `chat` (see the module docstring), on the provider loop. May
    raise the provider's errors when the AI check runs (ProviderNotConfigured,
    TransientProviderError, ...)."""
    result = screen(question, language=chat.page_language)
    # Only a language model can run the check (not the extractive answerer).
    if settings.GUARD_AI_CHECK and not result.blocked and uses_language_model(chat.ai_provider):
        result = await _ai_check(result, chat)
    if result.changed:
        logger.info(
            "guard: chat %s question %s (%s)", chat.chat_id, result.status, ",".join(result.reasons)
        )
    return GuardStep(result=result, original=question, language=chat.page_language)


async def _ai_check(result: GuardResult, chat: Chat) -> GuardResult:
    """The one provider call of the guard: the chat's own provider and model, through the
    same retry policy and quota as its answers."""
    provider = get_provider(chat.ai_provider)
    model = chat.model or (provider.models() or [""])[0]
    return await ai_check(
        result, agenerate=provider.agenerate, language=chat.page_language, model=model
    )
