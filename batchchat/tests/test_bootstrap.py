"""`manage.py bootstrap`: a newcomer can log in right after `bin/run`."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import RequestFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def base_dir(settings, tmp_path):
    settings.BASE_DIR = tmp_path
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "var" / "search-index.sqlite3")
    return tmp_path


def run() -> str:
    out = StringIO()
    call_command("bootstrap", stdout=out)
    return out.getvalue()


def test_first_run_creates_a_login_and_prints_it(base_dir):
    output = run()

    login = (Path(base_dir) / "var" / "local-login.txt").read_text()
    password = login.split("password: ")[1].strip()
    assert authenticate(RequestFactory().post("/"), username="admin", password=password) is not None
    assert password in output
    assert get_user_model().objects.get(username="admin").is_superuser

    # A second run creates nothing new and still says how to log in.
    assert password in run()
    assert get_user_model().objects.count() == 1


def test_superuser_from_the_environment(base_dir, monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "ada")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "pw-ada-0123")

    output = run()

    assert (
        authenticate(RequestFactory().post("/"), username="ada", password="pw-ada-0123") is not None
    )
    assert "pw-ada-0123" not in output
    assert not (Path(base_dir) / "var" / "local-login.txt").exists()
