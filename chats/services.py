"""The chat pipeline: one question in, one stored Interaction out.

Two steps that every caller shares: `answer` (history, search, prompt, generate, parse:
no database writes, awaited on the provider loop) and `store_answers` (one transaction).
`process_message` is the two together, for one question (the chat page, `manage.py ask`);
the batch engine answers many turns at once on the provider loop and stores them in
groups. Other apps use this module and the chats models, nothing deeper: `__all__` lists
what they may use (the pipeline's steps, provider and search choices, the provider loop
and quotas, the error types, "not found" answers, the local index's description).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max

from chats import aio
from chats.documents import index_info, shipped_sample
from chats.errors import (
    ProviderError,
    ProviderNotConfigured,
    ProviderUnavailable,
    TransientProviderError,
)
from chats.guard import guard_step, redacted_row, screen, screen_url
from chats.judge import (
    JUDGE_SYSTEM,
    JudgeReplyError,
    JudgeVerdict,
    judge_messages,
    parse_judge_reply,
)
from chats.models import Chat, GuardStatus, Interaction, PromptOverride
from chats.prompts import (
    build_messages,
    build_system_prompt,
    counts_words,
    is_not_found,
    not_found_q,
    parse_answer,
    uses_prompt,
)
from chats.providers import (
    PROVIDERS,
    breaker,
    get_provider,
    limits,
    provider_class,
    tokens,
    uses_language_model,
)
from chats.providers.base import AIProvider, GenerationRequest
from chats.providers.batch_api import BatchAPI, BatchResult, batch_api, supports_batch_api
from chats.providers.prices import Price, price_for
from chats.providers.retry import safety_cap
from chats.search import SEARCH_PROVIDERS, get_search_provider, search_provider_class
from chats.search.base import SearchResult

# What other apps (batches, evaluation) may use from chats, besides chats.models.
__all__ = [
    # the pipeline's steps
    "Answer",
    "Prepared",
    "Turn",
    "answer",
    "prepare_answer",
    "complete_answer",
    "lock_chats",
    "process_message",
    "store_answers",
    "turns_for",
    "prompt_preview",
    "request_tokens",
    "count_tokens",
    "tokenizer_name",
    "provider_quota",
    "redacted_row",
    "screen_offline",
    "UploadScreen",
    # provider and search choices
    "ChatSettings",
    "check_chat_settings",
    "choose_chat_settings",
    "default_chat_settings",
    "preload_providers",
    "warm_up_providers",
    "provider_modules",
    "provider_choices",
    "search_choices",
    "counts_words",
    "uses_prompt",
    # the provider loop, its quotas and the AI judge
    "provider_loop",
    "run_on_provider_loop",
    "limits_snapshot",
    "share_quotas",
    "outage_snapshot",
    "OUTAGE_REASONS",
    "provider_down",
    "provider_probe_seconds",
    "safety_cap",
    "judge_answer",
    "judge_request",
    "parse_judge_reply",
    "JudgeReplyError",
    # the providers' batch APIs (economy mode)
    "BatchAPI",
    "BatchResult",
    "batch_api",
    "supports_batch_api",
    # prices per million tokens (the shipped table, AI_PRICES, the admin's)
    "Price",
    "price_for",
    # errors
    "ProviderError",
    "ProviderNotConfigured",
    "TransientProviderError",
    "ProviderUnavailable",
    # "not found" answers
    "is_not_found",
    "not_found_q",
    # the local search index, described for the upload form
    "index_info",
    "shipped_sample",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

# Providers that talk to a server of the operator's own choosing (Ollama, vLLM, ...):
# any model name the server knows is valid, so a name outside the configured list is
# accepted. Every other provider only offers the models listed in its settings.
OPEN_MODEL_PROVIDERS = frozenset({"compatible"})


@dataclass(frozen=True)
class Turn:
    """What answering one question needs, read from the database beforehand."""

    chat: Chat
    question: str
    referring_url: str = ""
    history: tuple[tuple[str, str], ...] = ()  # earlier (question, answer) pairs
    override: PromptOverride | None = None


@dataclass(frozen=True)
class Answer:
    """A turn answered and not yet stored: the Interaction's fields."""

    fields: dict = field(default_factory=dict)


