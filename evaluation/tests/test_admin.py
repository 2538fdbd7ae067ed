from __future__ import annotations

import pytest
from django.urls import reverse

from evaluation.tests.test_sets import upload

pytestmark = pytest.mark.django_db


def test_staff_see_sets_with_their_questions_and_runs(client, owner, staff_user):
    batch = upload(owner)
    client.force_login(staff_user)
    listing = client.get(reverse("admin:evaluation_questionset_changelist"))
    assert listing.status_code == 200
    assert b"weekly" in listing.content
    url = reverse("admin:evaluation_questionset_change", args=[batch.set_run.question_set_id])
    page = client.get(url)
    assert page.status_code == 200
    assert b"q2" in page.content
