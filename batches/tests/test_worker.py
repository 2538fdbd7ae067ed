"""The broker-less worker (`run_worker`): drives active batches, shares its time between
them, heartbeats, and stops cleanly on SIGTERM; the pages and the API follow it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from batchchat.tests.waiting import wait_until
from batches import services
from batches.models import Batch, BatchItem, WorkerHeartbeat
from batches.selectors import worker_alive
from batches.tests.assertions import (
    assert_counters_match_recount,
    assert_one_interaction_per_done_item,
)
from batches.tests.processes import ROOT, child_env
from batches.worker import Worker

HX = {"HTTP_HX_REQUEST": "true"}


def alive_heartbeat(name: str = "test-worker") -> WorkerHeartbeat:
    return WorkerHeartbeat.objects.create(name=name, hostname="test", pid=1)


# --- Driving batches ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_worker_drives_a_started_batch_to_completion(fake_ai, make_batch):
    batch = services.start_batch(batch=make_batch(12))
    worker = Worker(slice_seconds=2, poll_seconds=0.05, concurrency=4)

    deadline = time.monotonic() + 60
    while worker.run_once():
        assert time.monotonic() < deadline

    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED
    assert worker.rows_done == 12 and worker.rows_failed == 0
    assert_one_interaction_per_done_item(batch)
    assert_counters_match_recount(batch)
    assert len(fake_ai.requests) == 12


@pytest.mark.django_db(transaction=True)
def test_worker_takes_batches_in_turn(fake_ai, make_batch):
    fake_ai.latency = 0.05
    first = services.start_batch(batch=make_batch(50, name="first"))
    second = services.start_batch(batch=make_batch(50, name="second"))
    worker = Worker(slice_seconds=0.3, poll_seconds=0.05, concurrency=2)

    assert worker.run_once() and worker.run_once()

    first.refresh_from_db()
    second.refresh_from_db()
    # Each got one short slice: neither waited for the other to finish.
    assert first.processed_items > 0 and second.processed_items > 0
    assert first.remaining > 0 and second.remaining > 0


@pytest.mark.django_db
def test_worker_has_nothing_to_do_without_active_batches(make_batch):
    make_batch(3, ai_provider="extractive", model="")  # uploaded, never started
    cancelled = services.cancel_batch(
        batch=services.start_batch(batch=make_batch(3, ai_provider="extractive", model=""))
    )
    assert cancelled.status == Batch.Status.CANCELLED

    assert Worker(poll_seconds=0.05).run_once() is False


# --- Heartbeat --------------------------------------------------------------------------


@pytest.mark.django_db
def test_heartbeat_makes_the_worker_alive_until_it_is_too_old(settings):
    settings.WORKER_HEARTBEAT_TIMEOUT = 15
    assert not worker_alive()
    worker = Worker()
    worker.beat()
    beat = WorkerHeartbeat.objects.get(name=worker.name)
    assert beat.pid == worker.pid and beat.is_alive()
    assert worker_alive()

    WorkerHeartbeat.objects.update(last_seen=timezone.now() - timedelta(seconds=16))
    assert not worker_alive()


@pytest.mark.django_db
def test_a_stopped_worker_removes_its_heartbeat_and_old_ones():
    WorkerHeartbeat.objects.create(
        name="killed-last-week", hostname="h", pid=2, last_seen=timezone.now() - timedelta(days=7)
    )
    worker = Worker(poll_seconds=0.05)
    worker.request_stop()
    worker.run()  # beats once, finds it must stop, cleans up

    assert not WorkerHeartbeat.objects.exists()


# --- The pages and the API follow the worker ----------------------------------------------


@pytest.mark.django_db
def test_with_a_live_worker_the_page_only_watches(owner_client, make_batch):
    batch = services.start_batch(batch=make_batch(3, ai_provider="extractive", model=""))
    alive_heartbeat()

    page = owner_client.get(f"/batches/{batch.pk}/").content.decode()
    assert "A background worker is processing" in page
    assert "Keep this page open" not in page
    assert 'hx-trigger="load delay:5s, retry"' in page

    response = owner_client.post(f"/batches/{batch.pk}/process/", **HX)
    assert response.status_code == 200
    batch.refresh_from_db()
    assert batch.status == Batch.Status.QUEUED  # the page ran no slice
    assert batch.items.filter(status=BatchItem.Status.PENDING).count() == 3
    assert "A background worker is processing" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_without_a_live_worker_the_page_drives_slices(owner_client, make_batch, settings):
    settings.WORKER_HEARTBEAT_TIMEOUT = 15
    batch = services.start_batch(batch=make_batch(3, ai_provider="extractive", model=""))
    WorkerHeartbeat.objects.create(
        name="dead", hostname="h", pid=3, last_seen=timezone.now() - timedelta(seconds=60)
    )

    page = owner_client.get(f"/batches/{batch.pk}/").content.decode()
    assert "Keep this page open" in page
    owner_client.post(f"/batches/{batch.pk}/process/", **HX)

    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED


@pytest.mark.django_db
def test_status_says_waiting_for_a_worker_until_one_is_alive(owner_client, make_batch):
    batch = services.start_batch(batch=make_batch(3, ai_provider="extractive", model=""))

    assert "Waiting for a worker" in owner_client.get("/batches/").content.decode()
    assert "Waiting for a worker" in owner_client.get(f"/batches/{batch.pk}/").content.decode()
    alive_heartbeat()
    page = owner_client.get(f"/batches/{batch.pk}/").content.decode()
    assert "Waiting for a worker" not in page
    assert "activity-processing" in page


@pytest.mark.django_db
def test_a_batch_someone_is_working_on_is_processing(owner_client, make_batch):
    batch = services.start_batch(batch=make_batch(3, ai_provider="extractive", model=""))
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING)
    # A page in another tab holds a row: processing, though no worker is alive.
    Batch.objects.filter(pk=batch.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    batch.items.filter(position=0).update(
        status=BatchItem.Status.RUNNING,
        lease_owner="tab",
        lease_expires_at=timezone.now() + timedelta(minutes=1),
    )
    batch.refresh_from_db()
    assert batch.activity == Batch.ACTIVITY_PROCESSING

    batch.items.filter(position=0).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    batch.refresh_from_db()
    assert batch.activity == Batch.ACTIVITY_WAITING


@pytest.mark.django_db
def test_api_status_and_start_tell_the_activity(make_batch, owner):
    from batches.tests.api_helpers import ApiClient

    api = ApiClient(owner)
    batch = make_batch(3, ai_provider="extractive", model="")
    started = api.post("batch/start", {"batchId": batch.pk}).json()
    assert started["runner"] == "inline"
    assert started["activity"] == "waiting_for_worker"
    assert api.get("batch/status", {"batchId": batch.pk}).json()["activity"] == (
        "waiting_for_worker"
    )

    alive_heartbeat()
    assert api.get("batch/status", {"batchId": batch.pk}).json()["activity"] == "processing"
    listed = api.get("batch/list").json()["batches"]
    assert [b["activity"] for b in listed] == ["processing"]
    services.cancel_batch(batch=batch)
    assert api.get("batch/status", {"batchId": batch.pk}).json()["activity"] is None
    restarted = api.post("batch/start", {"batchId": batch.pk}).json()
    assert restarted["runner"] == "worker"
    assert "run_worker" in restarted["message"]


# --- The command: SIGTERM ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigterm_finishes_rows_in_flight_gives_back_the_rest_and_exits_0(fake_ai, make_batch):
    fake_ai.latency = 0.3
    batch = services.start_batch(batch=make_batch(400))
    # One slice could take the whole batch: SIGTERM must end it early (should_stop).
    env = child_env(fake_ai, WORKER_SLICE_SECONDS=600, WORKER_HEARTBEAT_SECONDS=0.5)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker", "--concurrency", "4"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(
            lambda: (
                batch.items.filter(status=BatchItem.Status.DONE).count() >= 4
                and proc.poll() is None
            ),
            timeout=60,
            message="the worker did not answer rows",
        )
        assert worker_alive()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert proc.returncode == 0, err
    assert "stopped after" in out
    batch.refresh_from_db()
    # Rows in flight were finished, the others given back: nothing left leased.
    assert not batch.items.filter(status=BatchItem.Status.RUNNING).exists()
    assert batch.status == Batch.Status.PROCESSING and batch.remaining > 0
    assert_one_interaction_per_done_item(batch)
    assert_counters_match_recount(batch)
    assert not WorkerHeartbeat.objects.exists()
    assert batch.activity == Batch.ACTIVITY_PROCESSING or not worker_alive()


# --- Settings and admin --------------------------------------------------------------------


def test_a_heartbeat_timeout_shorter_than_the_heartbeat_is_refused(settings):
    from batches.checks import check_worker_settings

    settings.WORKER_HEARTBEAT_SECONDS = 5
    settings.WORKER_HEARTBEAT_TIMEOUT = 5
    settings.WORKER_SLICE_SECONDS = 0
    ids = [error.id for error in check_worker_settings(None)]
    assert ids == ["batches.E001", "batches.E002"]

    settings.WORKER_HEARTBEAT_TIMEOUT = 15
    settings.WORKER_SLICE_SECONDS = 5
    assert check_worker_settings(None) == []


@pytest.mark.django_db
def test_admin_lists_workers_read_only(admin_client):
    alive_heartbeat("alive-worker")
    WorkerHeartbeat.objects.create(
        name="dead-worker", hostname="h", pid=4, last_seen=timezone.now() - timedelta(hours=1)
    )
    page = admin_client.get("/admin/batches/workerheartbeat/")
    assert page.status_code == 200
    assert "alive-worker" in page.text and "dead-worker" in page.text
    assert admin_client.get("/admin/batches/workerheartbeat/add/").status_code == 403


@pytest.mark.django_db
def test_the_worker_states_are_translated(owner_client, make_batch):
    batch = services.start_batch(batch=make_batch(3, ai_provider="extractive", model=""))
    owner_client.cookies["django_language"] = "fr"

    assert "En attente d’un processus de traitement" in owner_client.get("/batches/").text
    alive_heartbeat()
    page = owner_client.get(f"/batches/{batch.pk}/").text
    assert "Un processus d’arrière-plan traite" in page
