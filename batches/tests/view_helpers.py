"""Shared by the batch page tests: htmx headers, upload data, batches made through the
real service."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from batches.models import Batch
from batches.services import create_batch_run
from batches.tests.factories import BatchFactory, BatchItemFactory
from batches.uploads import ParsedRow
from chats.tests.factories import InteractionFactory

HX = {"HTTP_HX_REQUEST": "true"}
LIST_URL = "/batches/"


def csv_file(text: str, name: str = "questions.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


def upload_data(file, **overrides) -> dict:
    data = {
        "name": "My batch",
        "file": file,
        "ai_model": "extractive::extractive",
        "search_provider": "none",
        "page_language": "en",
    }
    data.update(overrides)
    return data


def real_batch(user, n: int = 3, **kwargs) -> Batch:
    rows = [
        ParsedRow(question=f"Question {i}?", columns={"question": f"Question {i}?"})
        for i in range(n)
    ]
    return create_batch_run(
        uploader=user,
        name=kwargs.pop("name", "Real batch"),
        rows=rows,
        ai_provider="extractive",
        search_provider="none",
        **kwargs,
    )


def count_answers(batch) -> None:
    """Set the batch's answer counters from its rows, as the engine's writer keeps them
    (rows made here by factories skip the writer)."""
    totals = batch.items.answer_totals(batch.page_language)
    Batch.objects.filter(pk=batch.pk).update(**totals)
    for name, value in totals.items():
        setattr(batch, name, value)


def make_rows(batch, n, status="done"):
    for i in range(n):
        item = BatchItemFactory(batch=batch, position=i, status=status)
        if status == "done":
            item.interaction = InteractionFactory(chat=item.chat, position=0, answer=f"Answer {i}")
            item.save()
    count_answers(batch)


def answered(batch, position, *, answer="An answer.", latency_ms=5, **fields):
    """A done row of `batch` with its answer (an Interaction in the row's chat)."""
    item = BatchItemFactory(batch=batch, position=position, status="done", **fields)
    item.interaction = InteractionFactory(
        chat=item.chat, position=0, answer=answer, latency_ms=latency_ms, question=item.question
    )
    item.save()
    count_answers(batch)
    return item


def completed(owner, **fields):
    """A batch of `owner`, completed unless `status` says otherwise."""
    fields.setdefault("status", Batch.Status.COMPLETED)
    return BatchFactory(uploader=owner, **fields)
