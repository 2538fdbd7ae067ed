"""batch_delete: a confirmation page without JavaScript, htmx from the list or the detail
page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.models import Batch
from batches.tests.view_helpers import HX, LIST_URL, real_batch

pytestmark = pytest.mark.django_db


def test_delete_asks_for_confirmation_without_js(owner_client, owner):
    batch = real_batch(owner, name="Doomed")
    page = owner_client.get(reverse("batches:delete", args=[batch.pk]))
    assert page.status_code == 200
    assert "Delete the batch “Doomed”?" in page.content.decode()
    assert Batch.objects.filter(pk=batch.pk).exists()
    response = owner_client.post(reverse("batches:delete", args=[batch.pk]))
    assert response.status_code == 302
    assert not Batch.objects.filter(pk=batch.pk).exists()


def test_delete_with_htmx_from_list_returns_list(owner_client, owner):
    batch = real_batch(owner, name="Doomed")
    response = owner_client.post(
        reverse("batches:delete", args=[batch.pk]), HTTP_HX_TARGET="batch-list-body", **HX
    )
    body = response.content.decode()
    assert 'id="batch-list-body"' in body
    assert f'id="batch-{batch.pk}"' not in body
    assert "was deleted" in body
    assert f'<span id="driver-{batch.pk}" hidden hx-swap-oob="true">' in body


def test_delete_with_htmx_from_detail_redirects_to_list(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(
        reverse("batches:delete", args=[batch.pk]), HTTP_HX_TARGET="batch-progress", **HX
    )
    assert response.status_code == 204
    assert response["HX-Redirect"] == LIST_URL


def test_delete_with_htmx_pushes_the_list_url_when_not_on_the_list(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(
        reverse("batches:delete", args=[batch.pk]),
        HTTP_HX_TARGET="batch-list-body",
        HTTP_HX_CURRENT_URL=f"http://testserver/batches/{batch.pk}/",
        **HX,
    )
    assert response["HX-Push-Url"] == LIST_URL


def test_delete_with_htmx_from_the_list_keeps_its_url(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(
        reverse("batches:delete", args=[batch.pk]),
        HTTP_HX_TARGET="batch-list-body",
        HTTP_HX_CURRENT_URL="http://testserver/batches/?status=completed",
        **HX,
    )
    assert "HX-Push-Url" not in response
