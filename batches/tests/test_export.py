from __future__ import annotations

import csv
import io
import json
import tracemalloc

import pytest
from django.db import connection
from openpyxl import load_workbook

from batches import export
from batches.export import (
    EXPORT_FORMATS,
    FIXED_COLUMNS,
    XLSX_LEAD_COLUMNS,
    _input_headers,
    export_columns,
    export_filename,
    export_response,
    iter_export_rows,
    stream_csv,
    stream_json,
    stream_xlsx,
    xlsx_columns,
)
from batches.models import Batch, BatchItem
from batches.tests.factories import BatchFactory, BatchItemFactory
from chats.models import Chat, Interaction
from chats.tests.factories import InteractionFactory

pytestmark = pytest.mark.django_db


def _done_item(batch: Batch, position: int, row: dict, **answer) -> BatchItem:
    item = BatchItemFactory(
        batch=batch,
        position=position,
        question=row.get("Question", ""),
        referring_url=row.get("URL", ""),
        row=row,
    )
    interaction = InteractionFactory(chat=item.chat, position=0, question=item.question, **answer)
    item.interaction = interaction
    item.status = BatchItem.Status.DONE
    item.save()
    return item


@pytest.fixture
def batch():
    """Three rows: one answered, one failed, one still pending; ragged input columns."""
    batch = BatchFactory(name="Mes questions d'été", search_provider="none")
    _done_item(
        batch,
        0,
        {"Question": "Où est le formulaire ?", "URL": "https://example.ca/fr", "Team": "A"},
        answer="Voici la réponse ✅ — merci",
        answer_type="normal",
        citation_url="https://example.ca/form",
        citation_title="Formulaire",
        input_tokens=120,
        output_tokens=30,
        latency_ms=850,
    )
    BatchItemFactory(
        batch=batch,
        position=1,
        question="Why?",
        row={"Question": "Why?", "URL": "", "Extra": "x"},
        status=BatchItem.Status.FAILED,
        error="The provider refused the request (HTTP 400).",
    )
    BatchItemFactory(batch=batch, position=2, question="Later?", row={"Question": "Later?"})
    return batch


def _csv_rows(batch: Batch) -> list[list[str]]:
    data = b"".join(stream_csv(batch))
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_columns_are_fixed_then_inputs_in_first_seen_order(batch):
    columns = export_columns(batch)
    assert columns[: len(FIXED_COLUMNS)] == [
        "batch_id",
        "batch_name",
        "row",
        "question_number",
        "repeat",
        "chat_id",
        "interaction_id",
        "created_at",
        "page_language",
        "referring_url",
        "question",
        "redacted_question",
        "guard_status",
        "guard_reasons",
        "guard_fields",
        "ai_provider",
        "model",
        "search_provider",
        "search_query",
        "answer",
        "answer_type",
        "citation_url",
        "citation_title",
        "expected_answer",
        "expected_citation_url",
        "expected_outcome",
        "verdict",
        "verdict_reason",
        "citation_match",
        "answer_similarity",
        "answer_found",
        "judge_verdict",
        "judge_notes",
        "review_verdict",
        "review_notes",
        "reviewed_by",
        "reviewed_at",
        "status",
        "error",
        "input_tokens",
        "output_tokens",
        "latency_ms",
        "row_key",
    ]
    inputs = ["input.Question", "input.URL", "input.Team", "input.Extra"]
    if connection.vendor == "postgresql":
        # A batch without input_columns (a legacy import) falls back to the rows' keys;
        # jsonb does not keep key order: each row's keys come back shortest first, so
        # the union follows that order (stable from one export to the next).
        assert columns[len(FIXED_COLUMNS) :] == [
            "input.URL",
            "input.Team",
            "input.Question",
            "input.Extra",
        ]
    else:
        assert columns[len(FIXED_COLUMNS) :] == inputs


