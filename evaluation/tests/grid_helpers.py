"""Question sets with runs whose verdicts and answers a test chooses, repeats included,
built row by row (the creation of repeat runs is the engine's; these tests read them).

`make_set(owner, n)` makes a set of n questions with its first (unanswered) run deleted;
`add_run(question_set, verdicts, ...)` adds a run: `verdicts` is one entry per question,
a verdict string for one answer, or a list of k verdicts (repeats=k).
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from batches.models import Batch, BatchItem
from batches.services import create_batch_run
from batches.uploads import ParsedRow
from chats.models import Chat, Interaction
from evaluation.models import QuestionSet, Run


def make_set(
    owner, n: int = 3, *, name: str = "Weekly set", texts=None, expected=None
) -> QuestionSet:
    texts = texts or [f"Question number {i + 1} about passports ({name})?" for i in range(n)]
    expected = expected or [f"Expected {i}" for i in range(len(texts))]
    batch = create_batch_run(
        uploader=owner,
        name=name,
        rows=[
            ParsedRow(question=text, columns={"question": text}, expected_answer=answer)
            for text, answer in zip(texts, expected, strict=True)
        ],
        ai_provider="extractive",
        search_provider="none",
    )
    question_set = batch.set_run.question_set
    batch.delete()  # the set stays; its runs are the ones a test adds
    return question_set


_order = {"n": 0}


def add_run(
    question_set: QuestionSet,
    verdicts,
    *,
    owner=None,
    answers=None,
    name: str = "",
    model: str = "extractive",
    created_at=None,
    citation=None,
    outcome=None,
) -> Batch:
    """A completed run: one row per question and repeat, `verdicts[q]` (str or list)."""
    owner = owner or question_set.owner
    per_question = [[v] if isinstance(v, str) else list(v) for v in verdicts]
    repeats = max(len(v) for v in per_question)
    _order["n"] += 1
    batch = Batch.objects.create(
        name=name or f"Weekly {_order['n']}",
        uploader=owner,
        ai_provider="extractive",
        model=model,
        search_provider="none",
        status=Batch.Status.COMPLETED,
        repeats=repeats,
        created_at=created_at or timezone.now() + timedelta(seconds=_order["n"]),
    )
    questions = list(question_set.questions.order_by("position"))
    position = 0
    items = []
    for question, values in zip(questions, per_question, strict=True):
        for repeat, verdict in enumerate(values, start=1):
            chat = Chat.objects.create(uploader=owner, ai_provider="extractive")
            answer = (
                answers[question.position]
                if answers and isinstance(answers[question.position], str)
                else (answers[question.position][repeat - 1] if answers else f"Answer {verdict}")
            )
            interaction = Interaction.objects.create(
                chat=chat, position=0, question=question.question, answer=answer
            )
            items.append(
                BatchItem(
                    batch=batch,
                    chat=chat,
                    position=position,
                    question_index=question.position,
                    repeat=repeat,
                    question=question.question,
                    status=BatchItem.Status.DONE,
                    interaction=interaction,
                    expected_answer=question.expected_answer,
                    expected_outcome="normal" if outcome is not None else "",
                    verdict=verdict,
                    verdict_reason="similarity" if verdict in ("pass", "fail") else "",
                    citation_match=citation,
                )
            )
            position += 1
    BatchItem.objects.bulk_create(items)
    batch.recount()
    Run.objects.create(batch=batch, question_set=question_set, version=question_set.version)
    return batch