def turns_for(requests: Sequence[tuple[Chat, str, str]]) -> list[Turn]:
    """Turns for (chat, question, referring_url) requests, with each chat's history and
    its uploader's prompt override: two queries, whatever the number of requests."""
    chat_ids = {chat.pk for chat, _question, _url in requests}
    history: dict[int, list[tuple[str, str]]] = {}
    rows = (
        Interaction.objects.filter(chat_id__in=chat_ids)
        .exclude(guard_status="blocked")
        .order_by("chat_id", "position")
        .values_list("chat_id", "question", "redacted_question", "answer")
    )
    for chat_id, asked, redacted, answer_text in rows:
        # A screened turn is replayed as the model saw it, never the original.
        history.setdefault(chat_id, []).append((redacted or asked, answer_text))
    owners = {chat.uploader_id for chat, _q, _u in requests if chat.apply_overrides}
    overrides = {
        override.owner_id: override
        for override in PromptOverride.objects.filter(
            owner_id__in=owners - {None}, key=PromptOverride.Key.SYSTEM, enabled=True
        )
    }
    return [
        Turn(
            chat=chat,
            question=question,
            referring_url=referring_url,
            history=tuple(history.get(chat.pk, ())),
            override=overrides.get(chat.uploader_id) if chat.apply_overrides else None,
        )
        for chat, question, referring_url in requests
    ]


@dataclass(frozen=True)
class Prepared:
    """A turn up to its model call (guard, search, prompt), not yet answered.

    `request` is what the model is asked (None for a blocked turn, whose `answer` is
    already set); `fields` are the Interaction's fields known before the call (JSON
    values only, so a provider batch can keep them until its results come back)."""

    request: GenerationRequest | None
    fields: dict
    answer: Answer | None = None  # set for a blocked turn: nothing to ask

    @property
    def blocked(self) -> bool:
        return self.answer is not None


async def prepare_answer(turn: Turn) -> Prepared:
    """Steps 0-2 of `answer` (guard, search, prompt): everything but the model call.

    A blocked turn comes back with its answer (no search, no AI call). The economy mode
    writes the prepared requests to a provider's batch API and finishes each with
    `complete_answer` when the results come back. Raises what `answer` raises before
    its model call."""
    chat = turn.chat
    guarded = await guard_step(question=turn.question, chat=chat, referring_url=turn.referring_url)
    if guarded.blocked:
        return Prepared(request=None, fields={}, answer=Answer(fields=guarded.blocked_fields()))
    question = guarded.question  # the redacted text from here on
    provider = get_provider(chat.ai_provider)
    # The referring URL is redacted like the question.
    request = await _request_for(turn, provider, question, guarded.referring_url)
    results, model, search_query = request.search_results, request.model, question.strip()
    return Prepared(
        request=request,
        fields={
            "question": question,
            "search_query": search_query,
            "search_results": [result.as_dict() for result in results],
            "model": model,
            "prompt_override_id": turn.override.pk if turn.override else None,
            "page_language": chat.page_language,
            **guarded.fields(),
        },
    )


def complete_answer(
    fields: dict,
    *,
    text: str,
    model: str = "",
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    latency_ms: int = 0,
) -> Answer:
    """Step 4 of `answer` (parse) for a prepared turn's `fields` and the model's raw
    `text`: the Answer to store. Used by `answer` and by the economy mode when a provider
    batch's result comes back."""
    fields = dict(fields)
    language = fields.pop("page_language", "en")
    results = [SearchResult(**result) for result in fields.get("search_results") or []]
    parsed = parse_answer(text, results, language=language)
    return Answer(
        fields={
            **fields,
            "answer": parsed.answer,
            "answer_type": parsed.answer_type,
            "citation_url": parsed.citation_url,
            "citation_title": parsed.citation_title,
            "model": model or fields.get("model", ""),
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "latency_ms": latency_ms,
        }
    )


