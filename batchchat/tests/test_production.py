"""The production configuration on loopback, started by bin/serve as the README says:
DJANGO_DEBUG=0, gunicorn, collectstatic + WhiteNoise, the worker, the documented settings.
CSS and htmx are served hashed, compressed and cached for a year; a page renders styled in
Chromium; a chat answer streams through gunicorn; /healthz and /metrics answer; security
headers are present; `check --deploy` is clean with the documented settings."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import threading
import urllib.parse
from http.client import HTTPConnection

import pytest

from batchchat.tests.live import (
    PYTHON,
    ROOT,
    api_token,
    children,
    free_port,
    health,
    http,
    once_per_suite,
    running,
    start,
    stop_group,
)
from batchchat.tests.waiting import wait_until
from chats.tests.fake_servers import FakeAIServer

pytestmark = [pytest.mark.slow, once_per_suite]

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
METRICS_TOKEN = "metrics-" + secrets.token_urlsafe(16)
# The proxy in front of the app ends TLS and says so (DJANGO_SECURE_PROXY_SSL_HEADER): the
# tests, talking plain HTTP on loopback, send what it would send.
BEHIND_TLS = {"X-Forwarded-Proto": "https"}
# The fake provider's stream is held after this many chunks (the role chunk, "<answer>Fake",
# "answer", "(turn", "2)", ...): the visible answer has begun, most of it is still to come.
HOLD_AFTER_CHUNKS = 5


def documented_env() -> dict[str, str]:
    """docs/deploying.md's production environment file (the block opening `# /etc/batchchat/env`)."""
    readme = (ROOT / "docs" / "deploying.md").read_text()
    block = re.search(r"```sh\n# /etc/batchchat/env\n(.*?)```", readme, re.S)
    assert block, "docs/deploying.md: the production environment file is missing"
    env = {}
    for line in block.group(1).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def base_env() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "PYTEST_", "DATABASE_", "METRICS_"))
    }


