"""batch_progress: the detail page's progress section polling itself."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.models import Batch
from batches.tests.view_helpers import HX, real_batch

pytestmark = pytest.mark.django_db


def test_progress_polls_while_active_and_stops_with_286(owner_client, owner):
    batch = real_batch(owner)
    url = reverse("batches:progress", args=[batch.pk])
    Batch.objects.filter(pk=batch.pk).update(status="processing")
    response = owner_client.get(url, **HX)
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in response.content.decode()
    Batch.objects.filter(pk=batch.pk).update(status="completed")
    response = owner_client.get(url, **HX)
    assert response.status_code == 286
    body = response.content.decode()
    assert "every 2s" not in body
    assert 'id="batch-announcer" hx-swap-oob="innerHTML">Batch status: Completed.' in body
