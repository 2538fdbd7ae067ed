"""Issue 29: NUL in query parameters or path values, unknown /api/ routes under CSRF."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from batches.tests.api_helpers import ApiClient, error_of
from batches.tests.factories import BatchFactory


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/batches/{pk}/?q=%00",
        "/batches/{pk}/rows/?q=a%00b",
        "/batches/?status=%00",
        "/chats/ab%00/",
        "/chats/ab%00/transcript/",
        "/docs/a%00.md",
    ],
)
def test_nul_in_a_query_or_path_value_is_refused(owner_client, owner, path):
    batch = BatchFactory(uploader=owner)
    response = owner_client.get(path.format(pk=batch.pk))
    assert response.status_code in {400, 404}


@pytest.mark.django_db
def test_nul_in_a_post_to_a_chat_is_refused(owner_client):
    assert owner_client.post("/chats/ab%00/ask/", {"question": "Hi?"}).status_code in {400, 404}


@pytest.mark.django_db
def test_nul_under_api_is_a_json_400(owner):
    api = ApiClient(owner)
    response = api.get("batch/status", {"batchId": "1\x00"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"


@pytest.mark.django_db
def test_an_unknown_api_route_posted_with_a_token_is_a_json_404(owner):
    api = ApiClient(owner)
    api.client = Client(enforce_csrf_checks=True)
    response = api.post("batch/no-such-route", {"batchId": 1})
    assert response.status_code == 404
    assert error_of(response)
    # With a session and no CSRF token too: never Django's HTML CSRF page under /api/.
    session = Client(enforce_csrf_checks=True)
    session.force_login(owner)
    response = session.post("/api/nope", json.dumps({}), content_type="application/json")
    assert response["Content-Type"].startswith("application/json")
    assert response.status_code in {403, 404}
