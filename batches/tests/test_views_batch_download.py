"""batch_download: the results as a file."""

from __future__ import annotations

import pytest
from django.urls import reverse

from batches.tests.factories import BatchFactory
from batches.tests.view_helpers import make_rows, real_batch

pytestmark = pytest.mark.django_db


def test_another_users_download_is_404(client, other_user, owner):
    batch = real_batch(owner)
    client.force_login(other_user)
    assert client.get(reverse("batches:download", args=[batch.pk, "csv"])).status_code == 404


def test_download_streams_export(owner_client, owner):
    batch = BatchFactory(uploader=owner, total_items=1, processed_items=1, status="completed")
    make_rows(batch, 1)
    response = owner_client.get(reverse("batches:download", args=[batch.pk, "csv"]))
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert text.startswith("batch_id,batch_name,row,chat_id")
    assert "Answer 0" in text


def test_download_unknown_format_is_404(owner_client, owner):
    batch = BatchFactory(uploader=owner)
    assert owner_client.get(f"/batches/{batch.pk}/download/pdf/").status_code == 404
