"""POST /api/batch/create: JSON rows or a file upload; validation and upload errors."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from batches.errors import UploadError
from batches.models import Batch
from batches.tests.api_helpers import OFFLINE, ROWS, error_of
from batches.uploads import parse_upload


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
