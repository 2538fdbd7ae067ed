"""Repeats at creation: k rows and k chats per question, question-major, limits, errors
(the service, the upload form, the API's create and run-again, run_batch --repeats)."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from batches.errors import UploadError
from batches.models import Batch, BatchItem
from batches.services import create_batch_run, run_again
from batches.uploads import ParsedRow

pytestmark = pytest.mark.django_db


def rows(*questions: str, chat_key: str = "") -> list[ParsedRow]:
    return [
        ParsedRow(question=q, chat_key=chat_key, columns={"question": q, "n": str(i)})
        for i, q in enumerate(questions)
    ]


def create(owner, parsed, **kwargs):
    return create_batch_run(
        uploader=owner,
        name="Repeats",
        rows=parsed,
        ai_provider="extractive",
        search_provider="none",
        **kwargs,
    )


def layout(batch: Batch) -> list[tuple]:
    return list(
        batch.items.order_by("position").values_list(
            "position", "question_index", "repeat", "question"
        )
    )


def test_each_question_gets_k_adjacent_rows_each_with_its_own_chat(owner):
    batch = create(owner, rows("One?", "Two?"), repeats=3)

    assert (batch.repeats, batch.total_items) == (3, 6)
    assert layout(batch) == [
        (0, 0, 1, "One?"),
        (1, 0, 2, "One?"),
        (2, 0, 3, "One?"),
        (3, 1, 1, "Two?"),
        (4, 1, 2, "Two?"),
        (5, 1, 3, "Two?"),
    ]
    assert batch.items.values("chat_id").distinct().count() == 6
    # Every repeat keeps the uploaded columns.
    item = batch.items.get(position=4)
    assert item.columns(batch.input_columns) == {"question": "Two?", "n": "1"}


def test_without_repeats_rows_are_as_before(owner):
    batch = create(owner, rows("One?", "Two?"))
    assert batch.repeats == 1
    assert layout(batch) == [(0, 0, 1, "One?"), (1, 1, 1, "Two?")]


def test_a_conversation_answered_twice_is_two_conversations_with_turns_in_order(owner):
    parsed = rows("Hello?", "And then?", chat_key="c1") + rows("Alone?")
    batch = create(owner, parsed, repeats=2)

    items = list(batch.items.order_by("position"))
    by_repeat = {
        repeat: [i for i in items if i.repeat == repeat and i.question_index < 2]
        for repeat in (1, 2)
    }
    for turns in by_repeat.values():
        assert [t.question for t in turns] == ["Hello?", "And then?"]
        assert len({t.chat_id for t in turns}) == 1  # one conversation per repeat
        assert turns[0].position < turns[1].position  # turn order kept
    assert by_repeat[1][0].chat_id != by_repeat[2][0].chat_id
    lone = [i for i in items if i.question_index == 2]
    assert len({i.chat_id for i in lone}) == 2
    assert batch.items.values("chat_id").distinct().count() == 4


@pytest.mark.parametrize("bad", [0, 11, -1, "3", 2.5, True])
def test_repeats_outside_one_to_ten_are_refused_naming_the_field(owner, bad):
    with pytest.raises(UploadError) as caught:
        create(owner, rows("One?"), repeats=bad)
    assert caught.value.code == "bad_repeats" and caught.value.column == "repeats"
    assert "1 to 10" in caught.value.message
    assert not Batch.objects.exists() and not BatchItem.objects.exists()


def test_the_row_limit_counts_questions_times_repeats(owner, settings):
    settings.MAX_BATCH_ITEMS = 10
    create(owner, rows(*[f"Q{i}?" for i in range(5)]), repeats=2)  # 10 rows: allowed
    with pytest.raises(UploadError) as caught:
        create(owner, rows(*[f"Q{i}?" for i in range(4)]), repeats=3)
    assert caught.value.code == "too_many_rows"
    assert "4 questions answered 3 times make 12 rows" in caught.value.message
    assert Batch.objects.count() == 1


def test_upload_guard_counts_rows_of_every_repeat(owner):
    batch = create(owner, rows("My email is jane@example.com", "Fine?"), repeats=3)
    assert batch.upload_guard["blocked"] + batch.upload_guard["redacted"] == 3


def test_run_again_keeps_the_repeats_unless_changed_and_asks_each_question_once(owner):
    source = create(owner, rows("One?", "Two?", "Three?"), repeats=3)

    same = run_again(batch=source, uploader=owner)
    assert (same.repeats, same.total_items) == (3, 9)
    assert [q for _p, _i, r, q in layout(same) if r == 1] == ["One?", "Two?", "Three?"]

    once = run_again(batch=source, uploader=owner, repeats=1)
    assert layout(once) == [(0, 0, 1, "One?"), (1, 1, 1, "Two?"), (2, 2, 1, "Three?")]


def test_upload_form_creates_a_batch_with_repeats(client, owner):
    client.force_login(owner)
    upload = SimpleUploadedFile("q.csv", b"question\nOne?\nTwo?\n", content_type="text/csv")
    response = client.post(
        reverse("batches:list"),
        {
            "file": upload,
            "ai_model": "extractive::extractive",
            "search_provider": "none",
            "page_language": "en",
            "repeats": "4",
        },
    )
    assert response.status_code == 302
    batch = Batch.objects.get()
    assert (batch.repeats, batch.total_items) == (4, 8)


def test_upload_form_refuses_repeats_out_of_range_next_to_the_field(client, owner):
    client.force_login(owner)
    upload = SimpleUploadedFile("q.csv", b"question\nOne?\n", content_type="text/csv")
    response = client.post(
        reverse("batches:list"),
        {
            "file": upload,
            "ai_model": "extractive::extractive",
            "search_provider": "none",
            "page_language": "en",
            "repeats": "11",
        },
    )
    assert response.status_code == 400
    assert response.context["form"].errors["repeats"] == [
        "Answers per question: a whole number from 1 to 10."
    ]
    assert not Batch.objects.exists()


def test_upload_form_shows_the_row_limit_with_repeats_on_the_repeats_field(client, owner, settings):
    settings.MAX_BATCH_ITEMS = 3
    client.force_login(owner)
    upload = SimpleUploadedFile("q.csv", b"question\nOne?\nTwo?\n", content_type="text/csv")
    response = client.post(
        reverse("batches:list"),
        {
            "file": upload,
            "ai_model": "extractive::extractive",
            "search_provider": "none",
            "page_language": "en",
            "repeats": "2",
        },
    )
    assert response.status_code == 400
    assert "make 4 rows" in response.context["form"].errors["repeats"][0]


def test_api_create_takes_repeats_and_answers_the_question_set(api):
    response = api.post(
        "batch/create",
        {
            "aiProvider": "extractive",
            "searchProvider": "none",
            "repeats": 3,
            "rows": [{"question": "One?"}, {"question": "Two?"}],
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["repeats"], body["totalItems"]) == (3, 6)
    batch = Batch.objects.get(pk=body["batchId"])
    assert body["questionSetId"] == batch.set_run.question_set_id
    assert body["projectedCalls"]["rows"] == 6


@pytest.mark.parametrize("bad", [0, 11])
def test_api_create_refuses_repeats_out_of_range_with_422(api, bad):
    response = api.post(
        "batch/create",
        {"aiProvider": "extractive", "repeats": bad, "rows": [{"question": "One?"}]},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_repeats" and "1 to 10" in error["fields"]["repeats"][0]
    assert not Batch.objects.exists()


def test_api_create_multipart_takes_repeats(api):
    upload = SimpleUploadedFile("q.csv", b"question\nOne?\n", content_type="text/csv")
    response = api.upload(
        "batch/create", {"aiProvider": "extractive", "repeats": "2", "file": upload}
    )
    assert response.status_code == 201, response.content
    assert response.json()["totalItems"] == 2


def test_api_run_again_keeps_or_changes_repeats(api, owner):
    source = create(owner, rows("One?"), repeats=2)
    kept = api.post("batch/run-again", {"batchId": source.pk}).json()
    assert (kept["repeats"], kept["totalItems"]) == (2, 2)
    changed = api.post("batch/run-again", {"batchId": source.pk, "repeats": 5})
    assert changed.json()["totalItems"] == 5
    refused = api.post("batch/run-again", {"batchId": source.pk, "repeats": 12})
    assert refused.status_code == 422


def test_run_batch_repeats(tmp_path, owner):
    path = tmp_path / "q.csv"
    path.write_text("question,expected answer\nWhat is BatchChat?,It runs batches of questions.\n")
    out = tmp_path / "out.csv"
    call_command(
        "run_batch",
        str(path),
        "--provider",
        "extractive",
        "--search",
        "none",
        "--repeats",
        "3",
        "--out",
        str(out),
        stdout=(report := io.StringIO()),
    )
    batch = Batch.objects.get()
    assert (batch.repeats, batch.total_items, batch.processed_items) == (3, 3, 3)
    header = out.read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    assert header[2:5] == ["row", "question_number", "repeat"]
    # The offline answerer answers the same thing each time: pass@3 and pass^3 agree.
    assert "pass@3 " in report.getvalue() and "pass^3 " in report.getvalue()
    with pytest.raises(CommandError, match="1 to 10"):
        call_command("run_batch", str(path), "--provider", "extractive", "--repeats", "0")


def test_stored_bytes_count_every_repeat(owner, settings):
    settings.MAX_BATCH_STORED_BYTES = 1000
    big = [ParsedRow(question="Q?", columns={"question": "Q?", "note": "x" * 300})]
    create(owner, big, repeats=3)  # about 900 bytes: allowed
    with pytest.raises(UploadError) as caught:
        create(owner, big, repeats=4)
    assert caught.value.code == "too_much_data"
