"""create_batch_run: a Batch with a Chat and a BatchItem per row, all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from batches import bulk
from batches.errors import UploadError
from batches.models import Batch, BatchItem
from batches.services import create_batch_run
from batches.uploads import ParsedRow, parse_upload
from chats.errors import ProviderNotConfigured
from chats.models import Chat

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data"


def create(owner, rows, **kwargs):
    options = {
        "uploader": owner,
        "name": "Test batch",
        "rows": rows,
        "ai_provider": "extractive",
        "search_provider": "local",
    }
    options.update(kwargs)
    return create_batch_run(**options)


def counts() -> tuple[int, int, int]:
    return Batch.objects.count(), Chat.objects.count(), BatchItem.objects.count()


def rows_of(*questions: str, chat_key: str = "") -> list[ParsedRow]:
    return [
        ParsedRow(question=q, chat_key=chat_key, columns={"question": q, "n": str(i)})
        for i, q in enumerate(questions)
    ]


def test_each_row_becomes_an_item_with_its_own_chat_in_order(owner):
    batch = create(owner, rows_of("One?", "Two?", "Three?"), page_language="fr")
    items = list(batch.items.select_related("chat"))
    assert [(i.position, i.question, i.status) for i in items] == [
        (0, "One?", "pending"),
        (1, "Two?", "pending"),
        (2, "Three?", "pending"),
    ]
    assert len({i.chat_id for i in items}) == 3
    assert batch.total_items == 3 and batch.status == Batch.Status.UPLOADED
    chat = items[0].chat
    assert (chat.ai_provider, chat.search_provider, chat.page_language) == (
        "extractive",
        "local",
        "fr",
    )
    assert chat.uploader == owner and chat.model == batch.model != ""
    assert list(batch.chats.order_by("batch_items__position")) == [i.chat for i in items]


def test_rows_written_in_several_chunks_are_all_there_in_order(owner, monkeypatch):
    """Without COPY, rows go in executemany chunks: a batch spanning several chunks (and
    a partial last one) keeps every row, in order."""
    monkeypatch.setattr(bulk, "EXECUTEMANY_CHUNK", 3)
    questions = [f"Question {n}?" for n in range(8)]
    batch = create(owner, rows_of(*questions))
    assert list(batch.items.order_by("position").values_list("question", flat=True)) == questions
    assert batch.chats.count() == 8


def test_rows_sharing_a_chat_key_share_one_chat_in_row_order(owner):
    parsed = parse_upload(data=(DATA / "chatid_grouping.csv").read_bytes())
    batch = create(owner, parsed.rows)
    items = list(batch.items.all())
    assert Chat.objects.count() == 3  # "a", "b" and the row without a key
    chat_a = items[0].chat
    a_items = list(chat_a.batch_items.order_by("position"))
    assert [i.question for i in a_items] == [
        "What is EI?",
        "How long does it last?",
        "And how do I apply?",
    ]
    assert [i.position for i in a_items] == [0, 2, 4]
    assert items[1].chat_id not in (chat_a.pk, items[3].chat_id)
    assert items[3].chat_id != chat_a.pk


def test_every_column_and_the_referring_url_are_kept(owner):
    parsed = parse_upload(data=(DATA / "good.xlsx").read_bytes(), filename="good.xlsx")
    batch = create(owner, parsed.rows, name="", source_filename="good.xlsx")
    first = batch.items.get(position=0)
    assert first.columns() == parsed.rows[0].columns
    assert first.columns()["when"] == "2024-03-01" and first.columns()["count"] == "3"
    assert first.referring_url == "https://example.ca/p"
    assert first.question == "How do I renew my passport?"
    assert (batch.name, batch.source_filename) == ("good", "good.xlsx")  # the file's stem


def test_positions_run_from_zero_without_gaps(owner):
    batch = create(owner, rows_of(*(f"Q{i}?" for i in range(10))))
    positions = list(batch.items.values_list("position", flat=True))
    assert positions == list(range(10))
    assert list(batch.items.values_list("question", flat=True)) == [f"Q{i}?" for i in range(10)]


def test_too_many_rows_creates_nothing(owner, settings):
    settings.MAX_BATCH_ITEMS = 2
    before = counts()
    with pytest.raises(UploadError) as info:
        create(owner, rows_of("A?", "B?", "C?"))
    assert info.value.code == "too_many_rows"
    assert counts() == before


def test_no_rows_creates_nothing(owner):
    with pytest.raises(UploadError) as info:
        create(owner, [])
    assert info.value.code == "empty"
    assert counts() == (0, 0, 0)


@pytest.mark.parametrize(
    "providers",
    [
        {"ai_provider": "no-such-provider"},
        {"search_provider": "no-such-search"},
        {"ai_provider": "extractive", "model": "no-such-model"},
    ],
)
def test_unknown_provider_or_model_creates_nothing(owner, providers):
    before = counts()
    with pytest.raises(ProviderNotConfigured):
        create(owner, rows_of("A?"), **providers)
    assert counts() == before


def test_failure_in_a_later_row_rolls_back_the_whole_batch(owner):
    rows = rows_of("A?", "B?", "C?")
    # A value the JSON field cannot store: the third row fails after two were written.
    rows.append(ParsedRow(question="D?", columns={"question": "D?", "bad": {1, 2}}))  # type: ignore[dict-item]
    before = counts()
    with pytest.raises(TypeError):
        create(owner, rows)
    assert counts() == before


def test_headers_are_stored_once_per_batch_not_in_every_row(owner):
    """Issue 29 item 2: 499 long headers over 50 rows; each row holds its values by
    position, the headers live once in input_columns."""
    headers = ["question"] + [f"h{n}-" + "x" * 2_000 for n in range(499)]
    data = ",".join(headers) + "\n" + "".join(f"q{n}" + ",v" * 499 + "\n" for n in range(50))
    parsed = parse_upload(data=data.encode(), filename="wide.csv")
    batch = create(owner, parsed.rows)
    item = batch.items.get(position=3)
    assert item.row == ["q3"] + ["v"] * 499
    assert item.columns() == dict(zip(headers, ["q3"] + ["v"] * 499, strict=True))
    assert batch.input_columns == headers


def test_a_batch_storing_more_than_the_limit_is_refused_naming_it(owner, settings):
    settings.MAX_BATCH_STORED_BYTES = 1_000
    rows = [ParsedRow(question="q", columns={"question": "q", "text": "y" * 600})] * 2
    with pytest.raises(UploadError) as refused:
        create(owner, rows)
    assert refused.value.code == "too_much_data"
    assert "MAX_BATCH_STORED_BYTES" in refused.value.message
    assert counts() == (0, 0, 0)
