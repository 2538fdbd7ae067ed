"""batch_cancel."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.models import Batch, BatchItem
from batches.tests.view_helpers import HX, real_batch

pytestmark = pytest.mark.django_db


def test_cancel_then_state_error_is_reported(owner_client, owner):
    batch = real_batch(owner)
    owner_client.post(reverse("batches:cancel", args=[batch.pk]))
    batch.refresh_from_db()
    assert batch.status == Batch.Status.CANCELLED
    assert batch.items.filter(status=BatchItem.Status.CANCELLED).count() == 3
    response = owner_client.post(reverse("batches:cancel", args=[batch.pk]), **HX)
    assert response.status_code == 200
    assert "cannot be cancelled" in response.content.decode()
