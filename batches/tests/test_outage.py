"""A provider outage mid-run pauses the batch and fails no row: the fake provider server is
stopped while the batch runs and started again after a while (issue 27, item 1)."""

from __future__ import annotations

import threading
import time

import pytest

from batches import engine
from batches.models import Batch, BatchItem

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 90  # generous: the condition is polled, never a fixed wait


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_batch_rides_out_a_provider_outage_with_no_failed_row(fake_ai, settings, make_batch):
    settings.PROVIDER_BREAKER_FAILURES = 2
    settings.PROVIDER_BREAKER_PROBE_SECONDS = 0.2
    settings.PROVIDER_BACKOFF_BASE = 0.01
    settings.REDIS_URL = ""
    fake_ai.latency = 0.2  # the batch runs for several seconds
    batch = make_batch(60)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            engine.process_for_duration(batch_id=batch.pk, seconds=TIMEOUT, concurrency=4)
        except BaseException as exc:  # surfaced in the test thread
            errors.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        _wait_for(
            lambda: BatchItem.objects.filter(batch=batch, status="done").count() >= 5,
            "the first rows",
        )
        fake_ai.stop()
        # The outage shows on the batch (published by the running slice) and no row fails.
        _wait_for(lambda: Batch.objects.get(pk=batch.pk).outage is not None, "the outage notice")
        outage = Batch.objects.get(pk=batch.pk).outage
        assert outage["reason"] == "connection"
        assert outage["last_success"] is not None
        done_during_outage = BatchItem.objects.filter(batch=batch, status="done").count()
        assert BatchItem.objects.filter(batch=batch, status="failed").count() == 0
        fake_ai.start()
    finally:
        runner.join(TIMEOUT)
    assert not errors, errors
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED
    assert (batch.processed_items, batch.failed_items) == (60, 0)
    assert done_during_outage < 60
    assert batch.outage is None and batch.throttle == {}