async def answer(turn: Turn, *, on_token: Callable[[str], None] | None = None) -> Answer:
    """Answer one turn; no database access (it runs on the provider loop).

    0. guard: personal information and abuse are screened first (`chats.guard.pipeline`),
       in the question and the referring URL; a blocked turn is answered with the fixed,
       translated message, with no search and no AI call; a redacted one goes on as its
       redacted text and URL (the history replays earlier turns' redacted questions);
    1. search: the chat's search provider, up to SEARCH_MAX_RESULTS results for the
       question (the question alone is the query, also for follow-ups);
    2. prompt: system prompt + the uploader's enabled override when `apply_overrides`,
       the chat's earlier turns as history;
    3. generate: the chat's AI provider and model; with `on_token`, the raw model text
       (tags included) is streamed to it as it arrives;
    4. parse: answer and citation out of the raw text (`chats.prompts.parse_answer`), so
       the stored answer is the parse of exactly the streamed text.

    Steps 0-2 are `prepare_answer`, step 4 `complete_answer`. `latency_ms` is the wall
    time of steps 1-4 (what the asker waits for).
    Raises ProviderNotConfigured, ProviderError or TransientProviderError.
    """
    started = time.monotonic()
    prepared = await prepare_answer(turn)
    if prepared.answer is not None:
        if on_token is not None:
            on_token(prepared.answer.fields["answer"])
        return prepared.answer
    provider = get_provider(turn.chat.ai_provider)
    generation = await provider.agenerate(prepared.request, on_token=on_token)
    return complete_answer(
        prepared.fields,
        text=generation.text,
        model=generation.model,
        input_tokens=generation.input_tokens,
        output_tokens=generation.output_tokens,
        latency_ms=round((time.monotonic() - started) * 1000),
    )


async def _request_for(
    turn: Turn, provider: AIProvider, question: str, referring_url: str
) -> GenerationRequest:
    """Steps 1-2 of `answer`: the search, then the request the provider is sent."""
    chat = turn.chat
    searcher = get_search_provider(chat.search_provider)
    model = chat.model or (provider.models() or [""])[0]
    limit = settings.SEARCH_MAX_RESULTS
    query = question.strip()
    results = list(await searcher.asearch(query, language=chat.page_language, limit=limit))
    results = results[:limit]
    system = build_system_prompt(
        language=chat.page_language,
        search_results=results,
        referring_url=referring_url,
        override_text=turn.override.text if turn.override else "",
    )
    return GenerationRequest(
        system=system,
        messages=build_messages(history=list(turn.history), question=question),
        question=question,
        search_results=results,
        language=chat.page_language,
        model=model,
    )


async def prompt_preview(turn: Turn) -> GenerationRequest | None:
    """The request `answer` would send for `turn`, with the real search step, and no
    provider call (the guard's AI check does not run: the offline screen decides); None
    when the question would be blocked. For estimates before a batch starts."""
    screened = screen_offline(turn.question, turn.referring_url, language=turn.chat.page_language)
    if screened.status == GuardStatus.BLOCKED:
        return None
    provider = provider_class(turn.chat.ai_provider)()
    return await _request_for(turn, provider, screened.question, screened.referring_url)


def request_tokens(request: GenerationRequest, *, provider: str) -> int:
    """The input tokens of `request` as `provider` counts them (chats.providers.tokens)."""
    texts = [request.system, *(m.content for m in request.messages)]
    return tokens.count_messages(texts, provider=provider, model=request.model)


def judge_request(
    *, ai_provider: str, model: str, question: str, expected_answer: str, answer: str
) -> GenerationRequest:
    """The AI judge's request for `answer` (its prompt: chats.judge), as `judge_answer`
    sends it and as economy mode writes it in a provider batch. Raises ProviderError
    for a provider that cannot judge."""
    # Only a language model can judge (the extractive answerer copies sentences).
    if not uses_language_model(ai_provider):
        raise ProviderError(
            f"The AI provider '{ai_provider}' cannot judge answers: choose a language model."
        )
    provider = get_provider(ai_provider)
    messages = judge_messages(question=question, expected_answer=expected_answer, answer=answer)
    return GenerationRequest(
        system=JUDGE_SYSTEM,
        messages=messages,
        question=messages[-1].content,
        model=model or (provider.models() or [""])[0],
    )


