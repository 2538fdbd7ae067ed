"""batch_detail: rows with answers, status filters, pagination."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from batches.tests.factories import BatchFactory, BatchItemFactory
from batches.tests.view_helpers import make_rows

pytestmark = pytest.mark.django_db


def test_detail_shows_rows_with_answers_and_chat_links(owner_client, owner):
    batch = BatchFactory(uploader=owner, total_items=2, processed_items=2, status="completed")
    make_rows(batch, 2)
    body = owner_client.get(batch.get_absolute_url()).content.decode()
    item = batch.items.first()
    assert "Answer 0" in body
    assert item.chat.get_absolute_url() in body
    assert "https://example.org/doc" in body  # citation link
    assert "100 / 20" in body  # tokens in / out
    assert "All (2)" in body and "Done (2)" in body and "Failed (0)" in body


def test_detail_filters_by_status(owner_client, owner):
    batch = BatchFactory(uploader=owner, total_items=3)
    BatchItemFactory(batch=batch, position=0, status="done", question="Fine question")
    BatchItemFactory(
        batch=batch, position=1, status="failed", error="Provider said no", question="Bad question"
    )
    body = owner_client.get(batch.get_absolute_url() + "?status=failed").content.decode()
    assert "Bad question" in body and "Provider said no" in body
    assert "Fine question" not in body
    assert 'aria-current="true">Failed (1)' in body


def test_detail_paginates_with_fixed_queries_per_page(owner_client, owner):
    small = BatchFactory(uploader=owner)
    make_rows(small, 3)
    big = BatchFactory(uploader=owner)
    make_rows(big, 60)
    with CaptureQueriesContext(connection) as few:
        owner_client.get(small.get_absolute_url())
    with CaptureQueriesContext(connection) as many:
        response = owner_client.get(big.get_absolute_url())
    assert len(many) == len(few)
    body = response.content.decode()
    assert "Page 1 of 2" in body
    assert body.count('<tr id="row-') == 50
    page2 = owner_client.get(big.get_absolute_url() + "?page=2").content.decode()
    assert page2.count('<tr id="row-') == 10
