"""The chat pipeline: one question in, one stored Interaction out.

Two steps that every caller shares: `answer` (history, search, prompt, generate, parse:
no database writes, awaited on the provider loop) and `store_answers` (one transaction).
`process_message` is the two together, for one question (the chat page, `manage.py ask`);
the batch engine answers many turns at once on the provider loop and stores them in
groups. Other apps use this package and the chats models, nothing deeper: `__all__` lists
what they may use (the pipeline's steps, provider and search choices, the provider loop
and quotas, the error types, "not found" answers, the local index's description).

The package by concern: `pipeline` (the steps), `choices` (providers and models),
`runtime` (the provider loop, quotas, outages, the offline screen, token counts).
"""

from chats.documents import index_info, shipped_sample
from chats.errors import (
    ProviderError,
    ProviderNotConfigured,
    ProviderUnavailable,
    TransientProviderError,
)
from chats.guard import redacted_row
from chats.judge import JudgeReplyError, parse_judge_reply
from chats.prompts import counts_words, is_not_found, not_found_q, uses_prompt
from chats.providers.batch_api import BatchAPI, BatchResult, batch_api, supports_batch_api
from chats.providers.prices import Price, price_for
from chats.providers.retry import safety_cap
from chats.services.choices import (
    ChatSettings,
    check_chat_settings,
    choose_chat_settings,
    default_chat_settings,
    preload_providers,
    provider_choices,
    provider_modules,
    search_choices,
    warm_up_providers,
)
from chats.services.pipeline import (
    Answer,
    Prepared,
    Turn,
    answer,
    complete_answer,
    judge_answer,
    judge_request,
    lock_chats,
    prepare_answer,
    process_message,
    prompt_preview,
    request_tokens,
    store_answers,
    turns_for,
)
from chats.services.runtime import (
    OUTAGE_REASONS,
    UploadScreen,
    count_tokens,
    limits_snapshot,
    outage_snapshot,
    provider_down,
    provider_loop,
    provider_probe_seconds,
    provider_quota,
    run_on_provider_loop,
    screen_offline,
    share_quotas,
    tokenizer_name,
)

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
