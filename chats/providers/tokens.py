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

import importlib.machinery
import importlib.util
import sys
from functools import cache

# Tokens a chat API adds around each message (role markers) and to prime the reply:
# OpenAI's published accounting for its chat models.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3
EXACT_PROVIDERS = frozenset({"openai", "azure"})
FALLBACK_ENCODING = "o200k_base"
# OpenAI's older chat and embedding models count with cl100k_base; the gpt-4o, gpt-4.1,
# gpt-4.5, gpt-5 and o-series families (and unknown or deployment names) with o200k_base.
# The rule of tiktoken's model table (tiktoken/model.py), by name prefix.
CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-")
O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "chatgpt-4o")


@cache
def _encoding(name: str):
    """bpe-openai's Rust tokenizer for the encoding `name` (its `count`)."""
    return _bindings().tokenizer_for_encoding(name)


def _bindings():
    """bpe-openai's Rust extension, loaded without running the package's `__init__`.

    Importing `bpe_openai` decodes every encoding's rank file into Python dicts (about
    1.1 s of CPU here, paid by every estimate and every `run_batch`) that only its
    decode path reads; the extension carries its own tables and builds a tokenizer in
    about 0.1 s. Counting needs only the extension. Should the package's layout change,
    the ordinary import is used."""
    name = "bpe_openai._bindings"
    module = sys.modules.get(name)
    if module is not None:
        return module
    package = importlib.util.find_spec("bpe_openai")  # finds it without importing it
    folders = (package.submodule_search_locations or []) if package else []
    spec = None
    for folder in folders:
        finder = importlib.machinery.FileFinder(
            folder,
            (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
        )
        spec = finder.find_spec(name)
        if spec is not None:
            break
    if spec is None or spec.loader is None:
        import bpe_openai._bindings

        return bpe_openai._bindings
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module  # the package, if imported later, reuses it
    return module


def encoding_name(provider: str, model: str) -> str:
    """The encoding used to count `provider`'s `model` ("words" for extractive)."""
    from chats.providers import uses_language_model

    if not uses_language_model(provider):
        return "words"
    if provider in EXACT_PROVIDERS:
        # By prefix, not with bpe_openai.encoding_name_for_model: that imports the
        # package (see _bindings) and knows only exact names, not dated ones.
        name = (model or "").lower()
        if name.startswith(CL100K_PREFIXES) and not name.startswith(O200K_PREFIXES):
            return "cl100k_base"
    return FALLBACK_ENCODING


def is_exact(provider: str) -> bool:
    return provider in EXACT_PROVIDERS


def count(text: str, *, provider: str, model: str) -> int:
    name = encoding_name(provider, model)
    if name == "words":
        return len(text.split())
    return _encoding(name).count(_utf8(text))


def count_messages(texts: list[str], *, provider: str, model: str) -> int:
    """Input tokens of a request made of these message texts (system first)."""
    name = encoding_name(provider, model)
    if name == "words":
        return sum(len(text.split()) for text in texts)
    encoding = _encoding(name)
    counted = sum(encoding.count(_utf8(text)) for text in texts)
    return counted + TOKENS_PER_MESSAGE * len(texts) + TOKENS_PER_REPLY


def _utf8(text: str) -> str:
    """`text`, with lone surrogates (which cannot cross into Rust) replaced."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
