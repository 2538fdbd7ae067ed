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
    # The provider modules are imported to learn which are configured (with their SDKs).
    assert "'openai'" in out.split("loaded after:")[1]
