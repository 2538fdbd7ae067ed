"""Anthropic's Messages API through the official `anthropic` SDK."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings

from chats import aio
from chats.http import CLIENT_SHARDS, ssl_context
from chats.providers import limits
from chats.providers.base import AIProvider, Generation, GenerationRequest
from chats.providers.retry import CallContext, TokenCallback, call_with_retries

if TYPE_CHECKING:
    import anthropic


def _sdk() -> Any:
    """The `anthropic` SDK, imported on first use (see AIProvider.sdk_module)."""
    return importlib.import_module("anthropic")


# The Messages API requires a cap on output; answers here are a few paragraphs at most.
MAX_OUTPUT_TOKENS = 2048


def _client(base_url: str, api_key: str, timeout: float) -> anthropic.AsyncAnthropic:
    # Sharded clients per provider loop and settings values (see chats.aio.round_robin);
    # retries are ours (max_retries=0).
    return aio.round_robin(
        ("anthropic", base_url, api_key, timeout),
        lambda: _sdk().AsyncAnthropic(
            api_key=api_key,
            base_url=base_url or None,
            timeout=timeout,
            max_retries=0,
            http_client=_sdk().DefaultAioHttpClient(verify=ssl_context()),
        ),
        CLIENT_SHARDS,
    )


class AnthropicProvider(AIProvider):
    key = "anthropic"
    sdk_module = "anthropic"
    label = "Anthropic"

    def missing_setting(self) -> str | None:
        if not settings.ANTHROPIC_API_KEY:
            return "ANTHROPIC_API_KEY"
        if not settings.ANTHROPIC_MODELS:
            return "ANTHROPIC_MODELS"
        return None

    def models(self) -> list[str]:
        return list(settings.ANTHROPIC_MODELS)

    def _client(self) -> anthropic.AsyncAnthropic:
        return _client(
            settings.ANTHROPIC_BASE_URL,
            settings.ANTHROPIC_API_KEY,
            float(settings.PROVIDER_TIMEOUT),
        )

    def warm_up(self) -> None:
        self._client()  # builds every shard of the round robin

    async def agenerate(
        self, request: GenerationRequest, *, on_token: Callable[[str], None] | None = None
    ) -> Generation:
        model = request.model or self.models()[0]
        client = self._client()
        arguments: dict[str, Any] = {
            "model": model,
            "max_tokens": MAX_OUTPUT_TOKENS,
            "system": request.system,
            "messages": [
                {"role": message.role, "content": message.content} for message in request.messages
            ],
        }
        context = CallContext(
            provider_label=self.label,
            key_setting="ANTHROPIC_API_KEY",
            model=model,
            secrets=(settings.ANTHROPIC_API_KEY,),
        )

        async def call(token_callback: TokenCallback | None) -> Generation:
            if token_callback is None:
                message = await client.messages.create(**arguments)
            else:
                async with client.messages.stream(**arguments) as stream:
                    async for piece in stream.text_stream:
                        if piece:
                            token_callback(piece)
                    message = await stream.get_final_message()
            text = "".join(
                block.text for block in message.content if getattr(block, "type", "") == "text"
            )
            return Generation(
                text=text,
                model=model,
                input_tokens=message.usage.input_tokens,
                output_tokens=message.usage.output_tokens,
            )

        texts = [request.system] + [message.content for message in request.messages]
        return await call_with_retries(
            call,
            provider_key=self.key,
            context=context,
            sdk=_sdk(),
            on_token=on_token,
            tokens=limits.estimate_tokens(texts),
        )
