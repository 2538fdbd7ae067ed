"""GET /api/batch/list and /api/batch/status: pages, filters, fields, fixed query counts."""

from __future__ import annotations

import pytest

from batches.models import Batch
from batches.tests.api_helpers import error_of
from batches.tests.factories import BatchFactory


@pytest.mark.django_db
def test_list_is_newest_first_filtered_and_paginated(api, owner):
    batches = [BatchFactory(uploader=owner, name=f"b{i}") for i in range(5)]
    batches[1].status = Batch.Status.COMPLETED
    batches[1].save()

    first = api.get("batch/list", {"page": 1, "pageSize": 2}).json()
    assert (first["page"], first["pageSize"], first["total"], first["pages"]) == (1, 2, 5, 3)
    assert [b["name"] for b in first["batches"]] == ["b4", "b3"]
    last = api.get("batch/list", {"page": 3, "pageSize": 2}).json()
    assert [b["name"] for b in last["batches"]] == ["b0"]
    beyond = api.get("batch/list", {"page": 9}).json()
    assert beyond["batches"] == [] and beyond["total"] == 5

    completed = api.get("batch/list", {"status": "completed"}).json()
    assert [b["name"] for b in completed["batches"]] == ["b1"]
    assert api.get("batch/list", {"status": ""}).json()["total"] == 5

    bad = api.get("batch/list", {"status": "nonsense", "pageSize": 1000})
    assert bad.status_code == 400
    assert set(error_of(bad)["fields"]) == {"status", "pageSize"}


@pytest.mark.django_db
def test_a_batch_carries_every_documented_field(api, owner):
    BatchFactory(uploader=owner)
    item = api.get("batch/list").json()["batches"][0]
    assert {
        "batchId",
        "name",
        "status",
        "aiProvider",
        "model",
        "searchProvider",
        "pageLanguage",
        "totalItems",
        "processedItems",
        "failedItems",
        "lastProcessedIndex",
        "createdAt",
    } <= set(item)


@pytest.mark.django_db
@pytest.mark.parametrize("count", [3, 60])
def test_list_and_status_cost_a_fixed_number_of_queries(
    api, owner, count, django_assert_max_num_queries
):
    batches = [BatchFactory(uploader=owner) for _ in range(count)]
    api.get("batch/list")  # the token's first use records last_used_at; measure after it

    # token lookup, count, page, the page's guard counts, its grade summaries
    with django_assert_max_num_queries(5):
        response = api.get("batch/list", {"pageSize": 100})
    assert len(response.json()["batches"]) == count
    # token lookup, batch, its guard counts, its grade summary, its reviews' agreement
    with django_assert_max_num_queries(5):
        assert api.get("batch/status", {"batchId": batches[-1].pk}).status_code == 200
