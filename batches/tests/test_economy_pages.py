"""Economy mode in the upload form, the batch page, the API and run_batch."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from batches.events import run_slice
from batches.models import Batch
from batches.tests.api_helpers import error_of
from batches.tests.view_helpers import LIST_URL, csv_file, upload_data
from chats.tests.fake_batch_servers import FakeBatchServer

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = [{"question": "How do I renew a passport?"}, {"question": "Where is my refund?"}]


@pytest.fixture
def batch_server(settings):
    with FakeBatchServer() as server:
        server.configure(settings)
        settings.ECONOMY_POLL_SECONDS = 0
        yield server


def test_upload_form_creates_an_economy_batch(owner_client, owner, batch_server):
    response = owner_client.post(
        LIST_URL,
        upload_data(csv_file("question\nA?\nB?\n"), ai_model="openai::gpt-4o-mini", mode="economy"),
    )
    assert response.status_code == 302
    batch = Batch.objects.get(uploader=owner)
    assert batch.mode == Batch.Mode.ECONOMY
    assert "economy mode" in owner_client.get(LIST_URL).content.decode()


def test_upload_form_refuses_economy_for_a_provider_without_batch_api(owner_client, owner):
    response = owner_client.post(LIST_URL, upload_data(csv_file("question\nA?\n"), mode="economy"))
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_mode_error"' in page and "batch API" in page
    assert not Batch.objects.exists()


def test_batch_page_shows_the_provider_batches(owner_client, owner, batch_server):
    batch_server.auto_complete = False
    owner_client.post(
        LIST_URL,
        upload_data(csv_file("question\nA?\nB?\n"), ai_model="openai::gpt-4o-mini", mode="economy"),
    )
    batch = Batch.objects.get(uploader=owner)
    run_slice(batch_id=batch.pk, seconds=10, runner="test")
    page = owner_client.get(batch.get_absolute_url()).content.decode()
    assert 'id="provider-batches"' in page
    assert "batch_000" in page  # the provider's id
    assert "Expected within 24 h" in page
    assert page.count('class="provider-batch"') == 1


def test_api_create_economy_and_status_lists_provider_batches(api, batch_server):
    batch_server.auto_complete = False
    response = api.post(
        "batch/create",
        {"aiProvider": "openai", "searchProvider": "none", "mode": "economy", "rows": ROWS},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["mode"] == "economy"
    run_slice(batch_id=body["batchId"], seconds=10, runner="test")
    status = api.get("batch/status", {"batchId": body["batchId"]}).json()
    (pb,) = status["providerBatches"]
    assert pb["status"] == "submitted" and pb["requestCount"] == 2
    assert pb["providerBatchId"].startswith("batch_") and pb["expectedBy"]


def test_api_create_economy_for_a_provider_without_batch_api_is_422(api):
    response = api.post(
        "batch/create",
        {"aiProvider": "extractive", "searchProvider": "none", "mode": "economy", "rows": ROWS},
    )
    assert response.status_code == 422
    assert "mode" in error_of(response)["fields"]
    assert not Batch.objects.exists()


def test_run_batch_economy(tmp_path, batch_server):
    source = tmp_path / "q.csv"
    source.write_text("question\nA?\nB?\nC?\n")
    out = io.StringIO()
    call_command(
        "run_batch",
        str(source),
        "--provider",
        "openai",
        "--search",
        "none",
        "--economy",
        "--out",
        str(tmp_path / "r.csv"),
        stdout=out,
        stderr=io.StringIO(),
    )
    assert "Economy mode" in out.getvalue()
    batch = Batch.objects.get()
    assert batch.mode == Batch.Mode.ECONOMY and batch.processed_items == 3
    assert batch_server.realtime_calls == 0


def test_run_batch_economy_refused_for_extractive(tmp_path):
    source = tmp_path / "q.csv"
    source.write_text("question\nA?\n")
    with pytest.raises(CommandError, match="--economy"):
        call_command(
            "run_batch",
            str(source),
            "--provider",
            "extractive",
            "--economy",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )


def test_upload_form_sets_the_economy_retry_and_the_batch_page_shows_it(
    owner_client, owner, batch_server
):
    response = owner_client.post(
        LIST_URL,
        upload_data(
            csv_file("question\nA?\n"),
            ai_model="openai::gpt-4o-mini",
            mode="economy",
            economy_retry="realtime",
        ),
    )
    assert response.status_code == 302
    batch = Batch.objects.get(uploader=owner)
    assert batch.economy_retry == Batch.EconomyRetry.REALTIME
    page = owner_client.get(batch.get_absolute_url()).content.decode()
    assert 'id="batch-economy-retry"' in page and "In real time" in page
    again = owner_client.get(f"/batches/{batch.pk}/run-again/").content.decode()
    assert '<option value="realtime" selected>' in again


def test_upload_form_without_the_retry_field_retries_in_a_provider_batch(
    owner_client, owner, batch_server
):
    owner_client.post(
        LIST_URL,
        upload_data(csv_file("question\nA?\n"), ai_model="openai::gpt-4o-mini", mode="economy"),
    )
    assert Batch.objects.get(uploader=owner).economy_retry == Batch.EconomyRetry.BATCH


def test_api_create_takes_economy_retry(api, batch_server):
    response = api.post(
        "batch/create",
        {
            "aiProvider": "openai",
            "searchProvider": "none",
            "mode": "economy",
            "economyRetry": "realtime",
            "rows": ROWS,
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["economyRetry"] == "realtime"
    assert Batch.objects.get(pk=body["batchId"]).economy_retry == "realtime"
    status = api.get("batch/status", {"batchId": body["batchId"]}).json()
    assert status["economyRetry"] == "realtime"


def test_api_create_with_an_unknown_economy_retry_is_422_naming_the_field(api, batch_server):
    response = api.post(
        "batch/create",
        {
            "aiProvider": "openai",
            "searchProvider": "none",
            "mode": "economy",
            "economyRetry": "tomorrow",
            "rows": ROWS,
        },
    )
    assert response.status_code == 422
    assert "economyRetry" in error_of(response)["fields"]
    assert not Batch.objects.exists()


def test_run_batch_economy_retry_realtime(tmp_path, batch_server):
    source = tmp_path / "q.csv"
    source.write_text("question\nA?\nB?\n")
    batch_server.expire_next = 1
    call_command(
        "run_batch",
        str(source),
        "--provider",
        "openai",
        "--search",
        "none",
        "--economy",
        "--economy-retry",
        "realtime",
        "--out",
        str(tmp_path / "r.csv"),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    batch = Batch.objects.get()
    assert batch.economy_retry == "realtime" and batch.processed_items == 2
    assert batch_server.realtime_calls == 2
    assert len(batch_server.batches) == 1
