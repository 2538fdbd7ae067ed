"""Unsafe production settings stop the app at start with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from batchchat.checks import check_production_settings, raise_on_errors


def ids(errors) -> list[str]:
    return [error.id for error in errors]


def test_local_development_defaults_pass(settings):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
    assert check_production_settings(None) == []


def test_debug_with_a_public_host_is_refused(settings):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = ["localhost", "batchchat.example.org"]

    errors = check_production_settings(None)

    assert ids(errors) == ["batchchat.E001"]
    assert "batchchat.example.org" in errors[0].msg


def test_the_development_secret_key_is_refused_without_debug(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = django_settings.INSECURE_DEV_SECRET_KEY
    settings.ALLOWED_HOSTS = ["batchchat.example.org"]

    assert ids(check_production_settings(None)) == ["batchchat.E002"]
    with pytest.raises(ImproperlyConfigured, match="DJANGO_SECRET_KEY"):
        raise_on_errors()


def test_a_real_production_configuration_passes(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = "a-long-random-production-secret-key-0123456789-abcdefghijkl"
    settings.ALLOWED_HOSTS = ["batchchat.example.org"]
    assert check_production_settings(None) == []


def test_the_wsgi_application_refuses_to_start_with_unsafe_settings():
    env = {
        **os.environ,
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "batchchat.example.org",
        "DJANGO_SECRET_KEY": "",
    }
    env.pop("DJANGO_SECRET_KEY")
    result = subprocess.run(
        [sys.executable, "-c", "import batchchat.wsgi"],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "batchchat.E002" in result.stderr
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


@pytest.mark.parametrize("bind", ["0.0.0.0:8000", "[::]:8000", "0:8000", "192.0.2.7:80"])
def test_debug_serving_other_machines_is_refused(settings, monkeypatch, bind):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
    monkeypatch.setenv("BIND", bind)

    errors = check_production_settings(None)

    assert ids(errors) == ["batchchat.E003"]
    assert bind in errors[0].msg


@pytest.mark.parametrize("bind", ["127.0.0.1:8000", "[::1]:8000", "localhost:8000", "8000"])
def test_debug_on_a_loopback_bind_passes(settings, monkeypatch, bind):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
    monkeypatch.setenv("BIND", bind)
    assert check_production_settings(None) == []


def test_a_public_bind_without_debug_passes(settings, monkeypatch):
    settings.DEBUG = False
    settings.SECRET_KEY = "a-long-random-production-secret-key-0123456789-abcdefghijkl"
    settings.ALLOWED_HOSTS = ["batchchat.example.org"]
    monkeypatch.setenv("BIND", "0.0.0.0:8000")
    assert check_production_settings(None) == []
