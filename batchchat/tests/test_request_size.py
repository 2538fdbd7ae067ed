"""A body over the upload limit is refused on its Content-Length, before anything reads
it: 413 JSON under /api/, a page (or an htmx message) elsewhere."""

from __future__ import annotations

import json

import pytest

from batchchat.middleware import request_body_limit


class Unreadable:
    """A request body that must not be read."""

    def read(self, *args, **kwargs):
        raise AssertionError("the body was read")

    readline = read


def huge(**extra) -> dict:
    return {
        "CONTENT_LENGTH": str(1024**3),
        "CONTENT_TYPE": "multipart/form-data; boundary=x",
        "wsgi.input": Unreadable(),
        **extra,
    }


@pytest.mark.django_db
def test_an_api_upload_announcing_1_gb_is_413_json_unread(owner):
    from batches.tests.api_helpers import ApiClient, error_of

    api = ApiClient(owner)
    response = api.client.generic("POST", "/api/batch/create", headers=api.headers, **huge())
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "too_large" and "1024 MB" in error["message"]


@pytest.mark.django_db
def test_a_page_upload_announcing_1_gb_is_a_413_page_unread(owner_client):
    response = owner_client.generic("POST", "/batches/", **huge())
    assert response.status_code == 413
    page = response.content.decode()
    assert "Upload too large" in page and "limited to 20 MB" in page


@pytest.mark.django_db
def test_an_htmx_upload_gets_a_message_for_the_page(owner_client):
    response = owner_client.generic("POST", "/batches/", headers={"HX-Request": "true"}, **huge())
    assert response.status_code == 413
    assert response.content.decode().startswith('<p class="flash flash-error">')


@pytest.mark.django_db
def test_any_post_is_refused_before_the_csrf_check_parses_it(client):
    response = client.generic("POST", "/accounts/login/", **huge())
    assert response.status_code == 413


@pytest.mark.django_db
def test_a_body_within_the_limit_goes_through(owner, settings):
    from batches.tests.api_helpers import ApiClient

    settings.MAX_UPLOAD_BYTES = 1024
    api = ApiClient(owner)
    body = json.dumps({"rows": [{"question": "Q?"}]})
    response = api.client.post(
        "/api/batch/create", body, content_type="application/json", headers=api.headers
    )
    assert response.status_code == 201
    assert request_body_limit() == 1024 + 1024 * 1024
