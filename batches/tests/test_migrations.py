"""The planned migrations on legacy data: 0001 inline entries -> 0004 items, chats, turns.

These rebuild the schema (django-test-migrations), so they are few and each checks a lot.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batches import legacy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LEGACY_DATA = Path(__file__).parent / "legacy_data"
OLD = ("batches", "0001_initial")
CONVERTED = ("batches", "0003_inline_entries_to_items")
LATEST = ("batches", "0004_drop_inline_fields")


def era1_documents() -> list[dict]:
    # Plain json, not bson: the entries keep {"$numberLong": ...} as a restored dump would.
    lines = (LEGACY_DATA / "sample" / "era1-inline" / "batches.json").read_text(encoding="utf-8")
    return [json.loads(line) for line in lines.splitlines() if line.strip()]


def make_old_batches(apps) -> dict[str, object]:
    """Batches in the 0001 schema: the sample's shapes plus the awkward ones."""
    User = apps.get_model("auth", "User")
    Batch = apps.get_model("batches", "Batch")
    uploader = User.objects.create(username="legacy-owner")
    batches = {}
    for document in era1_documents():
        batches[document["batchId"]] = Batch.objects.create(
            legacy_id=document["batchId"],
            name=document["name"],
            type=document["type"],
            ai_provider=document["aiProvider"],
            search_provider=document["searchProvider"],
            page_language=document["pageLanguage"],
            apply_overrides=document["applyOverrides"],
            status=document["status"],
            total_items=document["totalItems"],
            processed_items=document["processedItems"],
            failed_items=document["failedItems"],
            last_processed_index=document["lastProcessedIndex"],
            entries=document["entries"],
            uploader=uploader,
            created_at=datetime(2025, 1, 9, tzinfo=UTC),
        )
    batches["odd"] = Batch.objects.create(
        legacy_id="odd",
        name="Odd shapes",
        ai_provider="openai",
        search_provider="google",
        page_language="fr",
        status="processing",
        total_items=99,
        processed_items=7,
        entries=[
            # completed, but only the answer: every optional field missing
            {"question": "Minimal?", "status": "completed", "answer": "Yes."},
            # unknown extra fields are kept as input columns
            {"question": "Extra?", "url": "https://a.example/", "status": "pending", "dept": "X"},
            # no question at all
            {"status": "completed", "answer": "orphan answer"},
            # completed without an answer
            {"question": "Lost?", "status": "completed"},
        ],
        uploader=None,
    )
    batches["empty"] = Batch.objects.create(
        legacy_id="empty",
        name="No entries",
        ai_provider="openai",
        search_provider="google",
        status="completed",
        total_items=3,
        processed_items=3,
        entries=[],
        uploader=uploader,
    )
    return batches


def test_inline_entries_become_items_chats_and_interactions(migrator):
    old_state = migrator.apply_initial_migration(OLD)
    old = make_old_batches(old_state.apps)

    new_state = migrator.apply_tested_migration(LATEST)
    Batch = new_state.apps.get_model("batches", "Batch")
    BatchItem = new_state.apps.get_model("batches", "BatchItem")
    Interaction = new_state.apps.get_model("chats", "Interaction")

    documents = {d["batchId"]: d for d in era1_documents()}
    for legacy_id, document in documents.items():
        batch = Batch.objects.get(legacy_id=legacy_id)
        items = list(
            BatchItem.objects.filter(batch=batch)
            .select_related("chat", "interaction")
            .order_by("position")
        )
        assert [i.position for i in items] == list(range(len(document["entries"])))
        for item, entry in zip(items, document["entries"], strict=True):
            chat = item.chat
            assert (chat.ai_provider, chat.search_provider, chat.page_language) == (
                document["aiProvider"],
                document["searchProvider"] or "none",
                document["pageLanguage"],
            )
            assert chat.apply_overrides is document["applyOverrides"]
            assert chat.uploader_id == old[legacy_id].uploader_id
            assert item.question == entry["question"]
            assert item.referring_url == entry["url"]
            assert item.row == {
                "entry_id": entry["entry_id"],
                "question": entry["question"],
                "url": entry["url"],
            }
            expected = {"completed": "done", "failed": "failed", "pending": "pending"}[
                entry["status"]
            ]
            assert item.status == expected
            if expected == "failed":
                assert item.error == entry["error"]
                assert item.interaction is None
            elif expected == "pending":
                assert (item.error, item.interaction, item.finished_at) == ("", None, None)
            else:
                turn = item.interaction
                assert turn.chat_id == chat.pk and turn.position == 0
                assert turn.question == entry["question"]
                assert turn.answer == legacy.answer_text(entry["answer"])
                assert "<s-1>" not in turn.answer and turn.answer.startswith("Answer to:")
                assert turn.citation_url == entry["answer_citation_url"]
                assert turn.citation_title == entry["answer_citation_head"]
                assert turn.model == entry["answer_model"]
                assert turn.input_tokens == legacy.to_int(entry["answer_input_tokens"])
                assert turn.output_tokens == entry["answer_output_tokens"]
                assert turn.search_results[0]["url"] == entry["url"]
        statuses = [i.status for i in items]
        assert batch.total_items == len(items)
        assert batch.processed_items == statuses.count("done")
        assert batch.failed_items == statuses.count("failed")

    # $numberLong tokens arrive as ints.
    first = BatchItem.objects.get(batch__legacy_id="batch_c4ca4238a0b923820dcc", position=0)
    assert first.interaction.input_tokens == 3232
    # A half-done batch: counters recounted, the pending row waits to be started here.
    third = Batch.objects.get(legacy_id="batch_eccbc87e4b5ce2fe2830")
    assert (third.total_items, third.processed_items, third.failed_items) == (4, 2, 1)
    assert third.last_processed_index == 1
    assert third.status == "uploaded"
    assert Batch.objects.get(legacy_id="batch_c4ca4238a0b923820dcc").status == "completed"

    odd = Batch.objects.get(legacy_id="odd")
    items = list(BatchItem.objects.filter(batch=odd).select_related("interaction", "chat"))
    assert [(i.position, i.status) for i in items] == [
        (0, "done"),
        (1, "pending"),
        (2, "failed"),
        (3, "failed"),
    ]
    assert items[0].interaction.answer == "Yes."
    assert items[0].interaction.input_tokens is None
    assert items[0].interaction.citation_url == ""
    assert items[1].row == {"question": "Extra?", "url": "https://a.example/", "dept": "X"}
    assert "no question" in items[2].error
    assert "no answer" in items[3].error
    assert all(i.chat.uploader_id is None and i.chat.page_language == "fr" for i in items)
    assert (odd.total_items, odd.processed_items, odd.failed_items) == (4, 1, 2)
    assert odd.last_processed_index == 1
    assert odd.status == "uploaded"

    empty = Batch.objects.get(legacy_id="empty")
    assert (empty.total_items, empty.processed_items, empty.status) == (0, 0, "completed")

    total_entries = sum(len(d["entries"]) for d in documents.values()) + 4
    assert BatchItem.objects.count() == total_entries
    answered = sum(e["status"] == "completed" for d in documents.values() for e in d["entries"])
    assert Interaction.objects.count() == answered + 1
    # The inline fields are gone.
    assert not hasattr(Batch, "entries")


