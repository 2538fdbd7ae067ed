"""The start step's estimate and the budget form on the batch page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.models import Batch
from batches.tests.view_helpers import HX, real_batch

pytestmark = pytest.mark.django_db


def test_start_step_shows_the_estimate(owner_client, owner):
    batch = real_batch(owner, n=4)
    response = owner_client.get(batch.get_absolute_url())
    html = response.content.decode()
    assert 'id="batch-estimate"' in html
    assert "Estimate before start" in html
    # extractive is shipped free: a known price of 0.
    assert response.context["estimate"]["calls"]["total"] == 4
    assert response.context["estimate"]["cost"]["realtime"] == 0


def test_unknown_price_is_said_on_the_page(owner_client, owner, settings):
    settings.COMPATIBLE_BASE_URL = "http://127.0.0.1:9/v1"
    settings.COMPATIBLE_MODELS = ["local-model"]
    batch = real_batch(owner)
    Batch.objects.filter(pk=batch.pk).update(ai_provider="compatible", model="local-model")
    batch.refresh_from_db()
    html = owner_client.get(batch.get_absolute_url()).content.decode()
    assert "unknown: no price for this model" in html


def test_budget_form_sets_the_budget(owner_client, owner):
    batch = real_batch(owner)
    response = owner_client.post(reverse("batches:budget", args=[batch.pk]), {"budget": "2,50"})
    assert response.status_code == 302
    batch.refresh_from_db()
    assert str(batch.budget) == "2.5000"


def test_budget_form_refuses_a_word(owner_client, owner):
    batch = real_batch(owner)
    owner_client.post(reverse("batches:budget", args=[batch.pk]), {"budget": "lots"})
    batch.refresh_from_db()
    assert batch.budget is None


def test_budget_of_another_users_batch_is_404(client, other_user, owner):
    batch = real_batch(owner)
    client.force_login(other_user)
    assert (
        client.post(reverse("batches:budget", args=[batch.pk]), {"budget": "1"}).status_code == 404
    )
    assert client.get(reverse("batches:budget", args=[batch.pk])).status_code in (404, 405)


def test_paused_batch_says_why_and_raising_the_budget_resumes_it(owner_client, owner):
    batch = real_batch(owner)
    Batch.objects.filter(pk=batch.pk).update(
        status=Batch.Status.PAUSED, pause_reason=Batch.PauseReason.BUDGET, budget=1, spent=1
    )
    html = owner_client.get(batch.get_absolute_url()).content.decode()
    assert "Paused: budget reached" in html
    assert "Raise the budget and resume" in html
    response = owner_client.post(reverse("batches:budget", args=[batch.pk]), {"budget": "5"}, **HX)
    assert response.status_code == 200
    batch.refresh_from_db()
    assert batch.status == Batch.Status.QUEUED