def test_uploaded_batches_keep_the_file_column_order_on_every_database(owner):
    from batches.services import create_batch_run
    from batches.uploads import ParsedRow

    columns = {"Zeta team": "z", "Question": "Why?", "A": "1"}
    batch = create_batch_run(
        uploader=owner,
        name="ordered",
        rows=[ParsedRow(question="Why?", columns=columns)],
        ai_provider="extractive",
        search_provider="none",
    )

    assert export_columns(batch)[len(FIXED_COLUMNS) :] == [
        "input.Zeta team",
        "input.Question",
        "input.A",
    ]


def test_rows_join_items_with_their_answers_in_upload_order(batch):
    rows = list(iter_export_rows(batch))
    assert [list(row) for row in rows] == [export_columns(batch)] * 3
    done, failed, pending = rows
    interaction = BatchItem.objects.get(batch=batch, position=0).interaction
    assert done["row"] == 1
    assert done["batch_id"] == batch.pk
    assert done["batch_name"] == "Mes questions d'été"
    assert done["interaction_id"] == interaction.pk
    assert done["created_at"] == interaction.created_at.isoformat()
    assert done["question"] == "Où est le formulaire ?"
    assert done["referring_url"] == "https://example.ca/fr"
    assert done["answer"] == "Voici la réponse ✅ — merci"
    assert done["answer_type"] == "normal"
    assert done["citation_url"] == "https://example.ca/form"
    assert (done["input_tokens"], done["output_tokens"], done["latency_ms"]) == (120, 30, 850)
    assert done["status"] == "done"
    assert done["search_provider"] == "none"
    assert done["input.Team"] == "A"
    assert done["input.Extra"] is None

    assert failed["row"] == 2
    assert failed["status"] == "failed"
    assert failed["error"] == "The provider refused the request (HTTP 400)."
    assert failed["interaction_id"] is None
    assert failed["answer"] == ""
    assert failed["answer_type"] == ""  # a failed row has none
    assert failed["input.Extra"] == "x"
    assert failed["model"] == "extractive"  # the chat's model when there is no answer

    assert pending["row"] == 3
    assert pending["status"] == "pending"


def test_follow_up_turns_added_later_are_not_exported(batch):
    item = BatchItem.objects.get(batch=batch, position=0)
    InteractionFactory(chat=item.chat, position=1, question="And a follow-up?")
    rows = list(iter_export_rows(batch))
    assert len(rows) == 3
    assert "And a follow-up?" not in json.dumps(rows)


def test_csv_has_every_column_and_row_with_unicode_intact(batch):
    header, *rows = _csv_rows(batch)
    assert header == export_columns(batch)
    assert len(rows) == 3
    assert rows[0][header.index("answer")] == "Voici la réponse ✅ — merci"
    assert rows[0][header.index("input.Question")] == "Où est le formulaire ?"
    assert rows[0][header.index("input_tokens")] == "120"
    assert rows[1][header.index("status")] == "failed"
    assert rows[1][header.index("error")] == "The provider refused the request (HTTP 400)."
    assert rows[1][header.index("interaction_id")] == ""


@pytest.fixture
def hostile_batch():
    batch = BatchFactory(name='=HYPERLINK("http://evil")')
    _done_item(
        batch,
        0,
        {"Question": "=1+1", "URL": "+33 1 23", "Note": "@SUM(A1)", "Tab": "\tx", "CR": "\rx"},
        answer="-2+3=cmd|' /C calc'!A0",
        citation_title='=IMPORTXML("x")',
    )
    return batch


def test_csv_neutralises_formula_cells_including_inputs(hostile_batch):
    header, row = _csv_rows(hostile_batch)
    cell = dict(zip(header, row, strict=True))
    assert cell["batch_name"] == '\'=HYPERLINK("http://evil")'
    assert cell["question"] == "'=1+1"
    assert cell["answer"] == "'-2+3=cmd|' /C calc'!A0"
    assert cell["citation_title"] == '\'=IMPORTXML("x")'
    assert cell["input.Question"] == "'=1+1"
    assert cell["input.URL"] == "'+33 1 23"
    assert cell["input.Note"] == "'@SUM(A1)"
    assert cell["input.Tab"] == "'\tx"
    assert cell["input.CR"] == "'\rx"
    # Ordinary text is left alone.
    assert cell["status"] == "done"