def test_check_deploy_is_clean_with_the_documented_settings():
    env = base_env() | documented_env()
    # As the README says: generate the key (its example is a placeholder).
    env["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)

    out = subprocess.run(
        [PYTHON, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert out.returncode == 0, out.stderr
    found = re.findall(r"\((\w+\.[EWI]\d+)\)", out.stdout + out.stderr)
    assert found == [], out.stdout + out.stderr
    assert "no issues" in out.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """bin/serve with the documented settings, adapted to loopback: a free port, a fresh
    SQLite file, its own static folder, the fake AI provider (which streams slowly)."""
    tmp = tmp_path_factory.mktemp("production")
    with FakeAIServer(stream_delay=0.1) as fake_ai:
        port = free_port()
        env = base_env() | documented_env()
        env.update(
            {
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
                "DJANGO_CSRF_TRUSTED_ORIGINS": f"https://127.0.0.1:{port}",
                "DJANGO_STATIC_ROOT": str(tmp / "static"),
                "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
                "BIND": f"127.0.0.1:{port}",
                "WEB_CONCURRENCY": "1",
                # One engine process (bin/serve's default is one per core): the health
                # check below counts the live workers.
                "WORKER_PROCESSES": "1",
                "GUNICORN_THREADS": "4",
                "METRICS_TOKEN": METRICS_TOKEN,
                "LOCAL_SEARCH_INDEX": str(tmp / "search-index.sqlite3"),
                "COMPATIBLE_BASE_URL": fake_ai.openai_base_url,
                "COMPATIBLE_API_KEY": "test-key",
                "COMPATIBLE_MODELS": "local-model",
                "WORKER_HEARTBEAT_SECONDS": "1",
                "DJANGO_SUPERUSER_USERNAME": "ada",
                "DJANGO_SUPERUSER_PASSWORD": "pw-ada-12345",
                "DJANGO_SUPERUSER_EMAIL": "ada@example.org",
                # The test stands for the reverse proxy: it connects from loopback and
                # sets X-Forwarded-For as nginx's proxy_add_x_forwarded_for would.
                "DJANGO_TRUSTED_PROXIES": "127.0.0.1",
            }
        )
        for command in (["migrate", "--no-input"], ["createsuperuser", "--no-input"]):
            subprocess.run(
                [PYTHON, "manage.py", *command],
                cwd=ROOT,
                env=env,
                check=True,
                timeout=180,
                capture_output=True,
            )
        log = tmp / "serve.log"
        serve = start(["bin/serve"], env, log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(
                lambda: (h := health(base)) and h["status"] == "ok",
                timeout=180,
                message=lambda: f"bin/serve did not come up:\n{log.read_text()}",
            )
            yield {"base": base, "port": port, "env": env, "fake_ai": fake_ai, "log": log}
            kids = children(serve.pid)
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=90) == 143
            assert not any(running(pid) for pid in kids), log.read_text()
        finally:
            for pid in [serve.pid, *children(serve.pid)]:
                stop_group(pid)
            serve.wait(timeout=30)


def get(site, path: str, headers: dict | None = None):
    headers = BEHIND_TLS | (headers or {})
    status, response_headers, body = http("GET", site["base"] + path, headers=headers)
    return status, response_headers, body


def test_css_and_htmx_are_hashed_compressed_and_cached_for_a_year(site):
    status, _headers, body = get(site, "/accounts/login/")
    assert status == 200
    page = body.decode()
    assets = re.findall(r'(?:href|src)="(/static/(?:css|js)/[^"]+)"', page)
    css = [a for a in assets if a.endswith(".css")]
    htmx = [a for a in assets if "/htmx." in a]
    assert len(css) == 2 and len(htmx) == 1, assets
    for asset in css + htmx:
        assert re.search(r"\.[0-9a-f]{12}\.(css|js)$", asset), asset  # a content hash
        status, headers, body = get(site, asset, {"Accept-Encoding": "gzip"})
        assert status == 200, asset
        assert headers["Content-Encoding"] == "gzip", asset
        cache = headers["Cache-Control"]
        assert "max-age=315360000" in cache and "immutable" in cache, (asset, cache)
    status, headers, _body = get(site, htmx[0])  # no gzip asked: the plain file
    assert status == 200 and "Content-Encoding" not in headers
    assert headers["Content-Type"].startswith("text/javascript")


def test_pages_carry_security_headers_and_secure_cookies(site):
    status, headers, _body = get(site, "/accounts/login/")
    assert status == 200
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    cookies = headers.get_all("Set-Cookie")
    assert cookies and all("Secure" in cookie for cookie in cookies)
    assert headers["Server"].startswith("gunicorn")  # the chosen server, not runserver
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    status, _headers, body = get(site, "/no-such-page/")
    assert status == 404 and b"Traceback" not in body and b"DEBUG" not in body


def plain_http(site, path: str) -> tuple[int, dict]:
    """A request as a client that bypasses the TLS proxy (no redirect followed)."""
    conn = HTTPConnection("127.0.0.1", site["port"], timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, dict(response.headers)


def test_plain_http_is_redirected_to_https_but_health_checks_are_not(site):
    status, headers = plain_http(site, "/accounts/login/")
    assert status == 301
    assert headers["Location"] == f"https://127.0.0.1:{site['port']}/accounts/login/"
    assert plain_http(site, "/healthz")[0] == 200
    assert plain_http(site, "/metrics")[0] == 401  # not redirected; still needs its token


def test_healthz_and_metrics_answer(site):
    status, headers, body = get(site, "/healthz")
    assert status == 200 and headers["Content-Type"] == "application/json"
    checks = json.loads(body)["checks"]
    assert checks["database"]["ok"] and checks["worker"]["alive"] == 1
    assert b"sqlite" not in body and str(ROOT).encode() not in body

    assert get(site, "/metrics")[0] == 401
    status, _headers, body = get(site, "/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert status == 200
    assert b"batchchat_workers_alive 1.0" in body


def test_behind_the_proxy_bad_tokens_lock_out_their_sender_only(site):
    """Issue 29: behind the documented proxy every request came from its address, so one
    client's bad tokens made every valid token answer 429."""
    token = subprocess.run(
        [PYTHON, "manage.py", "api_token", "create", "ada", "--name", "proxy-test"],
        cwd=ROOT,
        env=site["env"],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout.strip()

    def token_list(raw: str, client: str) -> int:
        headers = {"Authorization": f"Bearer {raw}", "X-Forwarded-For": client}
        return get(site, "/api/batch/list", headers)[0]

    for n in range(20):  # API_TOKEN_FAILURE_LIMIT
        assert token_list(f"bct_{n:02d}wrong-guess", "203.0.113.7") == 401
    assert token_list(token, "203.0.113.8") == 200
    # A forged address left of the proxy's own entry does not help the guesser.
    assert token_list(token, "198.51.100.1, 203.0.113.7") == 429


class Browserless:
    """A logged-in HTTP client that keeps the (Secure) cookies itself, over plain HTTP."""

    def __init__(self, site) -> None:
        self.site = site
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, *, form=None, headers=None):
        conn = HTTPConnection("127.0.0.1", self.site["port"], timeout=30)
        headers = BEHIND_TLS | dict(headers or {})
        if method == "POST":
            # Django checks the Referer of HTTPS form posts.
            headers["Referer"] = f"https://127.0.0.1:{self.site['port']}{path}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        for cookie in response.headers.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            self.cookies[name] = value
        return response

    def csrf_of(self, path: str) -> str:
        page = self.request("GET", path).read().decode()
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    def log_in(self) -> None:
        token = self.csrf_of("/accounts/login/")
        response = self.request(
            "POST",
            "/accounts/login/",
            form={"username": "ada", "password": "pw-ada-12345", "csrfmiddlewaretoken": token},
        )
        assert response.status == 302, response.read()
        assert "sessionid" in self.cookies


def answered_chat(site) -> str:
    """A chat answered by the production worker: a one-row batch through the API."""
    auth = {"Authorization": f"Bearer {api_token(site['env'])}", **BEHIND_TLS}
    base = site["base"]
    fields = {"name": "prod", "aiProvider": "compatible", "model": "local-model"}
    status, _h, body = http(
        "POST",
        f"{base}/api/batch/create",
        data={**fields, "searchProvider": "none", "rows": [{"question": "What is a batch?"}]},
        headers=auth,
    )
    assert status == 201, body
    batch_id = json.loads(body)["batchId"]
    assert (
        http("POST", f"{base}/api/batch/start", data={"batchId": batch_id}, headers=auth)[0] == 200
    )

    def completed():
        code, _headers, payload = http(
            "GET", f"{base}/api/batch/status?batchId={batch_id}", headers=auth
        )
        return code == 200 and json.loads(payload)["status"] == "completed"

    wait_until(completed, timeout=120, message=lambda: f"no answer:\n{site['log'].read_text()}")
    code, _h, payload = http(
        "GET", f"{base}/api/batch/results?batchId={batch_id}&format=json", headers=auth
    )
    assert code == 200
    records = json.loads(payload)
    records = records["rows"] if isinstance(records, dict) else records
    return records[0]["chat_id"]


def test_a_chat_answer_streams_through_the_production_server(site):
    fake_ai = site["fake_ai"]
    chat_id = answered_chat(site)
    client = Browserless(site)
    client.log_in()
    token = client.csrf_of(f"/chats/{chat_id}/")
    # Hold the provider's stream after its first chunks until the test has read words
    # from BatchChat: a server that buffered the answer would deliver nothing meanwhile.
    release, chunks_sent = threading.Event(), 0
    original_sleep = fake_ai._sleep

    def gated_sleep(seconds: float) -> None:
        nonlocal chunks_sent
        chunks_sent += 1
        if chunks_sent == HOLD_AFTER_CHUNKS:
            release.wait(90)
        original_sleep(seconds)

    fake_ai._sleep = gated_sleep
    try:
        response = client.request(
            "POST",
            f"/chats/{chat_id}/ask/",
            form={"question": "And how do I start one?", "csrfmiddlewaretoken": token},
            headers={"X-BatchChat-Stream": "1"},
        )
        assert response.status == 200
        first = response.read1(65536).decode()
        while not first.strip():
            first += response.read1(65536).decode()
        # Here the provider cannot have finished: it is held until `release`. (A server
        # that buffered the answer would send nothing until then, and read1 would time out.)
        provider_chunks_at_first_words = chunks_sent
        release.set()
        text = first + response.read().decode()
    finally:
        release.set()
        fake_ai._sleep = original_sleep

    assert provider_chunks_at_first_words <= HOLD_AFTER_CHUNKS
    answer, _, status = text.partition("\x1e")
    assert answer == "Fake answer (turn 2) to: And how do I start one?"
    assert first.strip() and len(first) < len(answer) and answer.startswith(first)
    assert json.loads(status)["ok"] is True


@pytest.mark.browser
def test_a_page_renders_styled_in_chromium(site, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_extra_http_headers(BEHIND_TLS)
            failed = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.on(
                "response",
                lambda response: response.status >= 400 and failed.append(response.url),
            )
            page.goto(site["base"] + "/accounts/login/")
            page.wait_for_function("() => window.htmx !== undefined")
            styled = page.evaluate(
                """() => ({
                    sheets: [...document.styleSheets].filter(s => s.href && s.cssRules.length).length,
                    font: getComputedStyle(document.body).fontFamily,
                    button: getComputedStyle(document.querySelector("main button")).backgroundColor,
                })"""
            )
            path = tmp_path / "login.png"
            page.screenshot(path=str(path), full_page=True)
        finally:
            browser.close()
    assert failed == []
    assert styled["sheets"] == 2
    assert "system-ui" in styled["font"]  # Pico's font stack, not the browser's serif
    assert styled["button"] == "rgb(1, 114, 173)"  # Pico's primary colour
    assert path.stat().st_size > 10_000
