"""The staff rule (batches.selectors.may_act_on): staff read every batch; only the owner
or a superuser starts, processes, cancels, retries or deletes one. Pages and API alike."""

from __future__ import annotations

import pytest

from batches.models import Batch
from batches.selectors import may_act_on
from batches.tests.api_helpers import ApiClient, error_of
from batches.tests.factories import BatchFactory, BatchItemFactory

ACTIONS = ["start", "cancel", "retry-failed", "delete", "process-for-duration"]


@pytest.fixture
def reader(django_user_model):
    """Staff without superuser rights: support staff who look at batches."""
    return django_user_model.objects.create_user(
        username="support", password="pw-support-123", is_staff=True
    )


@pytest.fixture
def batch(owner):
    batch = BatchFactory(uploader=owner, status="queued", name="Owner's batch")
    BatchItemFactory(batch=batch)
    return batch


@pytest.mark.django_db
def test_the_rule(owner, other_user, reader, staff_user, batch):
    assert may_act_on(owner, batch)
    assert may_act_on(staff_user, batch)  # a superuser
    assert not may_act_on(reader, batch)
    assert not may_act_on(other_user, batch)
    orphan = BatchFactory(uploader=None)
    assert not may_act_on(reader, orphan) and may_act_on(staff_user, orphan)


@pytest.mark.django_db
def test_staff_read_another_users_batch_through_the_api(reader, batch):
    api = ApiClient(reader)
    assert api.get("batch/status", {"batchId": batch.pk}).status_code == 200
    assert batch.pk in [b["batchId"] for b in api.get("batch/list").json()["batches"]]
    assert api.get("batch/results", {"batchId": batch.pk, "format": "csv"}).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("action", ACTIONS)
def test_staff_cannot_act_on_another_users_batch_through_the_api(reader, batch, action):
    response = ApiClient(reader).post(f"batch/{action}", {"batchId": batch.pk})

    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "forbidden" and "only its owner" in error["message"]
    batch.refresh_from_db()
    assert batch.status == "queued"


@pytest.mark.django_db
def test_a_superuser_may_act_on_any_batch(staff_user, batch):
    response = ApiClient(staff_user).post("batch/cancel", {"batchId": batch.pk})
    assert response.status_code == 200
    assert Batch.objects.get(pk=batch.pk).status == "cancelled"


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["start", "cancel", "retry", "delete", "process"])
def test_staff_cannot_act_through_the_pages(client, reader, batch, action):
    client.force_login(reader)
    response = client.post(f"/batches/{batch.pk}/{action}/")
    assert response.status_code == 403
    assert Batch.objects.get(pk=batch.pk).status == "queued"


@pytest.mark.django_db
def test_staff_see_the_batch_page_without_actions_or_driver(client, reader, batch):
    client.force_login(reader)
    page = client.get(f"/batches/{batch.pk}/").content.decode()
    assert "Owner&#x27;s batch" in page or "Owner's batch" in page
    assert f"/batches/{batch.pk}/cancel/" not in page
    assert f"/batches/{batch.pk}/delete/" not in page
    assert f"/batches/{batch.pk}/process/" not in page  # their page does not drive it
    listing = client.get("/batches/").content.decode()
    assert f"/batches/{batch.pk}/cancel/" not in listing


@pytest.mark.django_db
def test_the_owner_still_sees_the_actions(owner_client, batch):
    page = owner_client.get(f"/batches/{batch.pk}/").content.decode()
    assert f"/batches/{batch.pk}/cancel/" in page and f"/batches/{batch.pk}/delete/" in page