def test_xlsx_neutralises_formula_cells_and_keeps_numbers(hostile_batch):
    workbook = load_workbook(io.BytesIO(b"".join(stream_xlsx(hostile_batch))))
    sheet = workbook["Results"]
    header, row = ([cell.value for cell in r] for r in sheet.iter_rows())
    assert sorted(header) == sorted(export_columns(hostile_batch))
    cells = {
        name: cell for name, cell in zip(header, next(sheet.iter_rows(min_row=2)), strict=True)
    }
    for name in ("batch_name", "question", "answer", "citation_title", "input.Question"):
        assert cells[name].data_type == "s", name
        assert cells[name].value.startswith("'="[0]), name
    assert cells["question"].value == "'=1+1"
    assert cells["input.Note"].value == "'@SUM(A1)"
    assert cells["input_tokens"].value == 100
    assert cells["input_tokens"].data_type == "n"
    assert cells["row"].value == 1


def test_xlsx_has_every_row_and_survives_unicode_and_control_characters(batch):
    item = BatchItem.objects.get(batch=batch, position=2)
    item.row = {"Question": "Later?", "Team": "bell\x07 char"}
    item.save()
    sheet = load_workbook(io.BytesIO(b"".join(stream_xlsx(batch))))["Results"]
    header, *rows = ([cell.value for cell in r] for r in sheet.iter_rows())
    assert header == xlsx_columns(batch, _input_headers(batch))
    assert header[:7] == list(XLSX_LEAD_COLUMNS)
    assert len(rows) == 3
    assert rows[0][header.index("answer")] == "Voici la réponse ✅ — merci"
    assert rows[1][header.index("error")] == "The provider refused the request (HTTP 400)."
    assert rows[2][header.index("input.Team")] == "bell char"


def test_json_is_an_array_of_objects_with_the_export_keys(batch):
    data = b"".join(stream_json(batch)).decode("utf-8")
    records = json.loads(data)
    assert [list(record) for record in records] == [export_columns(batch)] * 3
    assert records[0]["answer"] == "Voici la réponse ✅ — merci"
    assert records[0]["input_tokens"] == 120
    assert records[1]["error"] == "The provider refused the request (HTTP 400)."
    assert records[1]["interaction_id"] is None


def test_empty_batch_exports_header_only_and_empty_array():
    batch = BatchFactory()
    assert json.loads(b"".join(stream_json(batch))) == []
    assert _csv_rows(batch) == [list(FIXED_COLUMNS)]
    sheet = load_workbook(io.BytesIO(b"".join(stream_xlsx(batch))))["Results"]
    assert [[c.value for c in r] for r in sheet.iter_rows()] == [xlsx_columns(batch, [])]


def test_filename_is_an_ascii_slug_with_id_and_date(batch):
    name = export_filename(batch, "csv")
    assert name.startswith(f"batchchat-{batch.pk}-mes-questions-dete-")
    assert name.endswith(".csv")
    assert name.isascii()
    assert export_filename(BatchFactory(name="???"), "json").startswith("batchchat-")


@pytest.mark.parametrize("fmt", sorted(EXPORT_FORMATS))
def test_response_is_a_streamed_attachment(batch, fmt):
    response = export_response(batch, fmt)
    assert response.streaming
    assert response["Content-Type"] == EXPORT_FORMATS[fmt][0]
    assert response["Content-Disposition"] == (
        f'attachment; filename="{export_filename(batch, fmt)}"'
    )
    assert b"".join(response.streaming_content)


def test_response_rejects_an_unknown_format(batch):
    with pytest.raises(ValueError, match="csv, json, xlsx"):
        export_response(batch, "pdf")