async def judge_answer(
    *, ai_provider: str, model: str, question: str, expected_answer: str, answer: str
) -> JudgeVerdict:
    """Ask `ai_provider`'s `model` whether `answer` carries the ideas of `expected_answer`,
    on the provider loop.

    One provider call (the provider's retry policy and quota apply). Raises
    ProviderNotConfigured, ProviderError (also for a provider that cannot judge) or
    JudgeReplyError."""
    request = judge_request(
        ai_provider=ai_provider,
        model=model,
        question=question,
        expected_answer=expected_answer,
        answer=answer,
    )
    return parse_judge_reply((await get_provider(ai_provider).agenerate(request)).text)


def lock_chats(chat_ids) -> None:
    """Lock chats (in primary-key order, as delete_batch does) for the rest of the
    caller's transaction: their next interaction positions are then ours to take. SQLite
    has no row locks (its IMMEDIATE write transaction holds the whole database): no query."""
    if not connection.features.has_select_for_update:
        return
    list(
        Chat.objects.select_for_update()
        .filter(pk__in=sorted(chat_ids))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def store_answers(
    answers: Sequence[tuple[Chat, Answer]], *, chats_locked: bool = False
) -> list[Interaction]:
    """Store answers as Interactions at their chats' next free positions (answers of one
    chat in the order given), in one transaction and three queries.

    Two turns of one chat may finish at the same time (a follow-up typed while a batch
    row runs, two workers). Locking the chats (in primary-key order, as delete_batch does)
    serialises them on PostgreSQL; SQLite has no row locks but its IMMEDIATE transactions
    serialise writers. The IntegrityError retry covers any database where neither holds
    (the unique constraint is the guard). Called inside a caller's transaction, this
    commits with it or not at all; `chats_locked` when that transaction has locked the
    chats already (lock_chats).
    """
    if not answers:
        return []
    chat_ids = sorted({chat.pk for chat, _answer in answers})
    for attempt in range(2):
        try:
            with transaction.atomic():
                if not chats_locked:
                    lock_chats(chat_ids)
                last = dict(
                    Interaction.objects.filter(chat_id__in=chat_ids)
                    .values("chat_id")
                    .annotate(last=Max("position"))
                    .values_list("chat_id", "last")
                )
                interactions = []
                for chat, answered in answers:
                    position = last.get(chat.pk, -1) + 1
                    last[chat.pk] = position
                    interactions.append(
                        Interaction(chat=chat, position=position, **answered.fields)
                    )
                return Interaction.objects.bulk_create(interactions)
        except IntegrityError:
            if attempt == 1:
                raise
    raise AssertionError("unreachable")


def process_message(
    *,
    chat: Chat,
    question: str,
    referring_url: str = "",
    on_token: Callable[[str], None] | None = None,
) -> Interaction:
    """Answer `question` in `chat` and store the turn: `turns_for` (history), `answer` on
    the provider loop, `store_answers`. Raises ProviderNotConfigured, ProviderError or
    TransientProviderError; nothing is stored then."""
    (turn,) = turns_for([(chat, question, referring_url)])
    answered = aio.run(answer(turn, on_token=on_token))
    (interaction,) = store_answers([(chat, answered)])
    return interaction


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
                "settings.",
                field="model",
            )
        return models[0]
    if model in models or ai_provider in OPEN_MODEL_PROVIDERS:
        return model
    raise ProviderNotConfigured(
        f"The AI provider '{ai_provider}' does not offer the model '{model}'. "
        f"Choose one of: {', '.join(models)}.",
        field="model",
    )


