"""A fake AI provider server on 127.0.0.1 that speaks enough of the OpenAI, Azure OpenAI and
Anthropic protocols for their official SDKs, so tests exercise the real client code.

Standard library only (no Django), so it also runs as its own process:

    python -m chats.tests.fake_servers --port 0 --latency 0.2 --fault-rate 0.3

prints its base URL (``http://127.0.0.1:PORT``) as the first line of stdout, serves until
SIGTERM/SIGINT, then exits 0. `stop()` then `start()` is an outage: while stopped, new
connections are refused and requests on kept-alive connections are dropped unanswered.

Endpoints (all answer deterministically):
- ``POST /v1/chat/completions``                                  OpenAI and compatible
- ``POST /openai/deployments/{deployment}/chat/completions``      Azure (``?api-version=``)
- ``POST /v1/messages``                                          Anthropic
Each accepts ``"stream": true`` (SSE). What they answer is chats.tests.fake_answers' (the
question echoed, the system prompt's first URL cited; a judge's JSON verdict). A model
named ``missing...`` answers 404 model not found.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chats.tests.fake_answers import chunks, compose_answer, count_tokens, text_of

# The key the chats tests configure the providers with: a secret that must never show up
# in an error message or a log line.
FAKE_API_KEY = "sk-test-SECRET-4f1c9e"

FAULT_KINDS = ("429", "500", "503", "400", "401", "hang", "stream-error")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]
    raw: str  # the full request line + headers + body, to search for leaked secrets


@dataclass
class Fault:
    """One injected failure: an HTTP status (with Retry-After for 429/503) or a hang."""

    kind: str  # one of FAULT_KINDS; "stream-error" breaks a stream after two text chunks
    retry_after: float | None = None  # seconds, sent as `Retry-After` (and retry-after-ms)
    retry_after_header: str | None = None  # a literal Retry-After value (e.g. an HTTP date)


@dataclass
class _Stats:
    in_flight: int = 0
    max_in_flight: int = 0
    completed: int = 0
    faults_served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung handler never keeps the process alive
    allow_reuse_address = True
    request_queue_size = 1024  # hundreds of clients connect at once in the benchmarks
    fake: FakeAIServer


class FakeAIServer:
    """Configurable fake. Use as a context manager, or start()/stop().

    latency: seconds each request waits before answering (concurrent requests overlap).
    fault_rate: fraction of requests that fail with one of `fault_kinds`, drawn from a
        random.Random(seed) under a lock, so a given order of requests is reproducible.
    fault_kinds: kinds drawn for fault_rate ("429", "500", "503", "400", "401", "hang").
    retry_after: the Retry-After seconds sent with injected 429/503.
    hang_seconds: how long a "hang" fault waits before answering 504 (longer than the
        client timeout in tests); cut short by stop().
    api_key: when set, requests without it (Bearer, `api-key` or `x-api-key`) get 401.
    stream_delay: seconds between streamed chunks.
    fail_next(...): queue explicit faults served to the next requests, in order.
    responder: when set, `responder(system, messages)` is the answer text instead of
        `compose_answer` (e.g. the JSON verdict of the guard's AI check).
    tokenizer: how the usage it reports counts tokens: "words" (the default), or an
        OpenAI encoding such as "o200k_base" (counted with bpe-openai, as OpenAI does, with
        its per-message overhead) for tests of the cost estimate.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        fault_kinds: tuple[str, ...] = ("429", "500"),
        retry_after: float | None = 0.05,
        hang_seconds: float = 30.0,
        seed: int = 0,
        api_key: str | None = None,
        stream_delay: float = 0.0,
        rate_limit_rpm: float | None = None,
        rate_limit_burst: int = 1,
        tokenizer: str = "words",
    ) -> None:
        unknown = set(fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.host = host
        self.port = port
        self.latency = latency
        self.fault_rate = fault_rate
        self.fault_kinds = tuple(fault_kinds)
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.api_key = api_key
        self.stream_delay = stream_delay
        # A provider's quota: requests beyond `rate_limit_rpm` a minute (evenly spaced,
        # `rate_limit_burst` at once) are answered 429 with the Retry-After to the next slot.
        self.rate_limit_rpm = rate_limit_rpm
        self.rate_limit_burst = rate_limit_burst
        self._rate_tat = 0.0
        self.rate_limited = 0  # requests answered 429 by the quota
        self.accepted_times: list[float] = []  # when requests within the quota arrived
        self.responder: Any = None
        self.tokenizer = tokenizer
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._stats = _Stats()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def count_tokens(self, text: str) -> int:
        if self.tokenizer == "words":
            return count_tokens(text)
        import bpe_openai

        return len(bpe_openai.get_encoding(self.tokenizer).encode_ordinary(text))

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> FakeAIServer:
        self._stopping.clear()
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes sleeping (latency / hang) handlers
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """For OPENAI_BASE_URL / COMPATIBLE_BASE_URL (the SDK appends /chat/completions)."""
        return f"{self.url}/v1"

    @property
    def azure_endpoint(self) -> str:
        return self.url

    @property
    def anthropic_base_url(self) -> str:
        """For ANTHROPIC_BASE_URL (the SDK appends /v1/messages)."""
        return self.url

    def configure(self, settings: Any, *, api_key: str = "test-key") -> None:
        """Point every network provider of a Django `settings` object (e.g. the pytest-django
        fixture) at this server, with `api_key`, and make retries fast."""
        settings.OPENAI_BASE_URL = self.openai_base_url
        settings.OPENAI_API_KEY = api_key
        settings.AZURE_OPENAI_ENDPOINT = self.azure_endpoint
        settings.AZURE_OPENAI_API_KEY = api_key
        settings.AZURE_OPENAI_DEPLOYMENTS = ["test-deployment"]
        settings.ANTHROPIC_BASE_URL = self.anthropic_base_url
        settings.ANTHROPIC_API_KEY = api_key
        settings.COMPATIBLE_BASE_URL = self.openai_base_url
        settings.COMPATIBLE_API_KEY = api_key
        settings.COMPATIBLE_MODELS = ["local-model"]
        settings.PROVIDER_BACKOFF_BASE = 0.001
        settings.PROVIDER_BACKOFF_MAX = 2.0  # Retry-After up to 2 s is slept through
        settings.PROVIDER_TIMEOUT = 5.0

    # --- control and inspection ----------------------------------------------------------
    def fail_next(
        self,
        count: int = 1,
        kind: str = "429",
        *,
        retry_after: float | None = None,
        retry_after_header: str | None = None,
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            for _ in range(count):
                self._faults.append(Fault(kind, retry_after, retry_after_header))

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def max_in_flight(self) -> int:
        return self._stats.max_in_flight

    @property
    def faults_served(self) -> int:
        return self._stats.faults_served

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._faults.clear()
        with self._stats.lock:
            self._stats.max_in_flight = self._stats.in_flight
            self._stats.completed = 0
            self._stats.faults_served = 0

    # --- used by the handler -------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            if fault is None and self.fault_rate and self._random.random() < self.fault_rate:
                fault = Fault(self._random.choice(self.fault_kinds), self.retry_after)
        if fault is not None:
            # Counted before the answer goes out, so a client that has its answer sees it.
            with self._stats.lock:
                self._stats.faults_served += 1
        return fault

    def _over_quota(self) -> float:
        """0 when the request is within the quota (and counts against it), else the
        seconds until it would be (GCRA)."""
        if not self.rate_limit_rpm:
            return 0.0
        interval = 60.0 / self.rate_limit_rpm
        tolerance = interval * max(self.rate_limit_burst - 1, 0)
        with self._lock:
            now = time.monotonic()
            tat = max(self._rate_tat, now)
            if tat - now > tolerance:
                self.rate_limited += 1
                return tat - now - tolerance
            self._rate_tat = tat + interval
            self.accepted_times.append(now)
            return 0.0

    def _enter(self) -> None:
        with self._stats.lock:
            self._stats.in_flight += 1
            self._stats.max_in_flight = max(self._stats.max_in_flight, self._stats.in_flight)

    def _leave(self) -> None:
        with self._stats.lock:
            self._stats.in_flight -= 1
            self._stats.completed += 1

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


# --- HTTP handler --------------------------------------------------------------------------

_CHAT_PATH = re.compile(r"^/(?:v1/)?chat/completions$")
_AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")
_ANTHROPIC_PATH = re.compile(r"^/(?:v1/)?messages$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDKs pool connections
    # Headers and body go out in separate writes; with Nagle on, the body waits for the
    # client's delayed ACK (~40 ms a request), which would swamp every latency figure.
    disable_nagle_algorithm = True
    server: _Server
    server_version = "FakeAI/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: tests and benchmarks read stdout

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if path in ("/", "/health"):
            self._send_json(200, {"status": "ok"})
        elif path == "/stats":
            # For benchmarks driving a server in another process: what the server saw.
            fake = self.server.fake
            with fake._stats.lock:
                stats = {
                    "completed": fake._stats.completed,
                    "max_in_flight": fake._stats.max_in_flight,
                    "faults_served": fake._stats.faults_served,
                }
            self._send_json(200, stats)
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self) -> None:  # noqa: N802
        fake = self.server.fake
        split = urlsplit(self.path)
        if split.path == "/stats/reset":
            fake.reset()
            self._send_json(200, {"status": "ok"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        if fake._stopping.is_set():
            # Stopped: a kept-alive connection must not outlive the server (the listening
            # socket is closed, so new connections are refused): dropped, no answer.
            self.close_connection = True
            return
        try:
            body = json.loads(raw_body or b"{}")
        except ValueError:
            body = {}
        headers = {name.lower(): value for name, value in self.headers.items()}
        raw = f"{self.requestline}\r\n{self.headers}{raw_body.decode('utf-8', errors='replace')}"
        fake._record(RecordedRequest("POST", split.path, parse_qs(split.query), headers, body, raw))
        fake._enter()
        fault = None
        try:
            fault = fake._next_fault()
            over = fake._over_quota() if fault is None else 0.0
            if over:
                # Over the quota: refused at once, as providers do.
                self._serve_fault(Fault("429", retry_after=over), split.path)
                return
            fake._sleep(fake.latency)
            if fake._stopping.is_set():
                self.close_connection = True  # stopped mid-request: the connection drops
                return
            if fault is not None and not (fault.kind == "stream-error" and body.get("stream")):
                self._serve_fault(fault, split.path)
                return
            broken = fault is not None  # a stream that fails after its first chunks
            if fake.api_key is not None and fake.api_key not in (
                headers.get("authorization", "").removeprefix("Bearer "),
                headers.get("api-key", ""),
                headers.get("x-api-key", ""),
            ):
                self._serve_status(401, split.path, "Invalid API key provided.")
                return
            if match := _AZURE_PATH.match(split.path):
                self._openai(body, deployment=match.group(1), broken=broken)
            elif _CHAT_PATH.match(split.path):
                self._openai(body, deployment=None, broken=broken)
            elif _ANTHROPIC_PATH.match(split.path):
                self._anthropic(body, broken=broken)
            else:
                self._send_json(404, {"error": {"message": f"no route {split.path}"}})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeout): nothing to do
        finally:
            fake._leave()

    # --- faults --------------------------------------------------------------------------
    def _serve_fault(self, fault: Fault, path: str) -> None:
        fake = self.server.fake
        if fault.kind == "hang":
            fake._sleep(fake.hang_seconds)
            self._serve_status(504, path, "Gateway timeout (fake hang).")
            return
        status = 500 if fault.kind == "stream-error" else int(fault.kind)
        headers: dict[str, str] = {}
        retry_after = fault.retry_after if fault.retry_after is not None else fake.retry_after
        if fault.retry_after_header is not None:
            headers["Retry-After"] = fault.retry_after_header
        elif retry_after is not None and status in (429, 503):
            headers["Retry-After"] = f"{retry_after:g}"
            headers["retry-after-ms"] = f"{retry_after * 1000:g}"
        messages = {
            429: "Rate limit reached. Please retry later.",
            500: "The server had an error while processing your request.",
            503: "The server is overloaded.",
            400: "Invalid request: bad parameter.",
            401: "Invalid API key provided.",
        }
        self._serve_status(status, path, messages.get(status, "error"), headers)

    def _serve_status(
        self, status: int, path: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        if _ANTHROPIC_PATH.match(path):
            kinds = {
                400: "invalid_request_error",
                401: "authentication_error",
                404: "not_found_error",
                429: "rate_limit_error",
                503: "overloaded_error",
            }
            payload = {
                "type": "error",
                "error": {"type": kinds.get(status, "api_error"), "message": message},
            }
        else:
            payload = {"error": {"message": message, "type": "error", "code": str(status)}}
        self._send_json(status, payload, headers)

    # --- protocols -----------------------------------------------------------------------
    def _openai(self, body: dict[str, Any], *, deployment: str | None, broken: bool) -> None:
        model = deployment or str(body.get("model", ""))
        if model.startswith("missing"):
            message = (
                f"The API deployment for this resource does not exist: {model}"
                if deployment
                else f"The model `{model}` does not exist or you do not have access to it."
            )
            self._send_json(
                404,
                {"error": {"message": message, "type": "invalid_request_error", "code": "404"}},
            )
            return
        messages = list(body.get("messages") or [])
        system = "\n".join(text_of(m.get("content")) for m in messages if m["role"] == "system")
        answer = (self.server.fake.responder or compose_answer)(system, messages)
        count = self.server.fake.count_tokens
        prompt_tokens = sum(count(text_of(m.get("content"))) for m in messages)
        if self.server.fake.tokenizer != "words":
            prompt_tokens += 3 * len(messages) + 3  # role markers, as OpenAI counts them
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": count(answer),
            "total_tokens": prompt_tokens + count(answer),
        }
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            self._send_json(
                200,
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = []
        chunk = {**base, "object": "chat.completion.chunk"}
        first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        events.append({**chunk, "choices": [first]})
        for piece in chunks(answer):
            delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None}
            events.append({**chunk, "choices": [delta]})
        if broken:
            error = {"error": {"message": "The server is overloaded.", "type": "server_error"}}
            self._send_sse([(None, event) for event in events[:3]] + [(None, error)])
            return
        events.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if include_usage:
            events.append({**chunk, "choices": [], "usage": usage})
        self._send_sse([(None, event) for event in events] + [(None, "[DONE]")])

    def _anthropic(self, body: dict[str, Any], *, broken: bool) -> None:
        model = str(body.get("model", ""))
        if model.startswith("missing"):
            self._serve_status(404, "/v1/messages", f"model: {model}")
            return
        messages = list(body.get("messages") or [])
        system = text_of(body.get("system", ""))
        answer = compose_answer(system, messages)
        input_tokens = count_tokens(system) + sum(
            count_tokens(text_of(m.get("content"))) for m in messages
        )
        output_tokens = count_tokens(answer)
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": answer}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        if not body.get("stream"):
            self._send_json(200, message)
            return
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        }
        events: list[tuple[str | None, Any]] = [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
        ]
        for piece in chunks(answer):
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": piece},
                    },
                )
            )
        if broken:
            error = {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
            }
            self._send_sse(events[:4] + [("error", error)])
            return
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        self._send_sse(events)

    # --- wire ----------------------------------------------------------------------------
    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status, HTTPStatus(status).phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_sse(self, events: list[tuple[str | None, Any]]) -> None:
        # No Content-Length: the body ends when the connection closes, as simple SSE
        # servers do; the SDKs read until [DONE] / message_stop anyway.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        delay = self.server.fake.stream_delay
        for name, payload in events:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            prefix = f"event: {name}\n" if name else ""
            self.wfile.write(f"{prefix}data: {data}\n\n".encode())
            self.wfile.flush()
            self.server.fake._sleep(delay)


# --- standalone process ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--fault-rate", type=float, default=0.0, help="fraction 0..1")
    parser.add_argument(
        "--fault-kinds", default="429,500", help=f"comma list of {','.join(FAULT_KINDS)}"
    )
    parser.add_argument("--retry-after", type=float, default=0.05, help="seconds, for 429/503")
    parser.add_argument("--hang-seconds", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="require this key (else any)")
    parser.add_argument("--stream-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    server = FakeAIServer(
        host=args.host,
        port=args.port,
        latency=args.latency,
        fault_rate=args.fault_rate,
        fault_kinds=tuple(k for k in args.fault_kinds.split(",") if k),
        retry_after=args.retry_after,
        hang_seconds=args.hang_seconds,
        seed=args.seed,
        api_key=args.api_key,
        stream_delay=args.stream_delay,
    )
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    print(server.url, flush=True)
    while not stop.wait(0.1):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