def test_conversion_run_again_creates_nothing(migrator):
    old_state = migrator.apply_initial_migration(OLD)
    make_old_batches(old_state.apps)
    state = migrator.apply_tested_migration(CONVERTED)
    apps = state.apps

    def counts() -> tuple:
        return tuple(
            apps.get_model(app, name).objects.count()
            for app, name in (("batches", "BatchItem"), ("chats", "Chat"), ("chats", "Interaction"))
        ) + tuple(
            apps.get_model("batches", "Batch")
            .objects.order_by("pk")
            .values_list(
                "status", "total_items", "processed_items", "failed_items", "last_processed_index"
            )
        )

    before = counts()
    assert before[0] == 21  # 17 sample entries + 4 odd ones
    for _ in range(2):
        result = legacy.convert_inline_batches(apps, batch_size=2)
        assert (result.items, result.interactions) == (0, 0)
        assert counts() == before


def test_resting_rows_move_to_their_own_field_and_back(migrator):
    """0010: a row that is not running keeps its retry time in `resting_until`; a running
    row keeps its lease. Reversed, the retry times move back."""
    before = ("batches", "0009_worker_heartbeat")
    state = migrator.apply_initial_migration(before)
    Batch = state.apps.get_model("batches", "Batch")
    Chat = state.apps.get_model("chats", "Chat")
    BatchItem = state.apps.get_model("batches", "BatchItem")
    batch = Batch.objects.create(name="b", ai_provider="extractive", search_provider="none")
    rest = datetime(2030, 1, 1, tzinfo=UTC)
    lease = datetime(2030, 1, 2, tzinfo=UTC)
    for position, (status, expires) in enumerate(
        [("pending", rest), ("cancelled", rest), ("running", lease), ("pending", None)]
    ):
        chat = Chat.objects.create(
            chat_id=f"c{position}", ai_provider="extractive", search_provider="none"
        )
        BatchItem.objects.create(
            batch=batch,
            chat=chat,
            position=position,
            question="q",
            status=status,
            lease_expires_at=expires,
        )

    state = migrator.apply_tested_migration(("batches", "0010_item_resting_until"))
    BatchItem = state.apps.get_model("batches", "BatchItem")
    rows = BatchItem.objects.order_by("position").values_list("lease_expires_at", "resting_until")
    assert list(rows) == [(None, rest), (None, rest), (lease, None), (None, None)]

    state = migrator.apply_tested_migration(before)
    BatchItem = state.apps.get_model("batches", "BatchItem")
    rows = BatchItem.objects.order_by("position").values_list("lease_expires_at", flat=True)
    assert list(rows) == [rest, rest, lease, None]


