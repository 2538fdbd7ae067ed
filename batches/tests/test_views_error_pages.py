"""The 404 and 500 pages, and the favicon."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.template.loader import render_to_string

from batches.tests.view_helpers import real_batch

pytestmark = pytest.mark.django_db


def test_not_found_page_is_styled_and_says_what_to_do(client, other_user, owner, settings):
    settings.DEBUG = False
    batch = real_batch(owner)
    client.force_login(other_user)
    response = client.get(batch.get_absolute_url())
    assert response.status_code == 404
    body = response.content.decode()
    assert "Page not found" in body and "Go to your batches" in body
    assert "pico.min.css" in body


def test_server_error_page_renders_without_a_request():
    body = render_to_string("500.html")
    assert "Something went wrong" in body and "Try again" in body


def test_favicon_is_served(client, settings):
    from django.contrib.staticfiles import finders

    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == "/static/favicon.svg"
    assert "<svg" in Path(finders.find("favicon.svg")).read_text(encoding="utf-8")
    assert 'rel="icon" href="/static/favicon.svg"' in client.get("/accounts/login/").text
