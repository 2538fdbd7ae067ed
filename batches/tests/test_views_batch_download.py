"""batch_download: the results as a file."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from batches.tests.factories import BatchFactory
from batches.tests.view_helpers import answered, completed, make_rows, real_batch

pytestmark = pytest.mark.django_db


def test_another_users_download_is_404(client, other_user, owner):
    batch = real_batch(owner)
    client.force_login(other_user)
    assert client.get(reverse("batches:download", args=[batch.pk, "csv"])).status_code == 404


def test_download_streams_export(owner_client, owner):
    batch = BatchFactory(uploader=owner, total_items=1, processed_items=1, status="completed")
    make_rows(batch, 1)
    response = owner_client.get(reverse("batches:download", args=[batch.pk, "csv"]))
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert text.startswith("batch_id,batch_name,row,question_number,repeat,chat_id")
    assert "Answer 0" in text


def test_download_unknown_format_is_404(owner_client, owner):
    batch = BatchFactory(uploader=owner)
    assert owner_client.get(f"/batches/{batch.pk}/download/pdf/").status_code == 404


def test_xlsx_has_frozen_header_filters_widths_dates_and_wrapping(owner_client, owner):
    batch = completed(owner, total_items=1, processed_items=1, input_columns=["question"])
    answered(batch, 0, answer="A long answer. " * 20)
    response = owner_client.get(reverse("batches:download", args=[batch.pk, "xlsx"]))
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    header = [cell.value for cell in sheet[1]]
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref.startswith("A1:")
    assert sheet.auto_filter.ref.endswith("2")
    answer = header.index("answer") + 1
    assert sheet.cell(2, answer).alignment.wrap_text
    assert sheet.column_dimensions[sheet.cell(1, answer).column_letter].width == 70
    created = sheet.cell(2, header.index("created_at") + 1).value
    assert isinstance(created, datetime)
