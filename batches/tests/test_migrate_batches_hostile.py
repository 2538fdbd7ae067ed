"""`migrate_batches --from` against hostile or broken exports: every bad document is
reported with its reason and skipped while the rest is imported; chats stay within their
owner; ids are never truncated into collisions; the upload limits apply."""

from __future__ import annotations

import json
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from batches import legacy
from batches.models import Batch, BatchItem
from chats.models import Chat, Interaction

SAMPLE = Path(__file__).parent / "legacy_data" / "sample"

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str | None]:
    """(output, the CommandError message or None)."""
    out = StringIO()
    try:
        call_command("migrate_batches", *args, stdout=out, skip_checks=True)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def era1_batch(batch_id: str, entries: int = 2, **extra) -> dict:
    return {
        "batchId": batch_id,
        "name": f"Batch {batch_id[:20]}",
        "aiProvider": "openai",
        "searchProvider": "google",
        "entries": [
            {"question": f"Question {n}?", "status": "completed", "answer": f"Answer {n}."}
            for n in range(entries)
        ],
        **extra,
    }


def write_lines(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "batches.json").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


# --- Item 6: report and skip ----------------------------------------------------------------


def test_each_bad_document_is_skipped_with_its_reason_and_the_rest_imported(tmp_path, owner):
    folder = write_lines(
        tmp_path / "era1",
        [
            json.dumps(era1_batch("good-1")),
            '{"_id": {"$oid": "not-an-object-id"}, "batchId": "bad-oid", "entries": []}',
            '{"batchId": "bad-decimal", "x": {"$numberDecimal": "twelve"}, "entries": []}',
            '{"batchId": "deep", "entries": [' + "[" * 100_000 + "]" * 100_000 + "]}",
            '{"batchId": "bad-date", "createdAt": {"$date": {"$numberLong": "99999999999999999999"}},'
            ' "entries": []}',
            json.dumps(era1_batch("huge-number", entries=1))[:-1]
            + ', "totalItems": 1e300, "extra": 1e300}',
            json.dumps(
                {
                    **era1_batch("huge-tokens", entries=0),
                    "entries": [
                        {
                            "question": "Q?",
                            "status": "completed",
                            "answer": "A.",
                            "answer_input_tokens": 1e300,
                            "responseTime": 1e300,
                        }
                    ],
                }
            ),
            json.dumps(era1_batch("good-2")),
        ],
    )

    output, error = run("--from", str(folder), "--owner", "owner")

    assert error is not None and "the rest was imported" in error  # exit status non-zero
    imported = set(Batch.objects.values_list("legacy_id", flat=True))
    assert {"good-1", "good-2", "huge-number", "huge-tokens"} <= imported
    assert not imported & {"bad-oid", "bad-decimal", "deep", "bad-date"}
    for line in (2, 3, 4, 5):
        assert f"era1/batches.json line {line}: not valid JSON" in output
    assert "nested too deeply" in output
    turn = Interaction.objects.get(chat__batch_items__batch__legacy_id="huge-tokens")
    assert (turn.input_tokens, turn.latency_ms) == (None, None)  # not a count: dropped


def test_a_document_over_the_size_limit_is_skipped_unread(tmp_path, owner, monkeypatch):
    monkeypatch.setattr(legacy.mongoexport, "MAX_DOCUMENT_BYTES", 2_000)
    big = era1_batch("big")
    big["entries"][0]["question"] = "x" * 10_000
    folder = write_lines(
        tmp_path / "era1",
        [json.dumps(era1_batch("before")), json.dumps(big), json.dumps(era1_batch("after"))],
    )

    output, error = run("--from", str(folder))

    assert error is not None
    assert "era1/batches.json line 2: a document of more than" in output
    assert set(Batch.objects.values_list("legacy_id", flat=True)) == {"before", "after"}


def test_a_line_that_is_not_utf8_is_skipped(tmp_path, owner):
    folder = tmp_path / "era1"
    folder.mkdir()
    (folder / "batches.json").write_bytes(
        json.dumps(era1_batch("a")).encode()
        + b"\n\xff\xfe{}\n"
        + json.dumps(era1_batch("b")).encode()
    )
    output, error = run("--from", str(folder))
    assert "line 2: not UTF-8" in output
    assert Batch.objects.count() == 2


