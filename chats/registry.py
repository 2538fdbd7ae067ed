"""Lookup shared by the AI and the search provider registries: key -> class -> enabled
instance, imported lazily so that an SDK loads only when its provider is used."""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from chats.errors import ProviderNotConfigured


def load_class(registry: dict[str, str], key: str, *, kind: str, field: str) -> type:
    """The provider class; ProviderNotConfigured about `field` (the chat setting that
    holds the key) when the key is unknown."""
    if key not in registry:
        known = ", ".join(registry)
        raise ProviderNotConfigured(
            f"Unknown {kind} '{key}'. Known providers: {known}.", field=field
        )
    return import_string(registry[key])


def enabled_instance(registry: dict[str, str], key: str, *, kind: str, field: str) -> Any:
    """An instance of the provider, or ProviderNotConfigured naming the missing setting."""
    provider = load_class(registry, key, kind=kind, field=field)()
    missing = provider.missing_setting()
    if missing:
        raise ProviderNotConfigured(
            f"The {kind} '{key}' is not configured: set {missing}.", field=field
        )
    return provider
