"""Typed errors of the chat pipeline. Messages are for people and never carry a key."""

from __future__ import annotations


class ChatPipelineError(Exception):
    """Base class: something stopped a question from being answered."""


class ProviderNotConfigured(ChatPipelineError):
    """The provider is unknown or lacks a setting. Fatal for a batch: no row can succeed.

    `field` names the chat setting refused, when it is one: "ai_provider",
    "search_provider" or "model" (a form or the API shows the message next to it).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ProviderError(ChatPipelineError):
    """The provider refused or failed this one request; the row fails with this message."""


class TransientProviderError(ProviderError):
    """429, 5xx, timeout, connection error: worth retrying later (after `retry_after`)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(TransientProviderError):
    """The provider does not answer (its circuit breaker is open: connection refused,
    timeouts, 5xx in a row). Not the question's fault: a batch gives the row back to
    pending without counting the attempt, and starts no row until the provider answers."""
