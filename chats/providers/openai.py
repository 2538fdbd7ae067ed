"""OpenAI-protocol providers through the official `openai` SDK: OpenAI itself, Azure
OpenAI (deployments are the "models"), and any OpenAI-compatible server (Ollama, vLLM,
llama.cpp server, ...) at COMPATIBLE_BASE_URL."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings

from chats import aio
from chats.errors import ProviderError
from chats.http import CLIENT_SHARDS, ssl_context
from chats.providers import limits
from chats.providers.base import AIProvider, Generation, GenerationRequest
from chats.providers.retry import CallContext, TokenCallback, call_with_retries

if TYPE_CHECKING:
    import openai


def _sdk() -> Any:
    """The `openai` SDK, imported on first use (see AIProvider.sdk_module)."""
    return importlib.import_module("openai")


# Sent when a compatible server needs no key: the SDK refuses to build a client without one.
DUMMY_API_KEY = "not-needed"


def _openai_client(base_url: str, api_key: str, timeout: float) -> openai.AsyncOpenAI:
    # Clients per provider loop and settings values (tests override settings; a new value
    # gets new clients), sharded so that no connection pool grows large (see
    # chats.aio.round_robin). Retries are ours: max_retries=0.
    return aio.round_robin(
        ("openai", base_url, api_key, timeout),
        lambda: _sdk().AsyncOpenAI(
            api_key=api_key,
            base_url=base_url or None,
            timeout=timeout,
            max_retries=0,
            http_client=_sdk().DefaultAioHttpClient(verify=ssl_context()),
        ),
        CLIENT_SHARDS,
    )


def _azure_client(endpoint: str, api_key: str, api_version: str, timeout: float) -> Any:
    return aio.round_robin(
        ("azure", endpoint, api_key, api_version, timeout),
        lambda: _sdk().AsyncAzureOpenAI(
            azure_endpoint=endpoint,
            api_key=api_key,
            api_version=api_version,
            timeout=timeout,
            max_retries=0,
            http_client=_sdk().DefaultAioHttpClient(verify=ssl_context()),
        ),
        CLIENT_SHARDS,
    )


def _count(value: Any) -> int | None:
    """A token count from the response's usage, when it is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _OpenAIProtocolProvider(AIProvider):
    sdk_module = "openai"
    key_setting: ClassVar[str]
    model_word: ClassVar[str] = "model"

    def _client(self) -> Any:
        raise NotImplementedError

    def warm_up(self) -> None:
        self._client()  # builds every shard of the round robin

    def _api_key(self) -> str:
        raise NotImplementedError

    async def agenerate(
        self, request: GenerationRequest, *, on_token: Callable[[str], None] | None = None
    ) -> Generation:
        model = request.model or self.models()[0]
        client = self._client()
        messages = [{"role": "system", "content": request.system}] + [
            {"role": message.role, "content": message.content} for message in request.messages
        ]
        context = CallContext(
            provider_label=str(self.label),
            key_setting=self.key_setting,
            model=model,
            model_word=self.model_word,
            secrets=(self._api_key(),),
        )

        async def call(token_callback: TokenCallback | None) -> Generation:
            if token_callback is None:
                return await self._complete(client, model, messages)
            return await self._stream(client, model, messages, token_callback)

        return await call_with_retries(
            call,
            provider_key=self.key,
            context=context,
            sdk=_sdk(),
            on_token=on_token,
            tokens=limits.estimate_tokens([message["content"] for message in messages]),
        )

    async def _complete(self, client: Any, model: str, messages: list[dict]) -> Generation:
        # The SDK's own request path (auth, errors, retries-off, Azure's deployment URL)
        # without `create`'s parameter transform and with the JSON body as it came
        # (cast_to=object): building the typed ChatCompletion model costs more CPU than
        # the rest of the call. The four fields we use are read and checked here.
        completion = await client.post(
            "/chat/completions", body={"model": model, "messages": messages}, cast_to=object
        )
        try:
            choices = completion.get("choices") or []
            text = choices[0]["message"].get("content") if choices else None
            usage = completion.get("usage") or {}
        except (AttributeError, KeyError, TypeError):
            raise ProviderError(
                f"{self.label}: the provider answered in an unexpected format."
            ) from None
        if not choices:
            raise ProviderError(f"{self.label}: the provider returned no answer.")
        return Generation(
            text=text if isinstance(text, str) else "",
            model=model,
            input_tokens=_count(usage.get("prompt_tokens")),
            output_tokens=_count(usage.get("completion_tokens")),
        )

    async def _stream(
        self, client: Any, model: str, messages: list[dict], on_token: TokenCallback
    ) -> Generation:
        pieces: list[str] = []
        usage = None
        stream = await client.chat.completions.create(
            model=model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage  # the final chunk (include_usage) has no choices
                for choice in chunk.choices:
                    piece = choice.delta.content if choice.delta else None
                    if piece:
                        pieces.append(piece)
                        on_token(piece)
        return Generation(
            text="".join(pieces),
            model=model,
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
        )


class OpenAIProvider(_OpenAIProtocolProvider):
    key = "openai"
    label = "OpenAI"
    key_setting = "OPENAI_API_KEY"

    def missing_setting(self) -> str | None:
        if not settings.OPENAI_API_KEY:
            return "OPENAI_API_KEY"
        if not settings.OPENAI_MODELS:
            return "OPENAI_MODELS"
        return None

    def models(self) -> list[str]:
        return list(settings.OPENAI_MODELS)

    def _api_key(self) -> str:
        return settings.OPENAI_API_KEY

    def _client(self) -> Any:
        return _openai_client(
            settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY, float(settings.PROVIDER_TIMEOUT)
        )


class AzureOpenAIProvider(_OpenAIProtocolProvider):
    key = "azure"
    label = "Azure OpenAI"
    key_setting = "AZURE_OPENAI_API_KEY"
    model_word = "deployment"

    def missing_setting(self) -> str | None:
        for name in (
            "AZURE_OPENAI_ENDPOINT",
            "AZURE_OPENAI_API_KEY",
            "AZURE_OPENAI_API_VERSION",
            "AZURE_OPENAI_DEPLOYMENTS",
        ):
            if not getattr(settings, name):
                return name
        return None

    def models(self) -> list[str]:
        return list(settings.AZURE_OPENAI_DEPLOYMENTS)

    def _api_key(self) -> str:
        return settings.AZURE_OPENAI_API_KEY

    def _client(self) -> Any:
        return _azure_client(
            settings.AZURE_OPENAI_ENDPOINT,
            settings.AZURE_OPENAI_API_KEY,
            settings.AZURE_OPENAI_API_VERSION,
            float(settings.PROVIDER_TIMEOUT),
        )


class CompatibleProvider(_OpenAIProtocolProvider):
    """Any server speaking the OpenAI chat completions protocol. Any model name the server
    knows is accepted (chats.services.check_chat_settings); COMPATIBLE_MODELS lists the
    ones offered in forms, the first being the default."""

    key = "compatible"
    label = "OpenAI-compatible server"
    key_setting = "COMPATIBLE_API_KEY"

    def missing_setting(self) -> str | None:
        if not settings.COMPATIBLE_BASE_URL:
            return "COMPATIBLE_BASE_URL"
        if not settings.COMPATIBLE_MODELS:
            return "COMPATIBLE_MODELS"
        return None

    def models(self) -> list[str]:
        return list(settings.COMPATIBLE_MODELS)

    def _api_key(self) -> str:
        return settings.COMPATIBLE_API_KEY

    def _client(self) -> Any:
        return _openai_client(
            settings.COMPATIBLE_BASE_URL,
            settings.COMPATIBLE_API_KEY or DUMMY_API_KEY,
            float(settings.PROVIDER_TIMEOUT),
        )
