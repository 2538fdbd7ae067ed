"""The API's create under hostile bodies: JSON rows follow the upload rules, bad characters
are 422 naming the field (on SQLite and PostgreSQL alike), never a 500."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from batches.models import Batch
from batches.tests.api_helpers import OFFLINE, ApiClient, error_of


def post_raw(api: ApiClient, body: bytes):
    return api.client.post(
        "/api/batch/create", body, content_type="application/json", headers=api.headers
    )


@pytest.mark.django_db
@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800", "\\udfff x"])
def test_a_bad_character_in_a_json_row_is_422_naming_row_and_column(api, escape):
    body = (
        '{"aiProvider": "extractive", "searchProvider": "none", "rows": '
        f'[{{"question": "Fine?"}}, {{"question": "Q{escape}?"}}]}}'
    ).encode()

    response = post_raw(api, body)

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "upload_rejected" and error["reason"] == "bad_characters"
    assert (error["row"], error["column"]) == (1, "question")
    assert not Batch.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["name", "model"])
def test_a_bad_character_in_another_field_is_422_naming_it(api, field):
    body = json.dumps({**OFFLINE, field: "x\u0000y", "rows": [{"question": "Q?"}]})

    response = post_raw(api, body.encode())

    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "bad_characters" and field in error["fields"]


@pytest.mark.django_db
def test_a_lone_surrogate_in_a_json_key_is_422(api):
    body = b'{"rows": [{"question": "Q?", "n\\ud800": "x"}]}'
    response = post_raw(api, body)
    assert response.status_code == 422
    assert error_of(response)["reason"] == "bad_characters"


@pytest.mark.django_db
def test_a_nul_in_the_multipart_name_is_422_and_in_the_file_name_is_dropped(api):
    upload = SimpleUploadedFile("qu\x00estions.csv", b"question\nWhy?\n", "text/csv")

    refused = api.upload("batch/create", {**OFFLINE, "name": "a\x00b", "file": upload})
    assert refused.status_code == 422
    assert "name" in error_of(refused)["fields"]

    upload = SimpleUploadedFile("qu\x00estions.csv", b"question\nWhy?\n", "text/csv")
    created = api.upload("batch/create", {**OFFLINE, "file": upload})
    assert created.status_code == 201, created.content
    assert created.json()["sourceFilename"] == "questions.csv"


@pytest.mark.django_db
def test_a_json_row_of_100000_keys_is_422_and_creates_nothing(api):
    row = {"question": "Wide?", **{f"k{n}": "v" for n in range(100_000)}}
    response = api.post("batch/create", {**OFFLINE, "rows": [row]})
    assert response.status_code == 422
    assert error_of(response)["reason"] == "too_many_columns"
    assert not Batch.objects.exists()


@pytest.mark.django_db
def test_json_rows_with_more_distinct_keys_than_columns_are_422(api):
    rows = [{"question": f"Q{n}?", **{f"k{n}-{i}": "x" for i in range(10)}} for n in range(1_000)]
    response = api.post("batch/create", {**OFFLINE, "rows": rows})
    assert response.status_code == 422
    error = error_of(response)
    assert error["reason"] == "too_many_columns" and error["row"] == 49


@pytest.mark.django_db
def test_json_rows_past_the_limit_are_refused_without_reading_the_rest(api, settings):
    settings.MAX_BATCH_ITEMS = 10
    rows = b",".join(b'{"question": "Q%d?"}' % n for n in range(11))
    response = post_raw(api, b'{"rows": [' + rows + b", not json at all")
    assert response.status_code == 422
    assert error_of(response)["reason"] == "too_many_rows"


@pytest.mark.django_db
def test_deeply_nested_json_is_a_400_not_a_500(api):
    body = b'{"rows": [{"question": "A?", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    response = post_raw(api, body)
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_json"


@pytest.mark.django_db
def test_a_json_batch_exports_to_xlsx_within_the_column_limit(api):
    # The adversarial pass: 10,000 rows of 10 distinct keys made a 100,021-column export.
    rows = [{"question": f"Q{n}?", **{f"k{i}": "x" for i in range(10)}} for n in range(50)]
    created = api.post("batch/create", {**OFFLINE, "rows": rows})
    assert created.status_code == 201
    response = api.get("batch/results", {"batchId": created.json()["batchId"], "format": "xlsx"})
    assert response.status_code == 200
