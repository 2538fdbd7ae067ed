"""POST /api/batch/start, cancel, retry-failed and delete."""

from __future__ import annotations

import pytest

from batches.models import Batch, BatchItem
from batches.tests.api_helpers import create_json, error_of
from batches.tests.factories import BatchFactory, BatchItemFactory


@pytest.mark.django_db
def test_start_in_the_inline_runner_says_how_to_drive_processing(api, settings):
    settings.CELERY_BROKER_URL = ""
    batch_id = create_json(api)["batchId"]
    response = api.post("batch/start", {"batchId": batch_id})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "queued" and body["runner"] == "inline"
    assert "process-for-duration" in body["message"]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_start_with_celery_enqueues_slice_tasks(api, settings):
    import redis

    from batchchat.celery import app as celery_app
    from batches.tests.processes import TEST_BROKER_URL as broker

    queue = redis.Redis.from_url(broker)
    queue.flushdb()
    settings.CELERY_BROKER_URL = broker
    celery_app.conf.broker_url = broker
    try:
        batch_id = create_json(api)["batchId"]
        response = api.post("batch/start", {"batchId": batch_id})
        assert response.status_code == 200
        body = response.json()
        assert (body["status"], body["runner"]) == ("queued", "celery")
        assert "Celery" in body["message"]
        assert queue.llen("celery") == settings.BATCH_PARALLEL_SLICES
    finally:
        queue.flushdb()


@pytest.mark.django_db(transaction=True)
def test_cancel_then_process_is_a_conflict_and_start_resumes(api):
    batch_id = create_json(api)["batchId"]

    cancelled = api.post("batch/cancel", {"batchId": batch_id})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    conflict = api.post("batch/process-for-duration", {"batchId": batch_id})
    assert conflict.status_code == 409
    error = error_of(conflict)
    assert error["code"] == "conflict" and "cancelled" in error["message"]

    again = api.post("batch/cancel", {"batchId": batch_id})
    assert again.status_code == 409

    assert api.post("batch/start", {"batchId": batch_id}).json()["status"] == "queued"
    done = api.post("batch/process-for-duration", {"batchId": batch_id}).json()
    assert done["status"] == "completed" and done["remaining"] == 0


@pytest.mark.django_db
def test_retry_failed_requeues_failed_rows_and_refuses_when_none(api, owner):
    batch = BatchFactory(uploader=owner, status=Batch.Status.COMPLETED, total_items=2)
    BatchItemFactory(batch=batch, position=0, status=BatchItem.Status.DONE)
    BatchItemFactory(batch=batch, position=1, status=BatchItem.Status.FAILED, error="boom")

    response = api.post("batch/retry-failed", {"batchId": batch.pk})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "queued"
    assert batch.items.get(position=1).status == BatchItem.Status.PENDING

    nothing = BatchFactory(uploader=owner, status=Batch.Status.COMPLETED)
    conflict = api.post("batch/retry-failed", {"batchId": nothing.pk})
    assert conflict.status_code == 409
    assert error_of(conflict)["code"] == "conflict"


@pytest.mark.django_db
def test_delete_removes_the_batch(api):
    batch_id = create_json(api)["batchId"]
    response = api.post("batch/delete", {"batchId": batch_id})
    assert response.status_code == 200
    assert response.json() == {"batchId": batch_id, "deleted": True}
    assert not Batch.objects.filter(pk=batch_id).exists()
    assert api.get("batch/status", {"batchId": batch_id}).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("body", [b"{oops", b"{}", b'{"batchId": "abc"}', b'{"batchId": 0}'])
def test_bad_batch_id_bodies_are_400(api, body):
    response = api.client.post(
        "/api/batch/cancel", body, content_type="application/json", headers=api.headers
    )
    assert response.status_code == 400
    assert error_of(response)["code"] in {"bad_json", "invalid_fields"}
