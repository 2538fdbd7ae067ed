"""Which providers and model new chats use: the checks, the defaults, the enabled
providers and search providers, their modules and SDKs preloaded and warmed up."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from chats.errors import (
    ProviderNotConfigured,
)
from chats.providers import (
    PROVIDERS,
    get_provider,
    provider_class,
)
from chats.search import SEARCH_PROVIDERS, get_search_provider, search_provider_class
from chats.services.runtime import run_on_provider_loop

logger = logging.getLogger(__name__)


# Providers that talk to a server of the operator's own choosing (Ollama, vLLM, ...):
# any model name the server knows is valid, so a name outside the configured list is
# accepted. Every other provider only offers the models listed in its settings.
OPEN_MODEL_PROVIDERS = frozenset({"compatible"})


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
