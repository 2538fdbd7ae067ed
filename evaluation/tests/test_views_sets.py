"""The batch page's question set line and the offer of an identical upload."""

from __future__ import annotations

import pytest
from django.urls import reverse

from evaluation.models import Run
from evaluation.tests.test_sets import upload

pytestmark = pytest.mark.django_db


def test_the_page_names_the_set_and_offers_a_set_of_its_own(owner, owner_client):
    first = upload(owner)
    page = owner_client.get(first.get_absolute_url())
    assert b'id="batch-set"' in page.content
    assert reverse("evaluation:own_set", args=[first.pk]).encode() not in page.content

    second = upload(owner, name="same file")
    url = reverse("evaluation:own_set", args=[second.pk])
    assert url.encode() in owner_client.get(second.get_absolute_url()).content
    response = owner_client.post(url)
    assert response.status_code == 302
    assert Run.objects.get(batch=second).question_set_id != first.set_run.question_set_id


def test_own_set_is_not_for_others(owner, other_user, client):
    upload(owner)
    batch = upload(owner, name="same file")
    client.force_login(other_user)
    url = reverse("evaluation:own_set", args=[batch.pk])
    assert client.post(url).status_code == 404
    assert client.get(url).status_code == 405
