"""A fake search server on 127.0.0.1 speaking the three search JSON APIs we call, so the
real httpx code of the search providers runs in tests.

Standard library only. Endpoints:
- ``GET /customsearch/v1``   Google Programmable Search (``key``, ``cx``, ``q``, ``num``, ``lr``);
  a wrong key answers 400 with reason API_KEY_INVALID, as Google does.
- ``GET /search``            SearXNG (``q``, ``format=json``, ``language``); another format
  answers 403, as an instance without the json format does.
- ``POST /rest/search/v2``   Coveo, as used by Canada.ca (Bearer token, JSON body
  ``q``/``numberOfResults``/``locale``); a wrong token answers 401.

Results are deterministic: ``count`` of them (default 12), each naming the query and the
language, so tests can check that parameters arrived. ``fail_next`` queues raw answers
(status, body, headers) or ``"hang"`` for the next requests.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

GOOGLE_PATH = "/customsearch/v1"
SEARXNG_PATH = "/search"
COVEO_PATH = "/rest/search/v2"


@dataclass(frozen=True)
class SearchRequest:
    method: str
    path: str
    query: dict[str, str]  # first value of each parameter
    headers: dict[str, str]  # lower-cased names
    body: Any
    raw: str  # request line, headers and body: to look for leaked secrets


@dataclass(frozen=True)
class Canned:
    status: int
    body: Any = None  # JSON-encoded unless bytes/str
    headers: tuple[tuple[str, str], ...] = ()
    hang: float = 0.0  # seconds to wait before answering


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client that gave up (the timeout tests) closes the socket mid-answer.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    allow_reuse_address = True
    fake: FakeSearchServer


class FakeSearchServer:
    def __init__(self, *, api_key: str = "search-secret-key", count: int = 12) -> None:
        self.api_key = api_key
        self.count = count
        self._requests: list[SearchRequest] = []
        self._canned: deque[Canned] = deque()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeSearchServer:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSearchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def configure(self, settings: Any) -> None:
        """Point every HTTP search provider's settings at this server."""
        settings.GOOGLE_SEARCH_URL = self.url + GOOGLE_PATH
        settings.GOOGLE_SEARCH_API_KEY = self.api_key
        settings.GOOGLE_SEARCH_ENGINE_ID = "engine-123"
        settings.SEARXNG_URL = self.url + "/"
        settings.CANADACA_SEARCH_URL = self.url + COVEO_PATH
        settings.CANADACA_SEARCH_KEY = self.api_key

    def fail_next(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        hang: float = 0.0,
        times: int = 1,
    ) -> None:
        with self._lock:
            for _ in range(times):
                self._canned.append(Canned(status, body, tuple((headers or {}).items()), hang))

    @property
    def requests(self) -> list[SearchRequest]:
        with self._lock:
            return list(self._requests)

    def _record(self, request: SearchRequest) -> Canned | None:
        with self._lock:
            self._requests.append(request)
            return self._canned.popleft() if self._canned else None

    def results(self, query: str, language: str, count: int) -> list[dict[str, str]]:
        return [
            {
                "title": f"Result {n} for {query} ({language})",
                "url": f"https://search.example/{language}/{n}",
                "snippet": f"Snippet {n}\nabout   {query}",
            }
            for n in range(1, min(count, self.count) + 1)
        ]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = raw_body
        request = SearchRequest(
            method=self.command,
            path=parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            raw=f"{self.requestline}\n{self.headers}\n{raw_body}",
        )
        canned = fake._record(request)
        if canned is not None:
            if canned.hang:
                time.sleep(canned.hang)
            self._send(canned.status, canned.body, dict(canned.headers))
            return
        if request.path == GOOGLE_PATH and self.command == "GET":
            self._google(fake, request)
        elif request.path == SEARXNG_PATH and self.command == "GET":
            self._searxng(fake, request)
        elif request.path == COVEO_PATH and self.command == "POST":
            self._coveo(fake, request)
        else:
            self._send(404, {"error": {"code": 404, "message": "Not Found"}})

    def _google(self, fake: FakeSearchServer, request: SearchRequest) -> None:
        q = request.query
        if q.get("key") != fake.api_key:
            self._send(
                400,
                {
                    "error": {
                        "code": 400,
                        "message": "API key not valid. Please pass a valid API key.",
                        "errors": [{"reason": "badRequest", "domain": "global"}],
                        "details": [{"reason": "API_KEY_INVALID"}],
                    }
                },
            )
            return
        num = int(q.get("num", "10"))
        if not 1 <= num <= 10:
            self._send(400, {"error": {"code": 400, "message": "Invalid value for num"}})
            return
        language = q.get("lr", "").removeprefix("lang_")
        results = fake.results(q.get("q", ""), language, num)
        payload: dict[str, Any] = {"kind": "customsearch#search"}
        if results:
            payload["items"] = [
                {"title": r["title"], "link": r["url"], "snippet": r["snippet"]} for r in results
            ]
        self._send(200, payload)

    def _searxng(self, fake: FakeSearchServer, request: SearchRequest) -> None:
        q = request.query
        if q.get("format") != "json":
            self._send(403, "<html>403 Forbidden</html>")
            return
        results = fake.results(q.get("q", ""), q.get("language", ""), fake.count)
        self._send(
            200,
            {
                "query": q.get("q", ""),
                "number_of_results": len(results),
                "results": [
                    {"title": r["title"], "url": r["url"], "content": r["snippet"]} for r in results
                ],
            },
        )

    def _coveo(self, fake: FakeSearchServer, request: SearchRequest) -> None:
        if request.headers.get("authorization") != f"Bearer {fake.api_key}":
            self._send(401, {"statusCode": 401, "message": "Invalid token", "type": "InvalidToken"})
            return
        body = request.body if isinstance(request.body, dict) else {}
        results = fake.results(
            str(body.get("q", "")),
            str(body.get("locale", "")),
            int(body.get("numberOfResults", 10)),
        )
        self._send(
            200,
            {
                "totalCount": len(results),
                "results": [
                    {"title": r["title"], "clickUri": r["url"], "excerpt": r["snippet"]}
                    for r in results
                ],
            },
        )

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(body, bytes):
            data, ctype = body, "application/octet-stream"
        elif isinstance(body, str):
            data, ctype = body.encode(), "text/html; charset=utf-8"
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
