"""The chat pipeline: one question in, one stored Interaction out.

`process_message` is the only entry point other apps use (batches calls nothing deeper).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from chats.errors import ProviderError, ProviderNotConfigured, TransientProviderError
from chats.judge import JUDGE_SYSTEM, JudgeVerdict, judge_messages, parse_judge_reply
from chats.models import Chat, Interaction, PromptOverride
from chats.prompts import build_messages, build_system_prompt, parse_answer
from chats.providers import PROVIDERS, get_provider, provider_class
from chats.providers.base import GenerationRequest
from chats.search import SEARCH_PROVIDERS, get_search_provider, search_provider_class

__all__ = [
    "ProviderError",
    "ProviderNotConfigured",
    "TransientProviderError",
    "check_chat_settings",
    "judge_answer",
    "process_message",
    "provider_choices",
    "search_choices",
]

logger = logging.getLogger(__name__)

# Providers that talk to a server of the operator's own choosing (Ollama, vLLM, ...):
# any model name the server knows is valid, so a name outside the configured list is
# accepted. Every other provider only offers the models listed in its settings.
OPEN_MODEL_PROVIDERS = frozenset({"compatible"})


def process_message(
    *,
    chat: Chat,
    question: str,
    referring_url: str = "",
    on_token: Callable[[str], None] | None = None,
    in_transaction: Callable[[Interaction], None] | None = None,
) -> Interaction:
    """Answer `question` in `chat` and store the turn.

    1. history: the chat's earlier interactions, by position, become prior turns;
    2. search: the chat's search provider, up to SEARCH_MAX_RESULTS results for the
       question (the question alone is the query, also for follow-ups);
    3. prompt: system prompt + the uploader's enabled override when `apply_overrides`;
    4. generate: the chat's AI provider and model; with `on_token`, the raw model text
       (tags included) is streamed to it as it arrives;
    5. parse: answer and citation out of the raw text (`chats.prompts.parse_answer`), so the
       stored answer is the parse of exactly the streamed text;
    6. store: one Interaction at the chat's next free position, in one transaction.

    `latency_ms` is the wall time of steps 2-5 (what the asker waits for).
    `in_transaction(interaction)` runs inside the store transaction, after the save: a
    caller's own bookkeeping (a batch row's status) commits with the turn or not at all;
    an exception from it rolls the turn back and propagates.
    Raises ProviderNotConfigured, ProviderError or TransientProviderError; nothing is
    stored then.
    """
    started = time.monotonic()
    provider = get_provider(chat.ai_provider)
    searcher = get_search_provider(chat.search_provider)
    model = chat.model or (provider.models() or [""])[0]

    history = list(chat.interactions.order_by("position").values_list("question", "answer"))
    search_query = question.strip()
    results = searcher.search(
        search_query, language=chat.page_language, limit=settings.SEARCH_MAX_RESULTS
    )
    results = list(results)[: settings.SEARCH_MAX_RESULTS]

    override = _override_for(chat)
    system = build_system_prompt(
        language=chat.page_language,
        search_results=results,
        referring_url=referring_url,
        override_text=override.text if override else "",
    )
    request = GenerationRequest(
        system=system,
        messages=build_messages(history=history, question=question),
        question=question,
        search_results=results,
        language=chat.page_language,
        model=model,
    )
    generation = provider.generate(request, on_token=on_token)
    parsed = parse_answer(generation.text, results)
    latency_ms = round((time.monotonic() - started) * 1000)

    return _store_interaction(
        chat=chat,
        in_transaction=in_transaction,
        fields={
            "question": question,
            "referring_url": referring_url[:2048],
            "answer": parsed.answer,
            "citation_url": parsed.citation_url,
            "citation_title": parsed.citation_title,
            "search_query": search_query,
            "search_results": [result.as_dict() for result in results],
            "model": generation.model or model,
            "input_tokens": generation.input_tokens,
            "output_tokens": generation.output_tokens,
            "latency_ms": latency_ms,
            "prompt_override": override,
        },
    )


# Providers that cannot judge: the extractive answerer only copies sentences from results.
NON_JUDGING_PROVIDERS = frozenset({"extractive"})


def judge_answer(
    *, ai_provider: str, model: str, question: str, expected_answer: str, answer: str
) -> JudgeVerdict:
    """Ask `ai_provider`'s `model` whether `answer` carries the ideas of `expected_answer`.

    One provider call (the provider's retry policy applies). Raises ProviderNotConfigured,
    ProviderError (also for a provider that cannot judge) or JudgeReplyError."""
    if ai_provider in NON_JUDGING_PROVIDERS:
        raise ProviderError(
            f"The AI provider '{ai_provider}' cannot judge answers: choose a language model."
        )
    provider = get_provider(ai_provider)
    messages = judge_messages(question=question, expected_answer=expected_answer, answer=answer)
    request = GenerationRequest(
        system=JUDGE_SYSTEM,
        messages=messages,
        question=messages[-1].content,
        model=model or (provider.models() or [""])[0],
    )
    return parse_judge_reply(provider.generate(request).text)


def _override_for(chat: Chat) -> PromptOverride | None:
    if not chat.apply_overrides or chat.uploader_id is None:
        return None
    return PromptOverride.objects.filter(
        owner_id=chat.uploader_id, key=PromptOverride.Key.SYSTEM, enabled=True
    ).first()


def _store_interaction(
    *, chat: Chat, fields: dict, in_transaction: Callable[[Interaction], None] | None = None
) -> Interaction:
    """Create the interaction at the chat's next free position.

    Two turns of one chat may finish at the same time (a follow-up typed while a batch
    row runs, two workers). Locking the chat row serialises them on PostgreSQL; SQLite has
    no row locks but its IMMEDIATE transactions serialise writers. The IntegrityError
    retry covers any database where neither holds (the unique constraint is the guard).
    """
    for attempt in range(2):
        try:
            with transaction.atomic():
                Chat.objects.select_for_update().filter(pk=chat.pk).first()
                last = chat.interactions.aggregate(last=Max("position"))["last"]
                interaction = Interaction.objects.create(
                    chat=chat, position=0 if last is None else last + 1, **fields
                )
                if in_transaction is not None:
                    in_transaction(interaction)
                return interaction
        except IntegrityError:
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


def check_chat_settings(*, ai_provider: str, model: str = "", search_provider: str) -> str:
    """Raise ProviderNotConfigured unless both providers are enabled; return the model to use.

    The model is `model` when given and offered by the provider (any non-empty name for
    `compatible`), else the provider's first (default) model.
    """
    provider = get_provider(ai_provider)
    get_search_provider(search_provider)
    models = provider.models()
    model = (model or "").strip()
    if not model:
        if not models:
            raise ProviderNotConfigured(
                f"The AI provider '{ai_provider}' offers no model: list at least one in its "
                "settings."
            )
        return models[0]
    if model in models or ai_provider in OPEN_MODEL_PROVIDERS:
        return model
    raise ProviderNotConfigured(
        f"The AI provider '{ai_provider}' does not offer the model '{model}'. "
        f"Choose one of: {', '.join(models)}."
    )


def _enabled(cls_getter: Callable[[str], type], key: str) -> object | None:
    """An instance of the provider `key` when its module imports and it is configured."""
    try:
        provider = cls_getter(key)()
    except ImportError:
        # A provider whose module (or SDK) is missing is simply not offered.
        logger.warning("provider %s is not importable; it is left out of the choices", key)
        return None
    return None if provider.missing_setting() else provider


def provider_choices() -> list[tuple[str, str, list[str]]]:
    """Enabled AI providers as (key, label, models) for forms and the API, extractive first."""
    keys = sorted(PROVIDERS, key=lambda key: key != "extractive")
    choices = []
    for key in keys:
        provider = _enabled(provider_class, key)
        if provider is not None:
            choices.append((key, str(provider.label), list(provider.models())))
    return choices


def search_choices() -> list[tuple[str, str]]:
    """Enabled search providers as (key, label)."""
    choices = []
    for key in SEARCH_PROVIDERS:
        provider = _enabled(search_provider_class, key)
        if provider is not None:
            choices.append((key, str(provider.label)))
    return choices
