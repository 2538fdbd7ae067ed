"""batch_rows: the list's rows polling themselves while a batch is active."""

from __future__ import annotations

import pytest

from batches.models import Batch
from batches.tests.view_helpers import HX, real_batch

pytestmark = pytest.mark.django_db


def test_rows_of_active_batch_poll(owner_client, owner):
    batch = real_batch(owner)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING)
    response = owner_client.get("/batches/rows/", **HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'hx-trigger="poll" data-poll' in body
    assert 'role="progressbar"' in body or "<progress" in body


def test_rows_poll_stops_with_286_when_nothing_is_active(owner_client, owner):
    batch = real_batch(owner)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETED)
    response = owner_client.get("/batches/rows/", **HX)
    assert response.status_code == 286
    body = response.content.decode()
    assert "data-poll" not in body
    assert f'id="batch-{batch.pk}"' in body
    assert 'id="batch-announcer" hx-swap-oob="innerHTML"' in body


def test_rows_without_htmx_redirect_to_page(owner_client):
    response = owner_client.get("/batches/rows/")
    assert response.status_code == 302
