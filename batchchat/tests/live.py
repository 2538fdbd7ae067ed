"""Helpers for tests that start BatchChat as its scripts do: processes on a free loopback
port, a temporary SQLite file, the fake AI provider; plain HTTP from the test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable


# The apps these tests start use SQLite files of their own, whatever the suite's database:
# bin/test's PostgreSQL pass would only repeat them.
once_per_suite = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3",
    reason="starts its own app on SQLite; runs in the SQLite pass",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_env(tmp_path: Path, fake_ai, port: int, **extra: object) -> dict[str, str]:
    """The environment of a fresh install on loopback: its own SQLite file and search
    index, a login given by the environment (so nothing is written into the checkout),
    the fake OpenAI-compatible provider, short leases and heartbeats."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "PYTEST_", "DATABASE_"))
    }
    env.update(
        {
            "BATCHCHAT_SKIP_SETUP": "1",
            "BIND": f"127.0.0.1:{port}",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "LOCAL_SEARCH_INDEX": str(tmp_path / "search-index.sqlite3"),
            "DJANGO_SUPERUSER_USERNAME": "ada",
            "DJANGO_SUPERUSER_PASSWORD": "pw-ada-12345",
            "COMPATIBLE_BASE_URL": fake_ai.openai_base_url,
            "COMPATIBLE_API_KEY": "test-key",
            "COMPATIBLE_MODELS": "local-model",
            "PROVIDER_BACKOFF_BASE": "0.001",
            "PROVIDER_BACKOFF_MAX": "0.01",
            "BATCH_LEASE_SECONDS": "3",
            "WORKER_SLICE_SECONDS": "2",
            "WORKER_HEARTBEAT_SECONDS": "0.5",
            "WORKER_HEARTBEAT_TIMEOUT": "2",
            "BATCH_CONCURRENCY": "4",
        }
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a process in a session of its own, its output in `log`."""
    handle = open(log, "ab")  # noqa: SIM115 (kept open for the process's life)
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_group(pid: int) -> None:
    """SIGKILL the process group `pid` leads, if any is left (test clean-up)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def http(method: str, url: str, *, data=None, headers=None, timeout: float = 30.0):
    """(status, headers, body bytes); never raises for an HTTP error status."""
    body = None
    headers = dict(headers or {})
    if data is not None:
        body = json.dumps(data).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None, None, b""


def health(base: str) -> dict | None:
    status, _headers, body = http("GET", f"{base}/healthz", timeout=5)
    return json.loads(body) if status in (200, 503) else None


def api_token(env: dict[str, str]) -> str:
    out = subprocess.run(
        [PYTHON, "manage.py", "api_token", "create", "ada"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip()
