"""The batch HTTP API end to end: real services, real providers (extractive, offline)."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory
from openpyxl import load_workbook

from batchchat import api as project_api
from batchchat import urls as root_urls
from batches import api as api_module
from batches.errors import UploadError
from batches.ingest import parse_upload
from batches.models import Batch, BatchItem
from batches.tests.api_helpers import ApiClient, error_of
from batches.tests.factories import BatchFactory, BatchItemFactory

ROWS = [
    {"question": "How do I renew a passport?", "url": "https://example.ca/a", "team": "A"},
    {"question": "Where is my tax refund?", "team": "B"},
    {"Question": "What is the fee?", "team": "C"},
]
OFFLINE = {"aiProvider": "extractive", "searchProvider": "none"}


@pytest.fixture
def api(owner) -> ApiClient:
    return ApiClient(owner)


def create_json(api: ApiClient, rows=ROWS, **fields) -> dict:
    response = api.post("batch/create", {**OFFLINE, "name": "API batch", **fields, "rows": rows})
    assert response.status_code == 201, response.content
    return response.json()


# --- The whole flow -------------------------------------------------------------------------


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


@pytest.mark.django_db
def test_results_come_as_json_and_xlsx(api):
    batch_id = create_json(api)["batchId"]

    as_json = api.get("batch/results", {"batchId": batch_id, "format": "json"})
    assert as_json["Content-Type"].startswith("application/json")
    assert [r["question"] for r in json.loads(b"".join(as_json.streaming_content))][:1] == [
        "How do I renew a passport?"
    ]
    as_xlsx = api.get("batch/results", {"batchId": batch_id, "format": "xlsx"})
    assert as_xlsx["Content-Disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(b"".join(as_xlsx.streaming_content))).active
    assert sheet.max_row == 4  # header + 3 rows

    bad = api.get("batch/results", {"batchId": batch_id, "format": "pdf"})
    assert bad.status_code == 400
    assert "format" in error_of(bad)["fields"]


@pytest.mark.django_db
def test_multipart_upload_creates_a_batch_named_after_the_file(api):
    upload = SimpleUploadedFile(
        "questions.csv", b"Question;URL\nFirst?;https://x.ca\nSecond?;\n", "text/csv"
    )
    response = api.upload(
        "batch/create",
        {
            "file": upload,
            "aiProvider": "extractive",
            "searchProvider": "none",
            "pageLanguage": "fr",
            "applyOverrides": "on",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["totalItems"] == 2
    assert body["name"] == "questions" and body["sourceFilename"] == "questions.csv"
    assert body["pageLanguage"] == "fr" and body["applyOverrides"] is True
    batch = Batch.objects.get(pk=body["batchId"])
    assert list(batch.items.values_list("question", "referring_url")) == [
        ("First?", "https://x.ca"),
        ("Second?", ""),
    ]


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
def test_providers_lists_the_enabled_ones(api):
    body = api.get("providers").json()
    keys = [p["key"] for p in body["aiProviders"]]
    assert keys[0] == "extractive"
    assert body["aiProviders"][0]["models"] == ["extractive"]
    assert "none" in [p["key"] for p in body["searchProviders"]]


# --- Validation and upload errors -----------------------------------------------------------


@pytest.mark.django_db
def test_refused_file_is_422_with_the_parser_message_and_creates_nothing(api):
    data = b"name,email\nAda,ada@example.org\n"
    with pytest.raises(UploadError) as parser:
        parse_upload(data=data, filename="people.csv")

    response = api.upload(
        "batch/create", {"file": SimpleUploadedFile("people.csv", data), **OFFLINE}
    )
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "upload_rejected"
    assert error["message"] == parser.value.message
    assert error["reason"] == parser.value.code
    assert not Batch.objects.exists()


@pytest.mark.django_db
def test_json_rows_without_questions_are_422_naming_the_row(api):
    response = api.post("batch/create", {**OFFLINE, "rows": [{"question": "ok"}, {"x": "y"}]})
    assert response.status_code == 422
    error = error_of(response)
    assert "rows[1]" in error["message"] and error["row"] == 1
    assert not Batch.objects.exists()


@pytest.mark.django_db
def test_too_large_file_is_413(api, settings):
    settings.MAX_UPLOAD_BYTES = 100
    big = SimpleUploadedFile("big.csv", b"question\n" + b"Why?\n" * 50)
    response = api.upload("batch/create", {"file": big, **OFFLINE})
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"
    assert not Batch.objects.exists()


@pytest.mark.django_db
def test_too_large_json_body_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("batch/create", {**OFFLINE, "rows": [{"question": "x" * 2000}]})
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"


@pytest.mark.django_db
def test_too_many_rows_is_422(api, settings):
    settings.MAX_BATCH_ITEMS = 2
    response = api.post("batch/create", {**OFFLINE, "rows": ROWS})
    assert response.status_code == 422
    assert "limit is 2" in error_of(response)["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"aiProvider": "nonexistent"}, "aiProvider"),
        ({"searchProvider": "nonexistent"}, "searchProvider"),
        ({"aiProvider": "openai"}, "aiProvider"),  # known, but no key in the test settings
        ({"model": "gpt-99"}, "model"),
    ],
)
def test_unavailable_provider_or_model_is_422_naming_the_field(api, settings, fields, field):
    settings.OPENAI_API_KEY = ""
    response = api.post("batch/create", {**OFFLINE, **fields, "rows": ROWS})
    assert response.status_code == 422, response.content
    error = error_of(response)
    assert error["code"] == "provider_not_configured"
    assert list(error["fields"]) == [field]
    assert not Batch.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"{not json", "bad_json", None),
        (b"[1, 2]", "bad_json", None),
        (json.dumps({**OFFLINE}).encode(), "invalid_fields", "rows"),
        (
            json.dumps({"rows": ROWS, "pageLanguage": "de"}).encode(),
            "invalid_fields",
            "pageLanguage",
        ),
        (json.dumps({"rows": ROWS, "name": "n" * 201}).encode(), "invalid_fields", "name"),
    ],
)
def test_bad_create_bodies_are_400(api, body, code, field):
    response = api.client.post(
        "/api/batch/create", body, content_type="application/json", headers=api.headers
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == code
    if field:
        assert field in error["fields"]


@pytest.mark.django_db
def test_multipart_without_a_file_is_400_naming_the_field(api):
    response = api.upload("batch/create", {**OFFLINE})
    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["file"]


@pytest.mark.django_db
def test_unsupported_content_type_is_415(api):
    response = api.client.post(
        "/api/batch/create", b"question\nx", content_type="text/plain", headers=api.headers
    )
    assert response.status_code == 415
    assert error_of(response)["code"] == "unsupported_media_type"


@pytest.mark.django_db
@pytest.mark.parametrize("body", [b"{oops", b"{}", b'{"batchId": "abc"}', b'{"batchId": 0}'])
def test_bad_batch_id_bodies_are_400(api, body):
    response = api.client.post(
        "/api/batch/cancel", body, content_type="application/json", headers=api.headers
    )
    assert response.status_code == 400
    assert error_of(response)["code"] in {"bad_json", "invalid_fields"}


# --- Auth -------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer bct_not-a-real-token"}, {"authorization": "Basic dTpw"}],
)
def test_missing_or_wrong_credentials_are_401(client, headers):
    response = client.get("/api/batch/list", headers=headers)
    assert response.status_code == 401
    assert error_of(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_a_revoked_token_is_refused(api):
    assert api.get("batch/list").status_code == 200
    api.user.api_tokens.all().delete()
    assert api.get("batch/list").status_code == 401


@pytest.mark.django_db
def test_an_inactive_users_token_is_refused(api):
    api.user.is_active = False
    api.user.save()
    assert api.get("batch/list").status_code == 401


@pytest.mark.django_db
def test_a_bad_token_does_not_fall_back_to_the_session(owner):
    client = Client()
    client.force_login(owner)
    response = client.get("/api/batch/list", headers={"authorization": "Bearer bct_wrong"})
    assert response.status_code == 401


@pytest.mark.django_db
def test_session_reads_work_and_writes_need_the_csrf_token(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    batch = BatchFactory(uploader=owner)

    assert client.get("/api/batch/list").json()["total"] == 1

    refused = client.post(
        "/api/batch/cancel", {"batchId": batch.pk}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert error_of(refused)["code"] == "csrf_failed"
    batch.refresh_from_db()
    assert batch.status == Batch.Status.UPLOADED

    client.get("/settings/tokens/")  # a page with a form sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    allowed = client.post(
        "/api/batch/cancel",
        {"batchId": batch.pk},
        content_type="application/json",
        headers={"x-csrftoken": token},
    )
    assert allowed.status_code == 200, allowed.content
    assert allowed.json()["status"] == "cancelled"


@pytest.mark.django_db
def test_token_requests_need_no_csrf_token(owner):
    api = ApiClient(owner)
    api.client = Client(enforce_csrf_checks=True)
    batch = BatchFactory(uploader=owner)
    assert api.post("batch/cancel", {"batchId": batch.pk}).status_code == 200


# --- Never HTML under /api/ -----------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/", "/api/nope", "/api/batch/", "/api/batch/list/", "/api/batch/nope/deeper"]
)
def test_unknown_api_paths_are_json_404(api, path):
    response = api.client.get(path, headers=api.headers)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("get", "/api/batch/create", "POST"),
        ("post", "/api/batch/list", "GET"),
        ("delete", "/api/batch/delete", "POST"),
        ("put", "/api/batch/status", "GET"),
    ],
)
def test_wrong_method_is_json_405(api, method, path, allowed):
    response = getattr(api.client, method)(path, headers=api.headers)
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert response["Allow"] == allowed


@pytest.mark.django_db
def test_an_unexpected_exception_is_a_json_500_and_logged(api, owner, monkeypatch, caplog):
    # A fault injected where the export is called: any bug in a view ends the same way.
    def broken_export(batch, fmt):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(api_module, "export_response", broken_export)
    batch = BatchFactory(uploader=owner)
    response = api.get("batch/results", {"batchId": batch.pk})
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "server_error"
    assert "disk on fire" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert "disk on fire" in caplog.text


def test_django_level_error_handlers_answer_json_under_api_only():
    assert root_urls.handler500 == "batchchat.api.server_error_handler"
    assert root_urls.handler400 == "batchchat.api.bad_request_handler"
    factory = RequestFactory()

    api_500 = project_api.server_error_handler(factory.get("/api/batch/list"))
    assert api_500.status_code == 500
    assert error_of(api_500)["code"] == "server_error"
    page_500 = project_api.server_error_handler(factory.get("/batches/"))
    assert page_500.status_code == 500
    assert page_500["Content-Type"].startswith("text/html")  # pages keep Django's (or 500.html)

    api_400 = project_api.bad_request_handler(factory.get("/api/x"), ValueError("bad"))
    assert api_400.status_code == 400
    assert error_of(api_400)["code"] == "bad_request"


@pytest.mark.django_db
def test_a_disallowed_host_under_api_is_json(api, settings):
    settings.DEBUG = False
    response = api.client.get("/api/batch/list", headers=api.headers, HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"


# --- Fixed query counts ---------------------------------------------------------------------


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
    # token lookup, batch, its guard counts, its grade summary
    with django_assert_max_num_queries(4):
        assert api.get("batch/status", {"batchId": batches[-1].pk}).status_code == 200


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
