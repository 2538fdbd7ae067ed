"""The Celery runner with a real worker process and Redis as the broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.db.models import Count

from batchchat.celery import app as celery_app
from batchchat.tests.waiting import wait_until
from batches import services
from batches.models import Batch, BatchItem
from batches.tests.assertions import (
    assert_counters_match_recount,
    assert_one_interaction_per_done_item,
)
from batches.tests.processes import ROOT, TEST_BROKER_URL, child_env
from chats.models import Interaction

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.redis,
    pytest.mark.postgres,  # the production set-up; the SQLite pass skips these
    pytest.mark.slow,
]

BROKER_URL = TEST_BROKER_URL  # one Redis database per test process (see processes.py)


@pytest.fixture
def broker_url(settings):
    import redis

    client = redis.Redis.from_url(BROKER_URL)
    client.flushdb()
    settings.CELERY_BROKER_URL = BROKER_URL
    celery_app.conf.broker_url = BROKER_URL
    yield BROKER_URL
    client.flushdb()


class Worker:
    """`celery worker -B` in its own process group, so SIGKILL takes its children too."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen | None = None
        folder = Path(tempfile.mkdtemp(prefix="celery-test-"))
        self.log = folder / "worker.log"
        self.schedule = folder / "beat-schedule"

    def start(self) -> None:
        with self.log.open("a") as log:
            self.proc = self._spawn(log)

    def _spawn(self, log) -> subprocess.Popen:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "batchchat",
                "worker",
                "-B",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--pool",
                "prefork",
                "--without-gossip",
                "--without-mingle",
                "--schedule",
                str(self.schedule),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def worker_env(fake_ai, broker_url):
    return child_env(
        fake_ai,
        CELERY_BROKER_URL=broker_url,
        BATCH_SLICE_SECONDS=2,
        BATCH_LEASE_SECONDS=3,
        BATCH_CONCURRENCY=4,
        BATCH_PARALLEL_SLICES=2,
        CELERY_BEAT_RECOVER_SECONDS=2,
    )


@pytest.fixture
def worker(worker_env):
    started = Worker(worker_env)
    started.start()
    yield started
    started.stop()


def wait_for(predicate, *, timeout: float, worker: Worker, what: str) -> None:
    wait_until(
        predicate,
        timeout=timeout,
        interval=0.2,
        message=lambda: f"waiting for {what}; worker log:\n{worker.output()}",
    )


def no_slice_task_left() -> bool:
    """Nothing queued and nothing delivered but unacknowledged: with acks_late a slice
    task is acknowledged after it has enqueued its successor, so every chain has ended."""
    import redis

    broker = redis.Redis.from_url(BROKER_URL)
    return broker.llen("celery") == 0 and broker.hlen("unacked") == 0


def status_of(batch: Batch) -> str:
    batch.refresh_from_db()
    return batch.status


def assert_no_duplicates(batch: Batch) -> None:
    assert_one_interaction_per_done_item(batch)
    assert_counters_match_recount(batch)
    per_chat = Interaction.objects.filter(chat__batch_items__batch=batch).values("chat")
    assert max(row["n"] for row in per_chat.annotate(n=Count("id"))) == 1


def test_worker_completes_a_started_batch(fake_ai, make_batch, worker, settings):
    fake_ai.latency = 0.05
    settings.BATCH_PARALLEL_SLICES = 2
    batch = make_batch(30)

    services.start_batch(batch=batch)

    wait_for(
        lambda: status_of(batch) == Batch.Status.COMPLETED,
        timeout=60,
        worker=worker,
        what="completion",
    )
    assert batch.processed_items == 30
    assert_no_duplicates(batch)


def test_killed_worker_is_replaced_and_the_batch_completes_without_duplicates(
    fake_ai, make_batch, worker, worker_env
):
    fake_ai.latency = 0.3
    batch = make_batch(40)
    services.start_batch(batch=batch)
    wait_for(
        lambda: batch.items.filter(status=BatchItem.Status.DONE).count() >= 4,
        timeout=60,
        worker=worker,
        what="first rows",
    )

    worker.kill()
    assert status_of(batch) == Batch.Status.PROCESSING
    assert batch.processed_items < 40
    replacement = Worker(worker_env)
    replacement.start()
    try:
        # Beat finds the batch with no live lease and restarts its slice chains.
        wait_for(
            lambda: status_of(batch) == Batch.Status.COMPLETED,
            timeout=90,
            worker=replacement,
            what="completion after the restart",
        )
    finally:
        replacement.stop()
    assert batch.processed_items == 40
    assert_no_duplicates(batch)


def test_cancel_mid_run_stops_the_workers(fake_ai, make_batch, worker):
    fake_ai.latency = 0.3
    batch = make_batch(60)
    services.start_batch(batch=batch)
    wait_for(
        lambda: batch.items.filter(status=BatchItem.Status.DONE).exists(),
        timeout=60,
        worker=worker,
        what="first rows",
    )

    services.cancel_batch(batch=batch)
    requests_at_cancel = len(fake_ai.requests)
    in_flight = batch.items.filter(status=BatchItem.Status.RUNNING).count()
    wait_for(
        lambda: not batch.items.filter(status=BatchItem.Status.RUNNING).exists(),
        timeout=30,
        worker=worker,
        what="rows in flight to finish",
    )
    # A chain that wrongly went on after the cancel would keep a task queued or in hand.
    wait_for(no_slice_task_left, timeout=30, worker=worker, what="the slice chains to end")

    assert status_of(batch) == Batch.Status.CANCELLED
    assert len(fake_ai.requests) - requests_at_cancel <= in_flight
    assert batch.items.filter(status=BatchItem.Status.CANCELLED).exists()
    assert_no_duplicates(batch)
