"""The chat pipeline's steps: turns, prepare / answer / complete, the judge's call,
storing answers in one transaction, `process_message` for one question."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Max

from chats import aio
from chats.errors import (
    ProviderError,
)
from chats.guard import guard_step
from chats.judge import (
    JUDGE_SYSTEM,
    JudgeVerdict,
    judge_messages,
    parse_judge_reply,
)
from chats.models import Chat, GuardStatus, Interaction, PromptOverride
from chats.prompts import (
    build_messages,
    build_system_prompt,
    parse_answer,
)
from chats.providers import (
    get_provider,
    provider_class,
    tokens,
    uses_language_model,
)
from chats.providers.base import AIProvider, GenerationRequest
from chats.search import get_search_provider
from chats.search.base import SearchResult
from chats.services.runtime import screen_offline


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
