"""The outage notice as the pages, the list and the API status show it (from what the
running slice publishes on the batch)."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse
from django.utils import translation

from batches.models import Batch
from batches.tests.view_helpers import real_batch

pytestmark = pytest.mark.django_db


def _down(owner) -> Batch:
    batch = real_batch(owner)
    outage = {"since": time.time() - 5, "reason": "connection", "last_success": time.time() - 6}
    Batch.objects.filter(pk=batch.pk).update(
        status="processing",
        throttle={"until": None, "in_flight": 0, "limit": None, "concurrency": 4, "outage": outage},
    )
    return batch


def test_detail_and_list_say_the_provider_does_not_answer(owner_client, owner):
    batch = _down(owner)
    detail = owner_client.get(reverse("batches:detail", args=[batch.pk])).content.decode()
    assert "The provider does not answer (connection refused), retrying;" in detail
    assert "Last answer at" in detail
    assert "paused: the provider does not answer" in detail
    listing = owner_client.get(reverse("batches:list")).content.decode()
    assert "The provider does not answer (connection refused)" in listing


def test_the_notice_is_in_french(owner_client, owner):
    batch = _down(owner)
    with translation.override("fr"):
        detail = owner_client.get(
            reverse("batches:detail", args=[batch.pk]), HTTP_ACCEPT_LANGUAGE="fr"
        ).content.decode()
    assert "Le fournisseur ne répond pas (connexion refusée)" in detail


def test_no_notice_once_the_batch_is_finished(owner_client, owner):
    batch = _down(owner)
    Batch.objects.filter(pk=batch.pk).update(status="completed")
    detail = owner_client.get(reverse("batches:detail", args=[batch.pk])).content.decode()
    assert "does not answer" not in detail


def test_api_status_carries_the_outage(api, owner):
    batch = _down(owner)
    body = api.get("batch/status", {"batchId": batch.pk}).json()
    outage = body["outage"] if "outage" in body else body["batch"]["outage"]
    assert outage["reason"] == "connection"
    assert outage["rowsWaiting"] == Batch.objects.get(pk=batch.pk).remaining
    assert outage["lastSuccess"] is not None


def test_run_batch_progress_line_says_the_provider_does_not_answer(owner, settings):
    from batches.cli.console import throttle_note as _throttle_note
    from chats.providers import breaker
    from chats.services import run_on_provider_loop

    settings.REDIS_URL = ""
    settings.PROVIDER_BREAKER_FAILURES = 1
    batch = real_batch(owner)
    assert _throttle_note(batch, 4, remaining=7) == ""
    run_on_provider_loop(breaker.failed(batch.ai_provider, batch.model, "timeout"))
    note = _throttle_note(batch, 4, remaining=7)
    assert note.startswith("the provider does not answer (timeouts), retrying; 7 rows waiting")
    assert "last answer: none yet" in note
