"""`manage.py migrate_batches`: importing the old application's exports, and old dumps."""

from __future__ import annotations

import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from batches.models import Batch, BatchItem
from chats.models import Chat, Interaction

LEGACY_DATA = Path(__file__).parent / "legacy_data"
SAMPLE = LEGACY_DATA / "sample"
BROKEN = LEGACY_DATA / "broken"

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("migrate_batches", *args, stdout=out, skip_checks=True)
    return out.getvalue()


def run_failing(*args: str) -> tuple[str, str]:
    out = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("migrate_batches", *args, stdout=out, skip_checks=True)
    return out.getvalue(), str(excinfo.value)


def counts() -> tuple[int, int, int, int]:
    return (
        Batch.objects.count(),
        BatchItem.objects.count(),
        Chat.objects.count(),
        Interaction.objects.count(),
    )


def test_sample_exports_import_with_their_rows_and_answers(owner):
    output = run("--from", str(SAMPLE), "--owner", "owner")

    # 4 era-1 batches (17 entries, 12 completed) and 3 era-2 batches (11 interactions).
    assert counts() == (7, 28, 28, 23)
    assert "Imported 7 batches, 28 rows, 23 interactions" in output
    assert "era1-inline: 4 batches" in output and "era2-refs: 3 batches" in output
    assert not Batch.objects.exclude(uploader=owner).exists()
    assert not Chat.objects.exclude(uploader=owner).exists()

    inline = Batch.objects.get(legacy_id="batch_c4ca4238a0b923820dcc")
    assert inline.name == "Legacy inline batch 1"
    assert (inline.ai_provider, inline.search_provider, inline.page_language) == (
        "azure",
        "google",
        "en",
    )
    assert inline.created_at.isoformat() == "2025-01-09T09:12:37.227000+00:00"
    assert (inline.status, inline.total_items, inline.processed_items, inline.failed_items) == (
        "completed",
        4,
        2,
        2,
    )
    items = list(inline.items.select_related("interaction").order_by("position"))
    assert [i.status for i in items] == ["done", "failed", "failed", "done"]
    assert items[1].error == "Short query: Quand"
    turn = items[0].interaction
    assert turn.answer == "Answer to: Can I travel with an expired passport? See the linked page."
    assert (turn.input_tokens, turn.output_tokens, turn.model) == (3232, 288, "gpt-4o")
    assert turn.citation_title == "Official page"
    assert turn.search_results == [
        {
            "title": "result for Can I travel with an",
            "url": "https://travel.gc.ca/travelling/documents/passport",
            "snippet": "...",
        }
    ]

    # Half-done inline batch: its pending row can be started here.
    partial = Batch.objects.get(legacy_id="batch_eccbc87e4b5ce2fe2830")
    assert partial.status == "uploaded" and partial.can_start
    assert partial.search_provider == "none"  # the old batch had none recorded
    assert partial.items.get(position=1).status == "pending"

    refs = Batch.objects.get(legacy_id="msgbatch_c4ca4238a0b923820d")
    assert (refs.status, refs.total_items, refs.processed_items) == ("completed", 3, 3)
    assert refs.search_provider == "google"  # from its chats
    first = refs.items.select_related("chat", "interaction").get(position=0)
    assert first.chat.chat_id == "chat-bcf343562b26"  # the old chat id is kept
    assert first.chat.created_at.isoformat() == "2025-02-07T18:34:33.991000+00:00"
    assert first.row == {
        "interactionId": "batch-0",
        "question": "How do I renew my passport?",
        "url": "https://www.canada.ca/en/immigration-refugees-citizenship/services/canadian-passports/renew-adult-passport.html",
    }
    turn = first.interaction
    assert turn.answer == "Answer 0 to How do I renew my passport?"
    assert turn.search_query == "how do i renew my passport"
    assert turn.search_results[0]["title"] == "x" and turn.search_results[0]["snippet"] == "y"
    assert turn.latency_ms == 4631
    assert (turn.input_tokens, turn.output_tokens) == (4828, 194)
    assert turn.created_at.isoformat() == "2025-02-08T05:31:15.060000+00:00"


def test_second_import_creates_nothing_and_says_so(owner):
    run("--from", str(SAMPLE), "--owner", "owner")
    before = counts()

    output = run("--from", str(SAMPLE), "--owner", "owner")

    assert counts() == before
    assert "Imported 0 batches" in output
    assert "Already imported, skipped: 7 batches" in output
    assert "Nothing new to import." in output


def test_dry_run_reports_and_writes_nothing():
    output = run("--from", str(SAMPLE), "--dry-run")

    assert counts() == (0, 0, 0, 0)
    assert "Dry run, nothing written: would import 7 batches, 28 rows, 23 interactions" in output


