"""Counting tokens before a call, for estimates (batches.estimate).

OpenAI's and Azure OpenAI's models are counted with their own encoding (o200k_base for
the gpt-4o, gpt-4.1 and o-series families, cl100k_base for older ones) through
`bpe-openai`, whose wheel ships the encodings (tiktoken downloads them at run time, which
an offline server cannot do). Anthropic publishes no offline tokenizer for its models,
and an OpenAI-compatible server may run any model: their counts use o200k_base as an
approximation (`exact` is False; Claude's tokenizer usually counts somewhat more). The
extractive answerer's "tokens" are words, so words are counted for it.
"""

from __future__ import annotations

from functools import cache

# Tokens a chat API adds around each message (role markers) and to prime the reply:
# OpenAI's published accounting for its chat models.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3
EXACT_PROVIDERS = frozenset({"openai", "azure"})
FALLBACK_ENCODING = "o200k_base"


@cache
def _encoding(name: str):
    import bpe_openai

    return bpe_openai.get_encoding(name)


def encoding_name(provider: str, model: str) -> str:
    """The encoding used to count `provider`'s `model` ("words" for extractive)."""
    from chats.providers import uses_language_model

    if not uses_language_model(provider):
        return "words"
    if provider in EXACT_PROVIDERS:
        import bpe_openai

        try:
            return bpe_openai.encoding_name_for_model(model)
        except Exception:  # an unknown or deployment name: the current family's encoding
            return FALLBACK_ENCODING
    return FALLBACK_ENCODING


def is_exact(provider: str) -> bool:
    return provider in EXACT_PROVIDERS


def count(text: str, *, provider: str, model: str) -> int:
    name = encoding_name(provider, model)
    if name == "words":
        return len(text.split())
    return len(_encoding(name).encode_ordinary(text))


def count_messages(texts: list[str], *, provider: str, model: str) -> int:
    """Input tokens of a request made of these message texts (system first)."""
    name = encoding_name(provider, model)
    if name == "words":
        return sum(len(text.split()) for text in texts)
    encoding = _encoding(name)
    counted = sum(len(encoding.encode_ordinary(text)) for text in texts)
    return counted + TOKENS_PER_MESSAGE * len(texts) + TOKENS_PER_REPLY
