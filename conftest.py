"""Project-wide test set-up: service markers, role fixtures.

Tests that need PostgreSQL, Redis or Chromium carry a marker. They skip where the
service is missing, and fail instead when REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

# Assertions in shared test helpers report their values like those in test modules.
pytest.register_assert_rewrite("batches.tests.api_helpers", "batches.tests.assertions")

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _missing_service(marker: str) -> str | None:
    """Why the service behind `marker` is not usable here, or None when it is."""
    if marker == "postgres":
        from django.conf import settings

        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
            return "needs DATABASE_URL pointing at PostgreSQL"
        return None
    if marker == "redis":
        url = urlparse(REDIS_URL)
        if not _port_open(url.hostname or "127.0.0.1", url.port or 6379):
            return f"Redis does not answer at {REDIS_URL}"
        return None
    if marker == "browser":
        if not Path(CHROMIUM_PATH).exists():
            return f"Chromium not found at {CHROMIUM_PATH}"
        return None
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in ("postgres", "redis", "browser"):
        if item.get_closest_marker(marker) is None:
            continue
        reason = _missing_service(marker)
        if reason is None:
            continue
        if REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def fresh_provider_limits():
    """Pauses and adaptive limits of one test's provider keys must not slow the next."""
    from chats.providers import breaker, limits

    limits.reset()
    breaker.reset()
    yield
    limits.reset()
    breaker.reset()


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Real hashers cost most of a second per user; tests need logins, not strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def empty_cache():
    """The cache holds throttle counts (bad API tokens): each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def default_language():
    """A request through the test client leaves its language active in this thread (the
    LocaleMiddleware activates it and nothing deactivates it): the next test would read
    French messages where it expects English."""
    from django.utils import translation

    yield
    translation.deactivate()


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user(username="owner", password="pw-owner-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="other", password="pw-other-123")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user(
        username="staff", password="pw-staff-123", is_staff=True, is_superuser=True
    )


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client