@dataclass(frozen=True)
class ChatSettings:
    """The providers and model that new chats (a batch's rows) are answered with."""

    ai_provider: str
    model: str
    search_provider: str


def default_chat_settings() -> ChatSettings:
    """The server's choice when a person makes none: DEFAULT_AI_PROVIDER (the model is left
    to the provider: its first) and DEFAULT_SEARCH_PROVIDER. Not checked."""
    return ChatSettings(
        ai_provider=settings.DEFAULT_AI_PROVIDER,
        model="",
        search_provider=settings.DEFAULT_SEARCH_PROVIDER,
    )


def choose_chat_settings(
    *, ai_provider: str | None = "", model: str | None = "", search_provider: str | None = ""
) -> ChatSettings:
    """The settings for new chats, from what a person chose (empty or None: the default).

    1. defaults: default_chat_settings for each provider not given;
    2. check_chat_settings: both providers known and configured (the message names the
       missing setting), and the model (the given one when the provider offers it, else
       its first). Only the chosen providers' modules (and SDKs) are imported.
    Raises ProviderNotConfigured whose `field` is "ai_provider", "search_provider" or
    "model": the choice refused.
    """
    default = default_chat_settings()
    ai_provider = ai_provider or default.ai_provider
    search_provider = search_provider or default.search_provider
    model = check_chat_settings(
        ai_provider=ai_provider, model=model or "", search_provider=search_provider
    )
    return ChatSettings(ai_provider=ai_provider, model=model, search_provider=search_provider)


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


def preload_providers(*, ai_provider: str = "") -> None:
    """Import the enabled providers' modules and SDKs now (a provider imports its SDK on
    first use otherwise). A long-running worker calls this at start (the Celery parent
    before it forks, run_worker, an engine process), so that its first slice does not
    pay for the import: about 0.8 s for the OpenAI SDK here. With `ai_provider`, only
    that one (an engine process of one batch)."""
    keys = [ai_provider] if ai_provider else list(PROVIDERS)
    for key in keys:
        provider = _enabled(provider_class, key) if key in PROVIDERS else None
        if provider is not None and provider.sdk_module:
            importlib.import_module(provider.sdk_module)
    if not ai_provider:
        search_choices()


def provider_modules(ai_provider: str) -> list[str]:
    """What an engine process of `ai_provider` imports before its first call: the
    provider's module and its SDK (for the fork server to load once); [] for an unknown
    provider. Imports the provider's module (cheap), not its SDK."""
    if ai_provider not in PROVIDERS:
        return []
    path = PROVIDERS[ai_provider].rsplit(".", 1)[0]
    sdk = _provider_sdk(ai_provider)
    return [path, sdk] if sdk else [path]


def _provider_sdk(ai_provider: str) -> str:
    try:
        return provider_class(ai_provider).sdk_module
    except ImportError:
        return ""


def warm_up_providers(*, ai_provider: str = "") -> None:
    """Build the enabled AI providers' SDK clients on this process's provider loop now
    (`ai_provider`: that one only). An engine process calls this once it exists (a
    Celery pool child after the fork: clients belong to one process's loop), so that the
    first rows of its first slice do not wait ~0.1 s for them (the TLS context, the
    HTTP client's modules, a client per shard)."""
    keys = [ai_provider] if ai_provider else list(PROVIDERS)

    async def build() -> None:
        for key in keys:
            provider = _enabled(provider_class, key) if key in PROVIDERS else None
            if provider is None:
                continue
            try:
                provider.warm_up()
            except Exception:
                # Only a head start: the first call builds what is missing (and reports
                # what is wrong with the row that made it).
                logger.warning("warming up provider %s failed", key, exc_info=True)

    run_on_provider_loop(build())


def search_choices() -> list[tuple[str, str]]:
    """Enabled search providers as (key, label)."""
    choices = []
    for key in SEARCH_PROVIDERS:
        provider = _enabled(search_provider_class, key)
        if provider is not None:
            choices.append((key, str(provider.label)))
    return choices


# --- The provider loop and its quotas, for runners that drive many calls ---------------


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