def test_without_owner_batches_have_none_and_the_summary_says_so():
    output = run("--from", str(SAMPLE / "era1-inline"))

    assert Batch.objects.count() == 4
    assert not Batch.objects.filter(uploader__isnull=False).exists()
    assert "4 batches have no owner" in output


def test_unknown_owner_is_an_error():
    _, message = run_failing("--from", str(SAMPLE), "--owner", "nobody")
    assert "--owner nobody: no such user" in message
    assert counts() == (0, 0, 0, 0)


def test_missing_folder_or_batches_file_is_an_error(tmp_path):
    _, message = run_failing("--from", str(tmp_path / "nope"))
    assert "no such folder" in message
    _, message = run_failing("--from", str(tmp_path))
    assert "No batches.json" in message


def test_broken_inline_export_imports_the_good_documents_and_reports_the_rest():
    output, message = run_failing("--from", str(BROKEN / "era1"))

    assert set(Batch.objects.values_list("legacy_id", flat=True)) == {
        "good-1",
        "aaaaaaaaaaaaaaaaaaaaaaa4",  # no batchId: its _id
        "cancelled-1",
    }
    assert "1 batches could not be converted and 2 lines could not be read" in message
    assert "era1/batches.json line 2: not valid JSON" in output
    assert "era1/batches.json line 7: not a JSON object" in output
    assert "batch not-a-list in era1/batches.json: `entries` is not a list" in output
    assert "batch good-1 in era1/batches.json: repeated in the export; imported once" in output
    assert "batch no-rows in era1/batches.json: no entries and no interactions" in output

    good = Batch.objects.get(legacy_id="good-1")
    assert good.name == "Good one"  # the first of the repeated documents
    done, weird = good.items.select_related("interaction").order_by("position")
    assert (done.interaction.input_tokens, done.interaction.output_tokens) == (12, 7)
    assert done.interaction.answer == "Renew online."
    assert done.interaction.search_results == [
        {
            "title": "Passports",
            "url": "https://www.canada.ca/passport",
            "snippet": "Renew your passport online.",
        }
    ]
    assert weird.status == "pending"
    assert weird.row == {"entry_id": "batch-1", "question": "Weird status?", "colour": "blue"}
    assert "unknown status 'exploded', imported as pending" in output
    assert (good.status, good.processed_items, good.last_processed_index) == ("uploaded", 1, 1)

    bare = Batch.objects.get(legacy_id="aaaaaaaaaaaaaaaaaaaaaaa4")
    assert bare.name == "Legacy batch aaaaaaaaaaaaaaaaaaaaaaa4"
    assert (bare.ai_provider, bare.search_provider, bare.status) == ("openai", "none", "uploaded")

    cancelled = Batch.objects.get(legacy_id="cancelled-1")
    assert (cancelled.status, cancelled.page_language) == ("cancelled", "fr")
    assert list(cancelled.items.values_list("status", flat=True)) == ["failed", "pending"]
    assert "no reason recorded" in cancelled.items.get(position=0).error

    # The good ones are remembered: a second run only repeats the complaints.
    before = counts()
    run_failing("--from", str(BROKEN / "era1"))
    assert counts() == before


def test_dangling_references_skip_the_batch_or_degrade_the_row():
    output, message = run_failing("--from", str(BROKEN / "era2"))

    assert set(Batch.objects.values_list("legacy_id", flat=True)) == {
        "refs-ok",
        "refs-shared-chat",
    }
    assert "interactions not found in interactions.json: bbbbbbbbbbbbbbbbbbbbbb99" in output
    assert "question cccccccccccccccccccccc99 not found in questions.json" in output
    assert "2 batches could not be converted" in message

    refs = Batch.objects.get(legacy_id="refs-ok")
    items = list(refs.items.select_related("chat", "interaction").order_by("position"))
    assert [i.status for i in items] == ["done", "done", "pending", "pending", "done"]
    one, two, three, four, five = items
    # One legacy chat, two turns in its order.
    assert one.chat_id == two.chat_id and one.chat.chat_id == "chat-shared"
    assert (one.interaction.position, two.interaction.position) == (0, 1)
    assert one.interaction.citation_url == "https://cite.example/1"
    assert one.interaction.citation_title == "Cite one"
    assert [r["url"] for r in one.interaction.search_results] == [
        "https://r.example/1",
        "https://r.example/2",
    ]
    assert (one.interaction.input_tokens, one.interaction.latency_ms) == (100, 1200)
    assert two.interaction.answer == "Answer two."  # from its sentences
    assert two.interaction.citation_url == ""
    assert "citation eeeeeeeeeeeeeeeeeeeeee99 not found in citations.json" in output
    # Dangling answer: pending, in its legacy chat (whose settings it keeps).
    assert three.interaction is None and three.chat.search_provider == "searxng"
    assert three.chat.page_language == "fr"
    assert "answer dddddddddddddddddddddd99 not found in answers.json; row left pending" in output
    # Listed by no chat: a chat of its own with the batch's settings; the extra field is ignored.
    assert four.chat.ai_provider == "anthropic" and four.chat.chat_id != "chat-shared"
    assert "no chat lists interaction bbbbbbbbbbbbbbbbbbbbbb04" in output
    assert five.interaction.answer == "Answer five."
    assert "unknown status 'weird', imported as done" in output
    assert (refs.total_items, refs.processed_items, refs.status) == (5, 3, "uploaded")
    assert refs.last_processed_index == 2

    # A later batch reuses the legacy chat; the turn already linked is not taken twice.
    shared = Batch.objects.get(legacy_id="refs-shared-chat")
    assert list(shared.items.values_list("question", flat=True)) == ["Question 7?"]
    assert "turn 1 of chat chat-shared is already imported for another row" in output
    assert Chat.objects.filter(chat_id="chat-shared").count() == 1
    assert Interaction.objects.filter(chat__chat_id="chat-shared").count() == 2
    assert "1 repeated documents ignored" in output