def test_ids_sharing_their_first_64_characters_stay_two_batches(tmp_path, owner):
    stem = "b" * 64
    folder = write_lines(
        tmp_path / "era1",
        [json.dumps(era1_batch(stem + "-one")), json.dumps(era1_batch(stem + "-two"))],
    )

    output, error = run("--from", str(folder))

    assert error is None
    ids = sorted(Batch.objects.values_list("legacy_id", flat=True))
    assert len(ids) == 2 and len(set(ids)) == 2 and all(len(i) <= 64 for i in ids)
    # Idempotent: the same long ids map to the same stored ids.
    output, error = run("--from", str(folder))
    assert "Already imported, skipped: 2 batches" in output and Batch.objects.count() == 2


def test_nul_and_lone_surrogates_are_cleaned_so_the_batch_imports(tmp_path, owner):
    document = era1_batch("chars")
    document["name"] = "Name\u0000 here"
    document["entries"][0]["question"] = "Nul\u0000 and \ud800 surrogate?"
    document["entries"][0]["note\u0000"] = "x\u0000y"
    folder = write_lines(tmp_path / "era1", [json.dumps(document)])

    output, error = run("--from", str(folder))

    assert error is None, output
    item = BatchItem.objects.get(batch__legacy_id="chars", position=0)
    assert item.question == "Nul and \ufffd surrogate?"
    assert item.columns()["note"] == "xy"
    assert Batch.objects.get(legacy_id="chars").name == "Name here"


# --- Upload limits ------------------------------------------------------------------------------


def test_a_batch_past_the_row_limit_is_skipped_unless_explicitly_allowed(tmp_path, owner, settings):
    settings.MAX_BATCH_ITEMS = 3
    folder = write_lines(
        tmp_path / "era1", [json.dumps(era1_batch("small", 3)), json.dumps(era1_batch("large", 5))]
    )

    output, error = run("--from", str(folder))

    assert error is not None
    assert "large" in output and "5 rows; the limit is 3" in output
    assert "--ignore-upload-limits" in output
    assert list(Batch.objects.values_list("legacy_id", flat=True)) == ["small"]

    output, error = run("--from", str(folder), "--ignore-upload-limits")
    assert error is None
    assert Batch.objects.get(legacy_id="large").total_items == 5


def test_a_cell_past_the_cell_limit_is_skipped(tmp_path, owner):
    document = era1_batch("wide-cell")
    document["entries"][1]["notes"] = "n" * 40_000
    folder = write_lines(tmp_path / "era1", [json.dumps(document)])
    output, error = run("--from", str(folder))
    assert error is not None and 'column "notes": 40,000 characters' in output
    assert not Batch.objects.exists()


# --- Item 3: chats stay within their owner ------------------------------------------------------


def test_another_owners_chat_with_the_same_legacy_id_is_never_joined(tmp_path, owner, other_user):
    shutil.copytree(SAMPLE / "era2-refs", tmp_path / "alice")
    shutil.copytree(SAMPLE / "era2-refs", tmp_path / "bob")
    batches = tmp_path / "bob" / "batches.json"
    lines = batches.read_text().splitlines()
    renamed = [
        json.dumps({**json.loads(line), "batchId": f"bob-{n}"}) for n, line in enumerate(lines)
    ]
    batches.write_text("\n".join(renamed) + "\n")

    run("--from", str(tmp_path / "alice"), "--owner", "owner")
    alices = {chat.pk: chat.interactions.count() for chat in Chat.objects.filter(uploader=owner)}

    output, error = run("--from", str(tmp_path / "bob"), "--owner", "other")

    assert error is None, output
    assert "already exists here for another owner" in output
    # Alice's chats hold exactly what they held: Bob's turns went into Bob's own chats.
    assert {c.pk: c.interactions.count() for c in Chat.objects.filter(uploader=owner)} == alices
    bob_items = BatchItem.objects.filter(batch__uploader=other_user).select_related("chat")
    assert bob_items.exists()
    assert {item.chat.uploader_id for item in bob_items} == {other_user.pk}
    interactions = Interaction.objects.filter(chat__uploader=other_user)
    assert interactions.count() == Interaction.objects.filter(chat__uploader=owner).count()

    # A later import for Bob finds his derived chats again instead of making more.
    chats_before = Chat.objects.filter(uploader=other_user).count()
    lines = batches.read_text().splitlines()
    again = [
        json.dumps({**json.loads(line), "batchId": f"bob-again-{n}"})
        for n, line in enumerate(lines)
    ]
    batches.write_text("\n".join(again) + "\n")
    output, error = run("--from", str(tmp_path / "bob"), "--owner", "other")
    assert Chat.objects.filter(uploader=other_user).count() == chats_before
