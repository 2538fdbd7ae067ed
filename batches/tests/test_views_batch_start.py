"""batch_start: from the list or the detail page, with and without htmx."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.models import Batch
from batches.tests.view_helpers import HX, LIST_URL, completed, real_batch

pytestmark = pytest.mark.django_db


def test_start_without_js_redirects_back(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(reverse("batches:start", args=[batch.pk]), {"next": LIST_URL})
    assert response.status_code == 302
    assert response["Location"] == LIST_URL
    batch.refresh_from_db()
    assert batch.status == Batch.Status.QUEUED


def test_start_ignores_foreign_next_url(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(
        reverse("batches:start", args=[batch.pk]), {"next": "https://evil.example/"}
    )
    assert response["Location"] == batch.get_absolute_url()


def test_start_with_htmx_returns_list_with_driver_and_polling(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(
        reverse("batches:start", args=[batch.pk]), HTTP_HX_TARGET="batch-list-body", **HX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="batch-list-body"' in body
    # The driver is replaced out of band: it lives outside the polled rows.
    driver = body.split(f'<form id="driver-{batch.pk}"')[1].split(">")[0]
    assert 'hx-swap-oob="true"' in driver
    assert f'hx-post="{reverse("batches:process", args=[batch.pk])}"' in body
    assert "Keep this page open: processing runs from this page." in body
    assert 'hx-trigger="poll" data-poll' in body
    assert "started" in body


def test_start_from_detail_returns_progress_fragment(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(
        reverse("batches:start", args=[batch.pk]), HTTP_HX_TARGET="batch-progress", **HX
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="batch-progress"')
    assert reverse("batches:progress", args=[batch.pk]) in body
    section = body.split("</section>")[0]
    assert "driver-" not in section  # a poll of the section must not restart the driver
    assert f'<form id="driver-{batch.pk}" class="driver"' in body


def test_state_errors_reach_the_page_in_french(owner_client, owner):
    batch = completed(owner)
    owner_client.cookies["django_language"] = "fr"
    response = owner_client.post(reverse("batches:start", args=[batch.pk]), follow=True)
    assert "Ce lot est terminé" in response.text