def test_a_chat_imported_earlier_is_reused_by_a_later_import(tmp_path):
    # Import refs-ok alone first, then the batch sharing its chat.
    folder = tmp_path / "export"
    shutil.copytree(BROKEN / "era2", folder)
    lines = (folder / "batches.json").read_text().splitlines()
    (folder / "batches.json").write_text(lines[0] + "\n")
    run("--from", str(folder))
    (folder / "batches.json").write_text(lines[3] + "\n")

    output = run("--from", str(folder))

    assert "(1 chats created, 1 reused)" in output
    shared = Batch.objects.get(legacy_id="refs-shared-chat")
    assert shared.items.count() == 1
    assert Chat.objects.filter(chat_id="chat-shared").count() == 1


def test_missing_collection_file_skips_the_referencing_batches(tmp_path):
    shutil.copytree(SAMPLE, tmp_path / "export")
    (tmp_path / "export" / "era2-refs" / "answers.json").unlink()

    output, message = run_failing("--from", str(tmp_path / "export"))

    assert Batch.objects.count() == 4  # era 1 still imports
    assert "answers.json not found in" in output
    assert "3 batches could not be converted" in message


def test_json_array_export_is_read(tmp_path):
    lines = (SAMPLE / "era1-inline" / "batches.json").read_text().splitlines()
    (tmp_path / "batches.json").write_text("[" + ",\n".join(lines) + "]")

    run("--from", str(tmp_path))

    assert Batch.objects.count() == 4


def test_whole_file_that_is_not_json_is_reported(tmp_path):
    (tmp_path / "batches.json").write_text("[{not json")

    output, message = run_failing("--from", str(tmp_path))

    assert "not valid JSON" in output and "nothing read from this file" in output
    assert "1 lines could not be read" in message


def test_bad_batch_size_is_an_error():
    _, message = run_failing("--from", str(SAMPLE), "--batch-size", "0")
    assert "--batch-size must be at least 1" in message


def test_without_from_on_a_migrated_database_there_is_nothing_to_convert():
    output = run()
    assert "Nothing inline to convert" in output


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_without_from_converts_a_database_restored_from_the_old_schema(migrator):
    old_state = migrator.apply_initial_migration(("batches", "0001_initial"))
    # A database of the old schema has the first chats tables only (the migrator keeps
    # every migration the plan orders before batches 0001, later chats ones included).
    call_command("migrate", "chats", "0001_initial", verbosity=0)
    OldBatch = old_state.apps.get_model("batches", "Batch")
    documents = [
        json.loads(line)
        for line in (SAMPLE / "era1-inline" / "batches.json").read_text().splitlines()
    ]
    for document in documents:
        OldBatch.objects.create(
            legacy_id=document["batchId"],
            name=document["name"],
            ai_provider=document["aiProvider"],
            search_provider=document["searchProvider"] or "none",
            status=document["status"],
            entries=document["entries"],
        )

    dry = run("--dry-run")
    assert "Dry run, nothing written: 4 batches hold 17 inline rows (12 answered)" in dry

    output = run("--batch-size", "2")

    assert "Migrating batches to 0002_chat_relation" in output
    assert "2 batches, 10 rows, 7 interactions converted so far" in output
    assert "Converted 4 batches, 17 rows, 12 interactions" in output
    assert counts() == (4, 17, 17, 12)
    assert "Nothing inline to convert" in run()
