"""Helpers for tests that run the engine in other processes against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(settings.BASE_DIR)

# One Redis database per test process (xdist workers gw0, gw1... run side by side), the
# same for every test of the process: kombu keeps its producer pools per process, so all
# of them must agree on the broker.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw9")
TEST_BROKER_URL = "redis://{host}:6379/{db}".format(
    host=os.environ.get("REDIS_HOST", "127.0.0.1"),
    db=5 + int(_WORKER.removeprefix("gw") or 0) % 10,
)


def test_database_url() -> str:
    """The URL of the database this test process uses (the test database, not the real one)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = quote(db.get("USER") or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def child_env(fake_ai, **extra: object) -> dict[str, str]:
    """Environment for a child process: the test database and the fake provider."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "batchchat.settings",
        "DATABASE_URL": test_database_url(),
        "COMPATIBLE_BASE_URL": fake_ai.openai_base_url,
        "COMPATIBLE_API_KEY": "test-key",
        "COMPATIBLE_MODELS": "local-model",
        "PROVIDER_BACKOFF_BASE": "0.001",
        "PROVIDER_BACKOFF_MAX": "0.01",
        "PROVIDER_MAX_ATTEMPTS": "2",
        "PYTHONPATH": str(ROOT),
    }
    env.update({key: str(value) for key, value in extra.items()})
    return env


SLICE_CODE = """
import sys, django
django.setup()
from batches.engine import process_for_duration
result = process_for_duration(batch_id=int(sys.argv[1]), seconds=float(sys.argv[2]),
                              concurrency=int(sys.argv[3]))
print(result.done, result.failed, result.remaining, result.status, flush=True)
"""


def start_slice_process(
    *, batch_id: int, seconds: float, concurrency: int, env: dict[str, str]
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SLICE_CODE, str(batch_id), str(seconds), str(concurrency)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
