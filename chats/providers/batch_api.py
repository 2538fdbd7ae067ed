"""The providers' batch APIs (economy mode), through their official SDKs.

- OpenAI and Azure OpenAI: the requests as a JSONL file (`files.create`, purpose
  "batch"), then `batches.create` on it; `batches.retrieve` to poll; the output *and*
  error files read with `files.content`; `batches.cancel`.
- Anthropic: `messages.batches.create` with the requests inline;
  `messages.batches.retrieve`, `messages.batches.results`, `messages.batches.cancel`.

Every request carries a `custom_id` (the row and attempt, and whether it is the AI judge's
call on that answer, chosen by the caller), and
every submission a local id: in the batch's metadata (OpenAI, Azure), or as the prefix of
each custom_id (Anthropic's message batches have no metadata), so that a caller that died
between the provider call and saving the provider's id can find the batch it made
(`find`). Each call is one attempt (no retry loop): the caller tries again at its next
poll. Errors are chats.errors types, with the messages of chats.providers.retry.

Every coroutine here runs on the provider loop (`chats.aio`), like the providers' own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.conf import settings

from chats.errors import ProviderError, TransientProviderError
from chats.providers import get_provider
from chats.providers.base import GenerationRequest
from chats.providers.retry import CallContext, classify_sdk_error

# Metadata key (OpenAI, Azure) that holds the caller's local id of a submission.
METADATA_KEY = "batchchat_id"


@dataclass(frozen=True)
class BatchState:
    """A provider batch as the provider reports it."""

    status: str  # the provider's own word
    ended: bool  # no more results will come
    succeeded: int = 0
    failed: int = 0  # errored, expired or cancelled requests
    total: int = 0
    output_file_id: str = ""
    error_file_id: str = ""
    error: str = ""  # why the whole batch failed, when it did


@dataclass(frozen=True)
class BatchResult:
    """One request's result: the model's text, or why there is none."""

    custom_id: str
    text: str | None = None
    model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str = ""
    kind: str = "succeeded"  # "succeeded", "errored", "expired", "cancelled"


@dataclass
class Submitted:
    provider_batch_id: str
    input_file_id: str = ""
    status: str = ""
    extra: dict = field(default_factory=dict)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class BatchAPI:
    """One provider's batch API. Limits are the provider's (requests and bytes per
    batch); ECONOMY_MAX_REQUESTS, when set, lowers the request limit (tests)."""

    provider_key: ClassVar[str]
    max_requests: ClassVar[int]
    max_bytes: ClassVar[int]

    def __init__(self) -> None:
        self.provider = get_provider(self.provider_key)

    def request_limit(self) -> int:
        configured = int(getattr(settings, "ECONOMY_MAX_REQUESTS", 0) or 0)
        return min(self.max_requests, configured) if configured > 0 else self.max_requests

    def custom_id(self, local_id: str, row: int, attempt: int, *, judge: bool = False) -> str:
        """The request's id: row and attempt, and "-j" for the AI judge's call on it."""
        return f"r{row}-a{attempt}{'-j' if judge else ''}"

    def body(self, request: GenerationRequest) -> dict:
        """The request as the provider's batch API takes it (JSON)."""
        raise NotImplementedError

    def size(self, custom_id: str, body: dict) -> int:
        """Bytes one request takes in a submission (its JSONL line)."""
        return len(json.dumps(self.line(custom_id, body)).encode()) + 1

    def line(self, custom_id: str, body: dict) -> dict:
        raise NotImplementedError

    async def submit(self, *, local_id: str, requests: Sequence[tuple[str, dict]]) -> Submitted:
        raise NotImplementedError

    async def find(
        self,
        *,
        local_id: str,
        created_after: float,
        count: int,
        known: frozenset[str] = frozenset(),
    ) -> str | None:
        """The provider's id of the batch submitted with `local_id` (of `count` requests,
        at `created_after` epoch seconds or later), if it exists; `known`: provider ids
        that belong to other submissions (never taken)."""
        raise NotImplementedError

    async def retrieve(self, provider_batch_id: str) -> BatchState:
        raise NotImplementedError

    async def results(self, provider_batch_id: str, state: BatchState) -> list[BatchResult]:
        raise NotImplementedError

    async def cancel(self, provider_batch_id: str) -> None:
        raise NotImplementedError

    # -- errors --------------------------------------------------------------------------
    def _context(self) -> CallContext:
        raise NotImplementedError

    def _sdk(self) -> Any:
        raise NotImplementedError

    def error(self, exc: Exception) -> Exception:
        """An SDK exception as a chats.errors type (transient: try again later)."""
        if isinstance(exc, self._sdk().NotFoundError):
            return ProviderError(
                f"{self.provider.label}: the batch API answered 404 Not Found (the provider "
                "batch or file is unknown there)."
            )
        failed = classify_sdk_error(exc, self._sdk(), self._context())
        if failed is None:
            return exc
        if failed.retryable:
            return TransientProviderError(failed.message, retry_after=failed.retry_after)
        return ProviderError(failed.message)


