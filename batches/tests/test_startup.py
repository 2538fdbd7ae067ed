"""Start-up stays lean: a command imports a provider's SDK only when it is used, and a
long-running worker imports the enabled ones before its first slice."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings

SCRIPT = """
import sys
import django

django.setup()
import batches.management.commands.run_batch  # noqa: F401
import batches.worker  # noqa: F401

heavy = ("openai", "anthropic", "httpx", "openpyxl")
print("loaded before:", sorted(name for name in heavy if name in sys.modules))
from chats.services import preload_providers

preload_providers()
print("loaded after:", sorted(name for name in heavy if name in sys.modules))
"""


def test_sdks_load_only_when_used_or_preloaded():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "batchchat.settings",
        "COMPATIBLE_BASE_URL": "http://127.0.0.1:9/v1",
        "COMPATIBLE_MODELS": "local-model",
        "OPENAI_API_KEY": "",
        "ANTHROPIC_API_KEY": "",
    }
    env.pop("DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "loaded before: []" in out
    # A long-running worker imports the enabled providers' SDKs before its first slice.
    assert "'openai'" in out.split("loaded after:")[1]


# What `manage.py run_batch --help` must start without (issue 28): Celery, django-ninja
# and pydantic, the engine and the chat pipeline, the upload readers, the SDKs.
HEAVY_AT_START = (
    "celery",
    "kombu",
    "ninja",
    "pydantic",
    "openpyxl",
    "openai",
    "anthropic",
    "httpx",
    "aiohttp",
    "rapidfuzz",
    "batches.services",
    "batches.engine",
    "chats.services",
    "evaluation.grading",
    "evaluation.views",
)


def _imported_modules(output: str) -> set[str]:
    """The modules `-X importtime` reports (its lines: time | cumulative | name)."""
    names = set()
    for line in output.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def run_batch_timed(*args: str) -> subprocess.CompletedProcess:
    """`manage.py run_batch ARGS` under `-X importtime` (its report on stderr), on the
    default SQLite database."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "batchchat.settings"}
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-X", "importtime", "manage.py", "run_batch", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )


def test_run_batch_help_starts_without_the_heavy_modules():
    done = run_batch_timed("--help")
    assert done.returncode == 0, done.stderr
    assert "--processes" in done.stdout
    imported = _imported_modules(done.stderr)
    assert "django.core.management" in imported  # the report was read
    assert sorted(name for name in HEAVY_AT_START if name in imported) == []


def test_run_batch_checks_leave_out_the_web(tmp_path):
    """The command's system checks do not load the URLconf (the API's schemas, every view)
    nor the admin: the web's checks are `manage.py check`'s and the server's."""
    done = run_batch_timed(str(tmp_path / "no.csv"))
    assert "no such file" in done.stderr  # the checks ran and the command went on
    imported = _imported_modules(done.stderr)
    assert "batches.checks" in imported
    assert sorted({"batchchat.urls", "batchchat.api", "ninja"} & imported) == []