def test_existing_turns_get_the_answer_type_their_answer_says(migrator):
    """chats 0003: blocked by the guard, the not-found wording (any language), else normal."""
    state = migrator.apply_initial_migration(("chats", "0002_guard_fields"))
    Chat = state.apps.get_model("chats", "Chat")
    Interaction = state.apps.get_model("chats", "Interaction")
    chat = Chat.objects.create(chat_id="c", ai_provider="extractive", search_provider="none")
    answers = [
        ("This question was not answered.", "blocked"),
        ("I could not find this in the documents searched.", ""),
        ("Je n'ai pas trouvé cette information dans les documents consultés.", ""),
        ("", ""),
        ("Renew online with form A.", ""),
    ]
    for position, (answer, guard_status) in enumerate(answers):
        Interaction.objects.create(
            chat=chat, position=position, question="q", answer=answer, guard_status=guard_status
        )

    state = migrator.apply_tested_migration(("chats", "0003_answer_type"))
    Interaction = state.apps.get_model("chats", "Interaction")
    types = Interaction.objects.order_by("position").values_list("answer_type", flat=True)
    assert list(types) == ["blocked", "not-found", "not-found", "not-found", "normal"]


def test_graded_rows_get_verdicts_and_blocked_rows_stop_counting_as_answers(migrator):
    """batches 0012: verdicts by the written rules for rows graded before; nothing lost."""
    state = migrator.apply_initial_migration(
        [("batches", "0011_item_expected_outcome"), ("chats", "0003_answer_type")]
    )
    Batch = state.apps.get_model("batches", "Batch")
    Chat = state.apps.get_model("chats", "Chat")
    Interaction = state.apps.get_model("chats", "Interaction")
    BatchItem = state.apps.get_model("batches", "BatchItem")
    batch = Batch.objects.create(name="b", ai_provider="extractive", search_provider="none")
    graded = datetime(2030, 1, 1, tzinfo=UTC)
    cases = [
        ("normal", "", {"citation_match": True, "answer_found": True}),
        ("blocked", "blocked", {"answer_found": True}),
        ("normal", "not-gc", {"answer_found": True, "answer_similarity": 0.9}),
        ("normal", "", {"answer_found": True}),
    ]
    for position, (answer_type, outcome, grades) in enumerate(cases):
        chat = Chat.objects.create(
            chat_id=f"c{position}", ai_provider="extractive", search_provider="none"
        )
        turn = Interaction.objects.create(
            chat=chat, position=0, question="q", answer="a", answer_type=answer_type
        )
        BatchItem.objects.create(
            batch=batch,
            chat=chat,
            position=position,
            question="q",
            status="done",
            interaction=turn,
            expected_outcome=outcome,
            graded_at=graded,
            **grades,
        )

    state = migrator.apply_tested_migration(("batches", "0012_item_verdict"))
    BatchItem = state.apps.get_model("batches", "BatchItem")
    rows = BatchItem.objects.order_by("position").values_list(
        "verdict", "verdict_reason", "answer_found", "answer_similarity"
    )
    assert list(rows) == [
        ("pass", "citation", True, None),
        ("pass", "outcome", False, None),
        ("fail", "outcome", True, 0.9),
        ("ungraded", "nothing", True, None),
    ]


def test_rows_become_values_by_position_and_back_losslessly(migrator):
    """0013: a row's cells are stored by position in its batch's headers (the headers once
    per batch); a row with a key the headers lack, or a batch without headers (legacy
    imports), keeps its dict. Reversed, every row is the dict it was."""
    before = ("batches", "0012_item_verdict")
    state = migrator.apply_initial_migration(before)
    Batch = state.apps.get_model("batches", "Batch")
    Chat = state.apps.get_model("chats", "Chat")
    BatchItem = state.apps.get_model("batches", "BatchItem")
    headers = ["question", "team", "note"]
    batch = Batch.objects.create(name="b", ai_provider="extractive", input_columns=headers)
    legacy_batch = Batch.objects.create(name="legacy", ai_provider="extractive")
    rows = [
        (batch, {"question": "q1", "team": "a", "note": ""}),
        (batch, {"question": "q2", "team": "b"}),  # no "note": stays absent
        (batch, {"question": "q3", "extra": "x"}),  # a key not in the headers
        (legacy_batch, {"question": "q4", "any": "y"}),
    ]
    for position, (owner, row) in enumerate(rows):
        chat = Chat.objects.create(chat_id=f"c{position}", ai_provider="extractive")
        BatchItem.objects.create(batch=owner, chat=chat, position=position, question="q", row=row)

    state = migrator.apply_tested_migration(("batches", "0013_item_row_by_position"))
    BatchItem = state.apps.get_model("batches", "BatchItem")
    stored = list(BatchItem.objects.order_by("position").values_list("row", flat=True))
    assert stored == [["q1", "a", ""], ["q2", "b", None], rows[2][1], rows[3][1]]

    state = migrator.apply_tested_migration(before)
    BatchItem = state.apps.get_model("batches", "BatchItem")
    stored = list(BatchItem.objects.order_by("position").values_list("row", flat=True))
    assert stored == [row for _owner, row in rows]
