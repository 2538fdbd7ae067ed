"""One log line per batch event, the same whoever drives the batch; JSON logs."""

from __future__ import annotations

import json
import logging

import pytest

from batchchat.logs import JsonFormatter
from batches import services
from batches.events import run_slice
from batches.models import Batch, BatchItem

pytestmark = pytest.mark.django_db(transaction=True)


def events(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "batchchat.batches"]


def test_a_batch_logs_started_slice_and_completed_with_counts(fake_ai, make_batch, caplog):
    caplog.set_level(logging.INFO, logger="batchchat.batches")
    batch = services.start_batch(batch=make_batch(4))

    result = run_slice(batch_id=batch.pk, seconds=10, runner="worker")

    assert result.status == Batch.Status.COMPLETED
    records = events(caplog)
    assert [r.event for r in records] == ["started", "slice", "completed"]
    assert all(r.batch_id == batch.pk for r in records)
    completed = records[-1]
    assert (completed.total, completed.done, completed.failed) == (4, 4, 0)
    assert completed.getMessage() == (
        f"batch {batch.pk} completed: runner=worker total=4 done=4 failed=0"
    )


def test_rows_resting_after_a_rate_limit_log_throttled(fake_ai, make_batch, caplog, settings):
    settings.PROVIDER_MAX_ATTEMPTS = 1
    fake_ai.fail_next(1, "429", retry_after=60)
    caplog.set_level(logging.INFO, logger="batchchat.batches")
    batch = services.start_batch(batch=make_batch(1))

    run_slice(batch_id=batch.pk, seconds=2, runner="page")

    throttled = [r for r in events(caplog) if r.event == "throttled"]
    assert len(throttled) == 1
    assert throttled[0].levelno == logging.WARNING
    assert throttled[0].resting == 1
    assert batch.items.get().status == BatchItem.Status.PENDING


def test_a_batch_level_fault_logs_failed(make_batch, caplog, settings, fake_ai):
    caplog.set_level(logging.INFO, logger="batchchat.batches")
    batch = services.start_batch(batch=make_batch(2))
    settings.COMPATIBLE_BASE_URL = ""  # the provider is no longer configured

    result = run_slice(batch_id=batch.pk, seconds=2, runner="api")

    assert result.status == Batch.Status.FAILED
    failed = [r for r in events(caplog) if r.event == "failed"]
    assert len(failed) == 1 and "COMPATIBLE_BASE_URL" in failed[0].error


def test_json_formatter_puts_event_fields_at_the_top_level():
    record = logging.LogRecord("batchchat.batches", logging.INFO, "x.py", 1, "batch %s", (7,), None)
    record.event, record.batch_id, record.done = "slice", 7, 3

    line = json.loads(JsonFormatter().format(record))

    assert line["message"] == "batch 7"
    assert (line["event"], line["batch_id"], line["done"]) == ("slice", 7, 3)
    assert line["level"] == "INFO" and line["logger"] == "batchchat.batches"
    assert line["time"].endswith("+00:00")
