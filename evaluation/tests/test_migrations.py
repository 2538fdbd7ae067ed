"""0002: every existing batch becomes a run of a set; run-again lineage shares one."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

BEFORE = ("evaluation", "0001_question_sets")
AFTER = ("evaluation", "0002_batches_become_runs")


def _batch(apps, owner, name, questions, *, run_from=None, shared_chat=False):
    Batch = apps.get_model("batches", "Batch")
    Chat = apps.get_model("chats", "Chat")
    BatchItem = apps.get_model("batches", "BatchItem")
    batch = Batch.objects.create(
        name=name,
        ai_provider="extractive",
        search_provider="none",
        uploader=owner,
        run_from=run_from,
        total_items=len(questions),
    )
    chat = None
    for position, (question, expected) in enumerate(questions):
        if chat is None or not shared_chat:
            chat = Chat.objects.create(
                chat_id=f"{name}-{position}", ai_provider="extractive", search_provider="none"
            )
        BatchItem.objects.create(
            batch=batch,
            chat=chat,
            position=position,
            question=question,
            expected_answer=expected,
            row={"question": question, "topic": "t"},
        )
    return batch


def test_batches_and_run_again_lineage_become_sets_and_runs(migrator):
    state = migrator.apply_initial_migration(BEFORE)
    apps = state.apps
    owner = apps.get_model("auth", "User").objects.create(username="owner")
    first = _batch(apps, owner, "weekly", [("q1", "a1"), ("q2", "a2")])
    again = _batch(apps, owner, "weekly again", [("q1", "a1"), ("q2", "a2")], run_from=first)
    again_again = _batch(apps, owner, "third", [("q1", "a1"), ("q2", "a2")], run_from=again)
    other = _batch(apps, None, "chat", [("t1", ""), ("t2", "")], shared_chat=True)
    items_before = apps.get_model("batches", "BatchItem").objects.count()

    apps = migrator.apply_tested_migration(AFTER).apps
    Run = apps.get_model("evaluation", "Run")
    QuestionSet = apps.get_model("evaluation", "QuestionSet")
    Question = apps.get_model("evaluation", "Question")
    assert apps.get_model("batches", "BatchItem").objects.count() == items_before
    assert apps.get_model("batches", "Batch").objects.count() == Run.objects.count() == 4
    assert QuestionSet.objects.count() == 2
    lineage = {Run.objects.get(batch_id=b.pk).question_set_id for b in (first, again, again_again)}
    assert len(lineage) == 1
    weekly = QuestionSet.objects.get(pk=lineage.pop())
    assert (weekly.name, weekly.owner_id, weekly.version) == ("weekly", owner.pk, 1)
    assert list(
        Question.objects.filter(question_set=weekly)
        .order_by("position")
        .values_list("position", "question", "expected_answer", "chat_key", "columns")
    ) == [
        (0, "q1", "a1", "", {"question": "q1", "topic": "t"}),
        (1, "q2", "a2", "", {"question": "q2", "topic": "t"}),
    ]
    chat_set = Run.objects.get(batch_id=other.pk).question_set
    assert chat_set.owner_id is None
    # Two turns of one conversation share a key.
    assert list(chat_set.questions.values_list("chat_key", flat=True)) == ["1", "1"]

    # The fingerprint is an upload's today: an identical upload would find the set.
    from evaluation.fingerprints import fingerprint

    assert weekly.fingerprint == fingerprint(
        Question.objects.filter(question_set=weekly).order_by("position").values()
    )
