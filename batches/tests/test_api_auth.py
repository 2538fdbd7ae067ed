"""API authentication: bearer tokens, sessions and CSRF."""

from __future__ import annotations

import pytest
from django.test import Client

from batches.models import Batch
from batches.tests.api_helpers import ApiClient, error_of
from batches.tests.factories import BatchFactory


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer bct_not-a-real-token"}, {"authorization": "Basic dTpw"}],
)
def test_missing_or_wrong_credentials_are_401(client, headers):
    response = client.get("/api/batch/list", headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_a_revoked_token_is_refused(api):
    assert api.get("batch/list").status_code == 200
    api.user.api_tokens.all().delete()
    assert api.get("batch/list").status_code == 401


@pytest.mark.django_db
def test_an_inactive_users_token_is_refused(api):
    api.user.is_active = False
    api.user.save()
    assert api.get("batch/list").status_code == 401


@pytest.mark.django_db
def test_a_bad_token_does_not_fall_back_to_the_session(owner):
    client = Client()
    client.force_login(owner)
    response = client.get("/api/batch/list", headers={"authorization": "Bearer bct_wrong"})
    assert response.status_code == 401


@pytest.mark.django_db
def test_session_reads_work_and_writes_need_the_csrf_token(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    batch = BatchFactory(uploader=owner)

    assert client.get("/api/batch/list").json()["total"] == 1

    refused = client.post(
        "/api/batch/cancel", {"batchId": batch.pk}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "csrf_failed"
    batch.refresh_from_db()
    assert batch.status == Batch.Status.UPLOADED

    client.get("/settings/tokens/")  # a page with a form sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    allowed = client.post(
        "/api/batch/cancel",
        {"batchId": batch.pk},
        content_type="application/json",
        headers={"x-csrftoken": token},
    )
    assert allowed.status_code == 200, allowed.content
    assert allowed.json()["status"] == "cancelled"


@pytest.mark.django_db
def test_token_requests_need_no_csrf_token(owner):
    api = ApiClient(owner)
    api.client = Client(enforce_csrf_checks=True)
    batch = BatchFactory(uploader=owner)
    assert api.post("batch/cancel", {"batchId": batch.pk}).status_code == 200
