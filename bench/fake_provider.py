"""A lean OpenAI-compatible server for the benchmarks: asyncio, one process, little CPU.

Run: python bench/fake_provider.py --latency 0.5 [--rpm 600] [--port 0]
Prints its base URL (http://127.0.0.1:PORT) on the first line, then serves until killed.

The test suite's fake server (chats.tests.fake_servers) records every request and speaks
several protocols with injected faults; with a thread per connection it spends CPU that a
benchmark on a 2-core machine would count against BatchChat. This one answers every
`POST .../chat/completions` with a fixed completion after `latency` seconds (a timer, no
thread), and keeps the figures a benchmark needs:

- GET /stats: {"completed", "max_in_flight", "rejected", "first_at", "last_at"};
  POST /stats/reset starts them again.
- --rpm R: a provider's rate limit. Requests beyond R per minute (a GCRA: evenly spaced,
  with a burst of --burst requests) are answered 429 with Retry-After at once, as
  OpenAI does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "local-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "A benchmark answer."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24},
    }
).encode()


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.completed = 0
        self.rejected = 0
        self.first_at: float | None = None
        self.last_at: float | None = None

    def as_json(self) -> bytes:
        return json.dumps(
            {
                "completed": self.completed,
                "max_in_flight": self.max_in_flight,
                "rejected": self.rejected,
                "first_at": self.first_at,
                "last_at": self.last_at,
            }
        ).encode()


class Limiter:
    """GCRA: one request every 60/rpm seconds, `burst` at once at most."""

    def __init__(self, rpm: float, burst: int) -> None:
        self.interval = 60.0 / rpm
        self.tolerance = self.interval * max(burst - 1, 0)
        self.tat = 0.0  # theoretical arrival time

    def admit(self, now: float) -> float:
        """0 when admitted, else seconds until the next request would be."""
        tat = max(self.tat, now)
        if tat - now > self.tolerance:
            return tat - now - self.tolerance
        self.tat = tat + self.interval
        return 0.0


def response(status: str, body: bytes, headers: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n"
    ).encode() + body


class Protocol(asyncio.Protocol):
    def __init__(self, server: FakeProvider) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _version = head.split("\r\n", 1)[0].split(" ", 2)
            self.server.handle(self, method, path)

    def send(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)


class FakeProvider:
    def __init__(self, latency: float, rpm: float | None, burst: int) -> None:
        self.latency = latency
        self.stats = Stats()
        self.limiter = Limiter(rpm, burst) if rpm else None
        self.loop = asyncio.get_event_loop()

    def handle(self, protocol: Protocol, method: str, path: str) -> None:
        stats = self.stats
        if path.startswith("/stats"):
            if method == "POST":
                stats.reset()
                if self.limiter is not None:
                    self.limiter.tat = 0.0
            protocol.send(response("200 OK", stats.as_json()))
            return
        now = time.time()
        if self.limiter is not None:
            wait = self.limiter.admit(now)
            if wait > 0:
                stats.rejected += 1
                body = b'{"error": {"message": "Rate limit reached", "type": "requests"}}'
                headers = f"Retry-After: {wait:.3f}\r\nretry-after-ms: {wait * 1000:.0f}\r\n"
                protocol.send(response("429 Too Many Requests", body, headers))
                return
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        if stats.first_at is None:
            stats.first_at = now
        self.loop.call_later(self.latency, self.answer, protocol)

    def answer(self, protocol: Protocol) -> None:
        stats = self.stats
        stats.in_flight -= 1
        stats.completed += 1
        stats.last_at = time.time()
        protocol.send(response("200 OK", COMPLETION))


async def serve(args: argparse.Namespace) -> None:
    provider = FakeProvider(args.latency, args.rpm, args.burst)
    server = await asyncio.get_running_loop().create_server(
        lambda: Protocol(provider), "127.0.0.1", args.port, backlog=4096
    )
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rpm", type=float, default=None, help="requests per minute allowed")
    parser.add_argument("--burst", type=int, default=5)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
