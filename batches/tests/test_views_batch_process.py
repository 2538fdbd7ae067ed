"""batch_process: the inline driver that runs slices from an open page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.models import Batch
from batches.tests.view_helpers import HX, LIST_URL, real_batch

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)
def test_process_runs_slices_until_done_then_stops_driving(owner_client, owner, settings):
    settings.BATCH_CONCURRENCY = 2
    batch = real_batch(owner, n=3)
    owner_client.post(reverse("batches:start", args=[batch.pk]))
    url = reverse("batches:process", args=[batch.pk])
    for _ in range(5):
        response = owner_client.post(url, **HX)
        assert response.status_code == 200
        batch.refresh_from_db()
        if batch.status == Batch.Status.COMPLETED:
            break
    assert batch.status == Batch.Status.COMPLETED
    assert batch.processed_items == 3
    body = response.content.decode()
    assert f'<span id="driver-{batch.pk}" hidden></span>' in body
    assert "hx-post" not in body


@pytest.mark.django_db(transaction=True)
def test_process_without_js_runs_a_slice_and_redirects(owner_client, owner):
    batch = real_batch(owner, n=2)
    owner_client.post(reverse("batches:start", args=[batch.pk]))
    response = owner_client.post(reverse("batches:process", args=[batch.pk]), {"next": LIST_URL})
    assert response.status_code == 302
    assert response["Location"] == LIST_URL
    batch.refresh_from_db()
    assert batch.finished_count == 2


def test_process_of_inactive_batch_does_nothing(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(reverse("batches:process", args=[batch.pk]), **HX)
    assert response.status_code == 200
    assert "hx-post" not in response.content.decode()
    batch.refresh_from_db()
    assert batch.status == Batch.Status.UPLOADED


def test_active_batch_resumes_driving_on_page_load(owner_client, owner):
    batch = real_batch(owner)
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING)
    for url, polled in (
        (LIST_URL, 'id="batch-rows"'),
        (batch.get_absolute_url(), 'id="batch-progress"'),
    ):
        body = owner_client.get(url).content.decode()
        assert f'<form id="driver-{batch.pk}" class="driver"' in body
        assert 'hx-trigger="load, retry"' in body
        # Outside the fragment that polls itself, so polling does not restart it.
        polled_fragment = body.split(polled)[1].split("</section>")[0].split("</tbody>")[0]
        assert "driver-" not in polled_fragment
