"""POST /api/batch/process-for-duration: the whole flow end to end (real services, the
offline extractive provider), and the asked concurrency."""

from __future__ import annotations

import csv
import io

import pytest

from batches.models import Batch
from batches.tests.api_helpers import ROWS, create_json


@pytest.mark.django_db(transaction=True)
def test_json_batch_is_created_processed_and_downloaded(api, owner):
    created = create_json(api)
    assert created["totalItems"] == 3
    assert created["status"] == "uploaded"
    assert created["aiProvider"] == "extractive" and created["model"] == "extractive"
    batch_id = created["batchId"]
    assert Batch.objects.get(pk=batch_id).uploader == owner

    response = api.post("batch/process-for-duration", {"batchId": batch_id, "seconds": 20})
    assert response.status_code == 200, response.content
    progress = response.json()
    assert progress["status"] == "completed"
    assert progress["remaining"] == 0
    assert progress["sliceDone"] == 3 and progress["sliceFailed"] == 0
    assert progress["processedItems"] == 3 and progress["lastProcessedIndex"] == 3
    assert progress["progressPercent"] == 100

    status = api.get("batch/status", {"batchId": batch_id}).json()
    assert status["status"] == "completed" and status["processedItems"] == 3

    download = api.get("batch/results", {"batchId": batch_id, "format": "csv"})
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    assert f'filename="batchchat-{batch_id}-api-batch-' in download["Content-Disposition"]
    text = b"".join(download.streaming_content).decode("utf-8-sig")
    records = list(csv.DictReader(io.StringIO(text)))
    assert [r["question"] for r in records] == [
        row.get("question", "What is the fee?") for row in ROWS
    ]
    assert [r["input.team"] for r in records] == ["A", "B", "C"]
    assert all(r["status"] == "done" and r["answer"] for r in records)


@pytest.mark.django_db(transaction=True)
def test_process_for_duration_puts_the_asked_concurrency_in_flight(api, fake_ai, settings):
    settings.BATCH_CONCURRENCY = 2
    fake_ai.latency = 0.5
    rows = [{"question": f"Question {i}?"} for i in range(12)]
    created = create_json(
        api, rows=rows, aiProvider="compatible", model="local-model", searchProvider="none"
    )

    response = api.post(
        "batch/process-for-duration",
        {"batchId": created["batchId"], "seconds": 30, "concurrency": 6},
    )

    assert response.status_code == 200, response.content
    assert response.json()["remaining"] == 0
    assert fake_ai.max_in_flight > 2  # the asked 6, not the default 2 (timing allowing)
    too_many = api.post(
        "batch/process-for-duration", {"batchId": created["batchId"], "concurrency": 0}
    )
    assert too_many.status_code == 400  # a validation error, as for every field
