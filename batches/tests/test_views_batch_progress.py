"""batch_progress: the detail page's progress section polling itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from batches.models import Batch
from batches.tests.factories import BatchFactory, BatchItemFactory
from batches.tests.view_helpers import HX, completed, real_batch

pytestmark = pytest.mark.django_db


def test_progress_polls_while_active_and_stops_with_286(owner_client, owner):
    batch = real_batch(owner)
    url = reverse("batches:progress", args=[batch.pk])
    Batch.objects.filter(pk=batch.pk).update(status="processing")
    response = owner_client.get(url, **HX)
    assert response.status_code == 200
    assert 'hx-trigger="poll" data-poll' in response.content.decode()
    # Grades are swapped in with each poll while the batch runs.
    assert '<div id="batch-grades" hx-swap-oob="true">' in response.content.decode()
    Batch.objects.filter(pk=batch.pk).update(status="completed")
    response = owner_client.get(url, **HX)
    assert response.status_code == 286
    body = response.content.decode()
    assert "data-poll" not in body
    assert 'id="batch-announcer" hx-swap-oob="innerHTML">Batch status: Completed.' in body


def test_the_final_progress_poll_clears_the_started_message(owner_client, owner):
    batch = completed(owner, total_items=1, processed_items=1)
    body = owner_client.get(reverse("batches:progress", args=[batch.pk]), **HX).content.decode()
    assert '<div id="messages" hx-swap-oob="innerHTML"></div>' in body


def test_running_batch_shows_elapsed_rate_and_time_remaining(owner_client, owner):
    now = timezone.now()
    batch = BatchFactory(
        uploader=owner,
        status=Batch.Status.PROCESSING,
        total_items=40,
        processed_items=20,
        started_at=now - timedelta(seconds=200),
    )
    for position in range(20):
        BatchItemFactory(
            batch=batch, position=position, status="done", finished_at=now - timedelta(seconds=30)
        )
    body = owner_client.get(reverse("batches:progress", args=[batch.pk]), **HX).text
    # 20 rows in the last minute: 0.33 rows/s; 20 left: about 60 s.
    assert "Elapsed" in body and "3 min 2" in body
    assert "0.33" in body
    assert "about 1 min 00 s" in body
