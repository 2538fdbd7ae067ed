"""batch_retry: run the failed rows again."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.models import Batch, BatchItem
from batches.tests.view_helpers import real_batch

pytestmark = pytest.mark.django_db


def test_retry_failed_requeues(owner_client, owner):
    batch = real_batch(owner, n=2)
    batch.items.update(status=BatchItem.Status.FAILED, error="boom")
    Batch.objects.filter(pk=batch.pk).update(status="completed", failed_items=2)
    owner_client.post(reverse("batches:retry", args=[batch.pk]))
    batch.refresh_from_db()
    assert batch.status == Batch.Status.QUEUED
    assert batch.items.filter(status=BatchItem.Status.PENDING).count() == 2
