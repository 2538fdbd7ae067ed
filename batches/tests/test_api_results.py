"""GET /api/batch/results: CSV, JSON and XLSX downloads."""

from __future__ import annotations

import io
import json

import pytest
from openpyxl import load_workbook

from batches.tests.api_helpers import create_json, error_of


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
