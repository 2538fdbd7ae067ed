"""Every batch page: login required, 404 for another user's batch, 405 for the wrong
method, staff see every batch."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.models import Batch
from batches.tests.view_helpers import HX, LIST_URL, real_batch

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [LIST_URL, "/batches/rows/", "/batches/1/", "/batches/1/progress/", "/batches/1/delete/"],
)
def test_anonymous_is_sent_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize(
    "name, method",
    [
        ("detail", "get"),
        ("progress", "get"),
        ("start", "post"),
        ("process", "post"),
        ("cancel", "post"),
        ("retry", "post"),
        ("delete", "get"),
        ("delete", "post"),
    ],
)
def test_another_users_batch_is_404(client, other_user, owner, name, method):
    batch = real_batch(owner)
    client.force_login(other_user)
    response = getattr(client, method)(reverse(f"batches:{name}", args=[batch.pk]), **HX)
    assert response.status_code == 404
    assert Batch.objects.filter(pk=batch.pk, status="uploaded").exists()


def test_staff_sees_every_batch(client, staff_user, owner):
    batch = real_batch(owner, name="Owner's batch")
    client.force_login(staff_user)
    assert "Owner&#x27;s batch" in client.get(LIST_URL).content.decode()
    assert client.get(batch.get_absolute_url()).status_code == 200


@pytest.mark.parametrize(
    "name, method",
    [("start", "get"), ("cancel", "get"), ("retry", "get"), ("process", "get"), ("rows", "post")],
)
def test_wrong_method_is_405(owner_client, owner, name, method):
    batch = real_batch(owner)
    args = [] if name == "rows" else [batch.pk]
    response = getattr(owner_client, method)(reverse(f"batches:{name}", args=args))
    assert response.status_code == 405