def _bulk_batch(rows: int, *, answer_chars: int = 400) -> Batch:
    """A batch of `rows` answered rows, built with bulk_create (no factories per row)."""
    batch = BatchFactory(total_items=rows)
    chats = Chat.objects.bulk_create(
        Chat(ai_provider="extractive", model="extractive", search_provider="none")
        for _ in range(rows)
    )
    text = ("Réponse détaillée ✅ " * (answer_chars // 20 + 1))[:answer_chars]
    interactions = Interaction.objects.bulk_create(
        Interaction(
            chat=chat,
            position=0,
            question=f"Question {index}?",
            answer=f"{index} {text}",
            citation_url=f"https://example.org/{index}",
            input_tokens=100,
            output_tokens=50,
            latency_ms=10,
        )
        for index, chat in enumerate(chats)
    )
    BatchItem.objects.bulk_create(
        BatchItem(
            batch=batch,
            chat=chat,
            position=index,
            question=f"Question {index}?",
            row={"question": f"Question {index}?", "topic": f"topic {index % 7}"},
            status=BatchItem.Status.DONE,
            interaction=interaction,
        )
        for index, (chat, interaction) in enumerate(zip(chats, interactions, strict=True))
    )
    return batch


def _consume(stream) -> tuple[int, int]:
    """Bytes streamed, and the peak of traced memory above the start while streaming."""
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = 0
        for chunk in stream:
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return total, peak - start


@pytest.mark.slow
def test_ten_thousand_rows_stream_in_flat_memory():
    batch = _bulk_batch(10_000)
    size, peak = _consume(stream_csv(batch))
    # ~7 MB of CSV in ~3 MB of peak memory; list() of the rows alone takes ~42 MB.
    assert size > 5_000_000
    assert peak < 30 * 1024 * 1024, f"peak {peak / 2**20:.1f} MB"
    records = json.loads(b"".join(stream_json(batch)))
    assert len(records) == 10_000
    assert [record["row"] for record in records[:3]] == [1, 2, 3]
    assert records[-1]["row"] == 10_000


@pytest.mark.slow
def test_xlsx_streams_in_flat_memory():
    # 2,000 rows, not 10,000: openpyxl under tracemalloc is slow. The rows as model
    # instances alone would take ~8 MB here; the stream peaks at ~2.5 MB (most of it the
    # finished zip, spooled in memory up to XLSX_SPOOL_BYTES, then on disk).
    batch = _bulk_batch(2_000)
    size, peak = _consume(stream_xlsx(batch))
    assert size > 200_000
    assert peak < 6 * 1024 * 1024, f"peak {peak / 2**20:.1f} MB"


@pytest.mark.parametrize("fmt", sorted(EXPORT_FORMATS))
def test_queries_do_not_grow_with_the_batch(django_assert_max_num_queries, fmt):
    stream = EXPORT_FORMATS[fmt][1]
    small, large = _bulk_batch(10, answer_chars=20), _bulk_batch(1_000, answer_chars=20)
    # One pass for the input headers, one for the rows; each is one query per chunk at
    # most (server-side cursors on PostgreSQL, chunked fetches on SQLite).
    with django_assert_max_num_queries(2):
        b"".join(stream(small))
    with django_assert_max_num_queries(2):
        b"".join(stream(large))


def test_xlsx_illegal_characters_are_openpyxl_s():
    """export keeps its own copy of openpyxl's pattern (openpyxl is imported only for an
    XLSX file): the two must not drift apart."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    assert export.ILLEGAL_CHARACTERS_RE.pattern == ILLEGAL_CHARACTERS_RE.pattern


def test_default_name_and_download_use_the_file_stem(owner):
    batch = BatchFactory(uploader=owner, name="questions.csv")
    assert export_filename(batch, "csv").startswith(f"batchchat-{batch.pk}-questions-")
    assert "questionscsv" not in export_filename(batch, "xlsx")