class OpenAIBatchAPI(BatchAPI):
    """OpenAI's Batch API: 50,000 requests and 200 MB per input file."""

    provider_key = "openai"
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024
    endpoint = "/v1/chat/completions"

    def _client(self) -> Any:
        return self.provider._client()

    def _sdk(self) -> Any:
        import openai

        return openai

    def _context(self) -> CallContext:
        return CallContext(
            provider_label=str(self.provider.label),
            key_setting=self.provider.key_setting,
            model="",
            model_word=self.provider.model_word,
            secrets=(self.provider._api_key(),),
        )

    def body(self, request: GenerationRequest) -> dict:
        model = request.model or self.provider.models()[0]
        messages = [{"role": "system", "content": request.system}] + [
            {"role": message.role, "content": message.content} for message in request.messages
        ]
        return {"model": model, "messages": messages}

    def line(self, custom_id: str, body: dict) -> dict:
        return {"custom_id": custom_id, "method": "POST", "url": self.endpoint, "body": body}

    async def submit(self, *, local_id: str, requests: Sequence[tuple[str, dict]]) -> Submitted:
        client = self._client()
        data = "".join(
            json.dumps(self.line(custom_id, body)) + "\n" for custom_id, body in requests
        ).encode()
        try:
            uploaded = await client.files.create(
                file=(f"batchchat-{local_id}.jsonl", data, "application/jsonl"), purpose="batch"
            )
            created = await client.batches.create(
                input_file_id=uploaded.id,
                endpoint=self.endpoint,
                completion_window="24h",
                metadata={METADATA_KEY: local_id},
            )
        except self._sdk().APIError as exc:
            raise self.error(exc) from None
        return Submitted(
            provider_batch_id=created.id, input_file_id=uploaded.id, status=created.status
        )

    async def find(
        self,
        *,
        local_id: str,
        created_after: float,
        count: int,
        known: frozenset[str] = frozenset(),
    ) -> str | None:
        client = self._client()
        try:
            async for found in client.batches.list(limit=100):
                if (found.metadata or {}).get(METADATA_KEY) == local_id:
                    return found.id
                if found.created_at and found.created_at < created_after:
                    return None  # newest first: older batches cannot be ours
        except self._sdk().APIError as exc:
            raise self.error(exc) from None
        return None

    async def retrieve(self, provider_batch_id: str) -> BatchState:
        try:
            found = await self._client().batches.retrieve(provider_batch_id)
        except self._sdk().APIError as exc:
            raise self.error(exc) from None
        counts = found.request_counts
        errors = getattr(found, "errors", None)
        messages = [e.message for e in (getattr(errors, "data", None) or []) if e.message]
        return BatchState(
            status=found.status,
            ended=found.status in ("completed", "expired", "cancelled", "failed"),
            succeeded=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            total=counts.total if counts else 0,
            output_file_id=found.output_file_id or "",
            error_file_id=found.error_file_id or "",
            error="; ".join(messages)[:2000],
        )

    async def results(self, provider_batch_id: str, state: BatchState) -> list[BatchResult]:
        results: list[BatchResult] = []
        for file_id in (state.output_file_id, state.error_file_id):
            if not file_id:
                continue
            try:
                content = await self._client().files.content(file_id)
            except self._sdk().APIError as exc:
                raise self.error(exc) from None
            for raw in content.text.splitlines():
                if raw.strip():
                    results.append(self._result(json.loads(raw)))
        return results

    def _result(self, line: dict) -> BatchResult:
        custom_id = str(line.get("custom_id", ""))
        response = line.get("response") or {}
        error = line.get("error") or {}
        body = response.get("body") or {}
        status = response.get("status_code")
        if error or (status and status != 200):
            message = (error or (body.get("error") or {})).get("message") or ""
            code = (error or (body.get("error") or {})).get("code") or status or ""
            kind = "expired" if code == "batch_expired" else "errored"
            if code == "batch_cancelled":
                kind = "cancelled"
            return BatchResult(
                custom_id=custom_id,
                error=f"{self.provider.label}: {message or code or 'the request failed'}",
                kind=kind,
            )
        choices = body.get("choices") or []
        if not choices:
            return BatchResult(
                custom_id=custom_id,
                error=f"{self.provider.label}: the provider returned no answer.",
                kind="errored",
            )
        text = (choices[0].get("message") or {}).get("content")
        usage = body.get("usage") or {}
        return BatchResult(
            custom_id=custom_id,
            text=text if isinstance(text, str) else "",
            model=str(body.get("model") or ""),
            input_tokens=_count(usage.get("prompt_tokens")),
            output_tokens=_count(usage.get("completion_tokens")),
        )

    async def cancel(self, provider_batch_id: str) -> None:
        try:
            await self._client().batches.cancel(provider_batch_id)
        except self._sdk().APIError as exc:
            raise self.error(exc) from None


