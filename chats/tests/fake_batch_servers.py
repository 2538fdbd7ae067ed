"""A fake provider that also speaks the batch APIs (economy mode), for their official SDKs.

`FakeBatchServer` is a FakeAIServer (every real-time endpoint still answers, and is
counted) plus:

- OpenAI (``/v1``) and Azure OpenAI (``/openai``, ``?api-version=``) files and batches:
  ``POST /files`` (multipart, purpose "batch"), ``GET /files/{id}/content``,
  ``POST /batches``, ``GET /batches`` (newest first), ``GET /batches/{id}``,
  ``POST /batches/{id}/cancel``;
- Anthropic message batches: ``POST /v1/messages/batches``, ``GET /v1/messages/batches``,
  ``GET /v1/messages/batches/{id}``, ``GET /v1/messages/batches/{id}/results`` (JSONL),
  ``POST /v1/messages/batches/{id}/cancel``.

Answers are those of the real-time endpoints (`compose_answer`), so an economy batch and a
real-time one store the same text. Control:
- ``auto_complete`` (default True): a batch ends, every request answered, the first time it
  is retrieved; False: it stays in progress until `finish()` (or `advance`);
- ``advance(batch_id, n)``: n more requests answered (kept until the batch ends);
- ``expire_next``: the next N batches to end end expired (requests not answered yet get
  ``batch_expired`` / ``expired``);
- a question containing ``[batch-error]`` is answered with an error (400) every time;
  one containing ``[batch-flaky]`` errors on its first attempt (custom_id ``...-a1``).
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from chats.tests.fake_answers import compose_answer, count_tokens, text_of
from chats.tests.fake_servers import FakeAIServer, _Handler, _Server

_OPENAI = re.compile(r"^/(?:v1|openai)/(files|batches)(?:/([^/]+))?(?:/(content|cancel))?$")
_ANTHROPIC = re.compile(r"^/v1/messages/batches(?:/([^/]+))?(?:/(results|cancel))?$")
_REALTIME = re.compile(r"^/(?:v1/)?(?:chat/completions|messages)$|/chat/completions$")


@dataclass
class FakeBatch:
    id: str
    kind: str  # "openai" or "anthropic"
    requests: list[dict]  # JSONL lines (openai) or {custom_id, params} (anthropic)
    created_at: float
    metadata: dict = field(default_factory=dict)
    input_file_id: str = ""
    status: str = "in_progress"
    answered: int = 0  # requests processed (in order)
    cancelling: bool = False
    output_file_id: str = ""
    error_file_id: str = ""
    results: list[dict] = field(default_factory=list)  # anthropic results lines
    ended_as: str = ""  # "completed", "expired", "cancelled"


class FakeBatchServer(FakeAIServer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.auto_complete = True
        self.expire_next = 0
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, FakeBatch] = {}
        self._ids = itertools.count(1)
        self._batch_lock = threading.Lock()

    def start(self) -> FakeBatchServer:
        self._stopping.clear()
        self._httpd = _Server((self.host, self.port), _BatchHandler)
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    # --- inspection ----------------------------------------------------------------------
    @property
    def realtime_calls(self) -> int:
        """Real-time completion calls (chat completions, messages) the server received."""
        return sum(1 for r in self.requests if _REALTIME.search(r.path))

    def submitted_custom_ids(self) -> list[str]:
        with self._batch_lock:
            return [r["custom_id"] for batch in self.batches.values() for r in batch.requests]

    # --- control -------------------------------------------------------------------------
    def advance(self, batch_id: str, count: int) -> None:
        with self._batch_lock:
            batch = self.batches[batch_id]
            batch.answered = min(batch.answered + count, len(batch.requests))

    def finish(self) -> None:
        """Every batch in progress ends, its requests answered (or expired)."""
        with self._batch_lock:
            for batch in self.batches.values():
                if not batch.ended_as:
                    self._end(batch, "completed")

    # --- internals (under _batch_lock) ---------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    def _on_retrieve(self, batch: FakeBatch) -> None:
        if batch.ended_as:
            return
        if batch.cancelling:
            self._end(batch, "cancelled")
        elif self.auto_complete:
            self._end(batch, "completed")

    def _end(self, batch: FakeBatch, how: str) -> None:
        if how == "completed" and self.expire_next > 0:
            self.expire_next -= 1
            how = "expired"
        if how == "completed":
            batch.answered = len(batch.requests)
        batch.ended_as = how
        if batch.kind == "openai":
            self._end_openai(batch, how)
        else:
            self._end_anthropic(batch, how)

    def _answer(self, custom_id: str, body: dict) -> tuple[str | None, str, int, int]:
        """(text or None, error message, input tokens, output tokens) for one request."""
        messages = list(body.get("messages") or [])
        system = text_of(body.get("system", "")) or "\n".join(
            text_of(m.get("content")) for m in messages if m.get("role") == "system"
        )
        chat = [m for m in messages if m.get("role") != "system"]
        question = text_of(chat[-1].get("content")) if chat else ""
        if "[batch-error]" in question or (
            "[batch-flaky]" in question and custom_id.endswith("-a1")
        ):
            return None, "Invalid request: the fake refuses this one.", 0, 0
        text = compose_answer(system, chat)
        tokens_in = sum(count_tokens(text_of(m.get("content"))) for m in messages)
        tokens_in += count_tokens(text_of(body.get("system", "")))
        return text, "", tokens_in, count_tokens(text)

    def _end_openai(self, batch: FakeBatch, how: str) -> None:
        out, err = [], []
        for index, line in enumerate(batch.requests):
            custom_id = line["custom_id"]
            if index >= batch.answered:
                code = "batch_expired" if how == "expired" else "batch_cancelled"
                message = (
                    "This request could not be executed before the completion window expired."
                    if how == "expired"
                    else "This request was cancelled."
                )
                err.append(
                    {
                        "id": f"req_{index}",
                        "custom_id": custom_id,
                        "response": None,
                        "error": {"code": code, "message": message},
                    }
                )
                continue
            body = line["body"]
            text, error, tokens_in, tokens_out = self._answer(custom_id, body)
            if text is None:
                err.append(
                    {
                        "id": f"req_{index}",
                        "custom_id": custom_id,
                        "error": None,
                        "response": {
                            "status_code": 400,
                            "request_id": f"r{index}",
                            "body": {
                                "error": {
                                    "message": error,
                                    "type": "invalid_request_error",
                                    "code": "invalid_request",
                                }
                            },
                        },
                    }
                )
                continue
            completion = {
                "id": f"chatcmpl-{index}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": {
                    "prompt_tokens": tokens_in,
                    "completion_tokens": tokens_out,
                    "total_tokens": tokens_in + tokens_out,
                },
            }
            out.append(
                {
                    "id": f"req_{index}",
                    "custom_id": custom_id,
                    "error": None,
                    "response": {"status_code": 200, "request_id": f"r{index}", "body": completion},
                }
            )
        if out:
            batch.output_file_id = self._new_id("file")
            self.files[batch.output_file_id] = _jsonl(out)
        if err:
            batch.error_file_id = self._new_id("file")
            self.files[batch.error_file_id] = _jsonl(err)
        batch.status = how

    def _end_anthropic(self, batch: FakeBatch, how: str) -> None:
        results = []
        for index, request in enumerate(batch.requests):
            custom_id = request["custom_id"]
            if index >= batch.answered:
                kind = "expired" if how == "expired" else "canceled"
                results.append({"custom_id": custom_id, "result": {"type": kind}})
                continue
            params = request["params"]
            text, error, tokens_in, tokens_out = self._answer(custom_id, params)
            if text is None:
                results.append(
                    {
                        "custom_id": custom_id,
                        "result": {
                            "type": "errored",
                            "error": {
                                "type": "error",
                                "error": {"type": "invalid_request_error", "message": error},
                            },
                        },
                    }
                )
                continue
            message = {
                "id": f"msg_{index}",
                "type": "message",
                "role": "assistant",
                "model": params.get("model", ""),
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
            }
            results.append(
                {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}
            )
        batch.results = results
        batch.status = "ended"

    def openai_batch(self, batch: FakeBatch, root: str) -> dict:
        total = len(batch.requests)
        failed = completed = 0
        if batch.ended_as:
            lines = self.files.get(batch.error_file_id, b"").decode().splitlines()
            failed = len([line for line in lines if line.strip()])
            completed = total - failed
        status = batch.status
        if batch.cancelling and not batch.ended_as:
            status = "cancelling"
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": batch.input_file_id,
            "completion_window": "24h",
            "status": status,
            "output_file_id": batch.output_file_id or None,
            "error_file_id": batch.error_file_id or None,
            "created_at": int(batch.created_at),
            "metadata": batch.metadata,
            "request_counts": {"total": total, "completed": completed, "failed": failed},
        }

    def anthropic_batch(self, batch: FakeBatch, root: str) -> dict:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.ended_as:
            for line in batch.results:
                counts[line["result"]["type"]] += 1
        else:
            counts["processing"] = len(batch.requests)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(batch.created_at))
        status = batch.status
        if batch.cancelling and not batch.ended_as:
            status = "canceling"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": created,
            "expires_at": created,
            "ended_at": created if batch.ended_as else None,
            "cancel_initiated_at": created if batch.cancelling else None,
            "archived_at": None,
            "results_url": f"{root}/v1/messages/batches/{batch.id}/results"
            if batch.ended_as
            else None,
        }


def _jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


class _BatchHandler(_Handler):
    server: _Server

    def _route(self, method: str) -> bool:
        """Serve a batch-API request; False when the path is not one (real time)."""
        path = urlsplit(self.path).path
        openai = _OPENAI.match(path)
        anthropic = _ANTHROPIC.match(path)
        if not (openai or anthropic):
            return False
        fake: FakeBatchServer = self.server.fake  # type: ignore[assignment]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        root = f"http://{self.headers.get('Host', fake.host)}"
        with fake._batch_lock:
            if openai:
                self._openai_batches(fake, method, openai, raw, root)
            else:
                self._anthropic_batches(fake, method, anthropic, raw, root)
        return True

    def do_GET(self) -> None:  # noqa: N802
        if not self._route("GET"):
            super().do_GET()

    def do_POST(self) -> None:  # noqa: N802
        if not self._route("POST"):
            super().do_POST()

    def _missing(self) -> None:
        self._send_json(404, {"error": {"message": "No such object", "type": "not_found"}})

    def _openai_batches(self, fake, method, match, raw, root) -> None:
        kind, object_id, action = match.groups()
        if kind == "files" and method == "POST" and object_id is None:
            content = _multipart_file(self.headers.get("Content-Type", ""), raw)
            file_id = fake._new_id("file")
            fake.files[file_id] = content
            self._send_json(
                200,
                {
                    "id": file_id,
                    "object": "file",
                    "bytes": len(content),
                    "created_at": int(time.time()),
                    "filename": "batch.jsonl",
                    "purpose": "batch",
                    "status": "processed",
                },
            )
        elif kind == "files" and method == "GET" and action == "content":
            if object_id not in fake.files:
                return self._missing()
            data = fake.files[object_id]
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif kind == "batches" and method == "POST" and object_id is None:
            body = json.loads(raw or b"{}")
            content = fake.files.get(body.get("input_file_id", ""))
            if content is None:
                return self._missing()
            lines = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
            batch = FakeBatch(
                id=fake._new_id("batch"),
                kind="openai",
                requests=lines,
                created_at=time.time(),
                metadata=body.get("metadata") or {},
                input_file_id=body["input_file_id"],
            )
            fake.batches[batch.id] = batch
            self._send_json(200, fake.openai_batch(batch, root))
        elif kind == "batches" and method == "GET" and object_id is None:
            found = [b for b in fake.batches.values() if b.kind == "openai"]
            found.sort(key=lambda b: b.id, reverse=True)
            data = [fake.openai_batch(b, root) for b in found]
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                },
            )
        elif kind == "batches" and object_id in fake.batches:
            batch = fake.batches[object_id]
            if method == "POST" and action == "cancel":
                if not batch.ended_as:
                    batch.cancelling = True
            elif method == "GET":
                fake._on_retrieve(batch)
            self._send_json(200, fake.openai_batch(batch, root))
        else:
            self._missing()

    def _anthropic_batches(self, fake, method, match, raw, root) -> None:
        object_id, action = match.groups()
        if method == "POST" and object_id is None:
            body = json.loads(raw or b"{}")
            batch = FakeBatch(
                id=fake._new_id("msgbatch"),
                kind="anthropic",
                requests=list(body.get("requests") or []),
                created_at=time.time(),
            )
            fake.batches[batch.id] = batch
            self._send_json(200, fake.anthropic_batch(batch, root))
        elif method == "GET" and object_id is None:
            found = [b for b in fake.batches.values() if b.kind == "anthropic"]
            found.sort(key=lambda b: b.id, reverse=True)
            data = [fake.anthropic_batch(b, root) for b in found]
            self._send_json(
                200,
                {
                    "data": data,
                    "has_more": False,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                },
            )
        elif object_id in fake.batches:
            batch = fake.batches[object_id]
            if method == "GET" and action == "results":
                if not batch.ended_as:
                    return self._missing()
                data = _jsonl(batch.results)
                self.send_response(200)
                self.send_header("Content-Type", "application/binary")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if method == "POST" and action == "cancel":
                if not batch.ended_as:
                    batch.cancelling = True
            elif method == "GET":
                fake._on_retrieve(batch)
            self._send_json(200, fake.anthropic_batch(batch, root))
        else:
            self._missing()


def _multipart_file(content_type: str, raw: bytes) -> bytes:
    """The `file` part of a multipart/form-data body."""
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw, policy=email.policy.HTTP
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True) or b""
    return b""