class AzureBatchAPI(OpenAIBatchAPI):
    """Azure OpenAI's Batch API (a Global-Batch deployment): the same protocol under the
    resource's /openai path; the JSONL's model is the deployment."""

    provider_key = "azure"
    max_requests = 100_000
    endpoint = "/chat/completions"


class AnthropicBatchAPI(BatchAPI):
    """Anthropic's Message Batches: 100,000 requests or 256 MB per batch. No metadata: the
    local id is the prefix of every custom_id (`find` reads it from the results)."""

    provider_key = "anthropic"
    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024

    def _client(self) -> Any:
        from chats.providers.anthropic import _client

        return _client(
            settings.ANTHROPIC_BASE_URL,
            settings.ANTHROPIC_API_KEY,
            float(settings.PROVIDER_TIMEOUT),
        )

    def _sdk(self) -> Any:
        import anthropic

        return anthropic

    def _context(self) -> CallContext:
        return CallContext(
            provider_label=str(self.provider.label),
            key_setting="ANTHROPIC_API_KEY",
            model="",
            secrets=(settings.ANTHROPIC_API_KEY,),
        )

    def custom_id(self, local_id: str, row: int, attempt: int, *, judge: bool = False) -> str:
        # Anthropic: ^[a-zA-Z0-9_-]{1,64}$. The local id (32 hex) lets `find` match.
        return f"{local_id[:32]}_{super().custom_id(local_id, row, attempt, judge=judge)}"

    def body(self, request: GenerationRequest) -> dict:
        from chats.providers.anthropic import MAX_OUTPUT_TOKENS

        return {
            "model": request.model or self.provider.models()[0],
            "max_tokens": MAX_OUTPUT_TOKENS,
            "system": request.system,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }

    def line(self, custom_id: str, body: dict) -> dict:
        return {"custom_id": custom_id, "params": body}

    async def submit(self, *, local_id: str, requests: Sequence[tuple[str, dict]]) -> Submitted:
        try:
            created = await self._client().messages.batches.create(
                requests=[self.line(custom_id, body) for custom_id, body in requests]
            )
        except self._sdk().APIError as exc:
            raise self.error(exc) from None
        return Submitted(provider_batch_id=created.id, status=created.processing_status)

    async def find(
        self,
        *,
        local_id: str,
        created_after: float,
        count: int,
        known: frozenset[str] = frozenset(),
    ) -> str | None:
        """A batch created since `created_after`: once ended, its results' custom_ids
        carry `local_id`; before that (results are not readable yet), one with `count`
        requests is taken for ours."""
        client = self._client()
        prefix = f"{local_id[:32]}_"
        try:
            async for found in client.messages.batches.list(limit=100):
                created = found.created_at.timestamp() if found.created_at else 0
                if created and created < created_after:
                    return None  # newest first: older batches cannot be ours
                if found.id in known:
                    continue
                if found.processing_status != "ended":
                    counts = found.request_counts
                    total = counts.processing + counts.succeeded + counts.errored
                    if total + counts.expired + counts.canceled == count:
                        return found.id
                    continue
                async for result in await client.messages.batches.results(found.id):
                    if result.custom_id.startswith(prefix):
                        return found.id
                    break
        except self._sdk().APIError as exc:
            raise self.error(exc) from None
        return None

    async def retrieve(self, provider_batch_id: str) -> BatchState:
        try:
            found = await self._client().messages.batches.retrieve(provider_batch_id)
        except self._sdk().APIError as exc:
            raise self.error(exc) from None
        counts = found.request_counts
        failed = counts.errored + counts.expired + counts.canceled
        return BatchState(
            status=found.processing_status,
            ended=found.processing_status == "ended",
            succeeded=counts.succeeded,
            failed=failed,
            total=counts.processing + counts.succeeded + failed,
        )

    async def results(self, provider_batch_id: str, state: BatchState) -> list[BatchResult]:
        results = []
        label = self.provider.label
        try:
            async for line in await self._client().messages.batches.results(provider_batch_id):
                result = line.result
                kind = result.type
                if kind == "succeeded":
                    message = result.message
                    text = "".join(
                        block.text
                        for block in message.content
                        if getattr(block, "type", "") == "text"
                    )
                    results.append(
                        BatchResult(
                            custom_id=line.custom_id,
                            text=text,
                            model=message.model,
                            input_tokens=message.usage.input_tokens,
                            output_tokens=message.usage.output_tokens,
                        )
                    )
                    continue
                if kind == "errored":
                    error = getattr(result.error, "error", None)
                    reason = getattr(error, "message", "") or "the request failed"
                elif kind == "expired":
                    reason = "the request expired before it was processed (24 h)"
                else:
                    reason = "the request was cancelled"
                results.append(
                    BatchResult(
                        custom_id=line.custom_id,
                        error=f"{label}: {reason}",
                        kind="cancelled" if kind == "canceled" else kind,
                    )
                )
        except self._sdk().APIError as exc:
            raise self.error(exc) from None
        return results

    async def cancel(self, provider_batch_id: str) -> None:
        try:
            await self._client().messages.batches.cancel(provider_batch_id)
        except self._sdk().APIError as exc:
            raise self.error(exc) from None


BATCH_APIS: dict[str, type[BatchAPI]] = {
    "openai": OpenAIBatchAPI,
    "azure": AzureBatchAPI,
    "anthropic": AnthropicBatchAPI,
}


def supports_batch_api(provider_key: str) -> bool:
    return provider_key in BATCH_APIS


def batch_api(provider_key: str) -> BatchAPI:
    """The batch API of `provider_key` (ProviderNotConfigured when the provider is not
    configured; ProviderError when it has none)."""
    cls = BATCH_APIS.get(provider_key)
    if cls is None:
        raise ProviderError(
            f"The AI provider '{provider_key}' has no batch API: economy mode works with "
            f"{', '.join(sorted(BATCH_APIS))}."
        )
    return cls()
