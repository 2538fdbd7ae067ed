"""Run again + compare: a batch answered offline, run again unchanged (all `same`), and
run again with another provider (fake OpenAI-protocol server): `changed`, `improved` and
`regressed` where the expected citation says so."""

from __future__ import annotations

import pytest

from batches import engine, services
from batches.compare import compare_batches, diff_sides, word_diff
from batches.grading import regrade_batch
from batches.models import Batch, BatchItem
from batches.uploads import ParsedRow

pytestmark = pytest.mark.django_db(transaction=True)

QUESTIONS = [
    ("How do I cancel a batch that is running?", "https://app.example/batches/"),
    ("Which file formats can I upload?", "https://app.example/upload/"),
    ("What is the maximum number of rows in a batch?", "https://app.example/limits/"),
]


@pytest.fixture
def offline(settings, tmp_path):
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "search-index.sqlite3")


def _run(batch: Batch) -> Batch:
    services.start_batch(batch=batch)
    while engine.process_for_duration(batch_id=batch.pk, seconds=30).remaining:
        pass
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED
    return batch


def _changes(a: Batch, b: Batch) -> list[str]:
    return [row.change for row in compare_batches(a=a, b=b).rows]


def test_run_again_unchanged_then_with_another_provider(offline, fake_ai, owner):
    rows = [
        ParsedRow(
            question=question,
            referring_url=url,
            columns={"question": question, "url": url, "team": f"T{i}"},
            expected_answer="Press Cancel on the batch page." if i == 0 else "",
        )
        for i, (question, url) in enumerate(QUESTIONS)
    ]
    first = _run(
        services.create_batch_run(
            uploader=owner,
            name="Offline",
            rows=rows,
            ai_provider="extractive",
            search_provider="local",
        )
    )
    items = list(first.items.select_related("interaction").order_by("position"))
    cited = [item.interaction.citation_url for item in items]
    assert all(cited), "the extractive answerer cites the best search result"
    # Row 1 expects what the offline run cited; row 2 expects its referring page (which
    # the fake model cites when search finds nothing); row 3 expects nothing.
    BatchItem.objects.filter(pk=items[0].pk).update(expected_citation_url=cited[0])
    BatchItem.objects.filter(pk=items[1].pk).update(expected_citation_url=QUESTIONS[1][1])
    regrade_batch(batch=first)

    again = _run(
        services.run_again(
            batch=first,
            uploader=owner,
            ai_provider="extractive",
            search_provider="local",
            page_language="en",
            apply_overrides=False,
        )
    )
    assert again.run_from_id == first.pk
    copied = list(again.items.order_by("position"))
    assert [item.expected_citation_url for item in copied] == [cited[0], QUESTIONS[1][1], ""]
    assert copied[0].expected_answer == "Press Cancel on the batch page."
    assert [item.row["team"] for item in copied] == ["T0", "T1", "T2"]
    comparison = compare_batches(a=first, b=again)
    assert comparison.aligned_by == "row"
    assert _changes(first, again) == ["same", "same", "same"]
    assert comparison.summary["same"] == 3

    other = _run(
        services.run_again(
            batch=first,
            uploader=owner,
            ai_provider="compatible",
            model="local-model",
            search_provider="none",
            page_language="en",
            apply_overrides=False,
        )
    )
    assert len(fake_ai.requests) == 3
    assert _changes(first, other) == ["regressed", "improved", "changed"]
    # The other way round the classes swap.
    assert _changes(other, first) == ["improved", "regressed", "changed"]
    comparison = compare_batches(a=first, b=other)
    assert comparison.summary == {
        "same": 0,
        "changed": 1,
        "improved": 1,
        "regressed": 1,
        "only_in_a": 0,
        "only_in_b": 0,
    }
    for row in comparison.rows:
        assert row.similarity is not None and 0.0 <= row.similarity < 1.0


def test_run_again_keeps_conversations_together(make_batch, owner):
    rows = [
        ParsedRow(question="First?", chat_key="c1"),
        ParsedRow(question="Follow-up?", chat_key="c1"),
        ParsedRow(question="Alone?"),
    ]
    batch = make_batch(rows=rows, ai_provider="extractive", model="extractive")
    again = services.run_again(
        batch=batch,
        uploader=owner,
        ai_provider="extractive",
        search_provider="none",
        page_language="fr",
        apply_overrides=False,
    )
    chats = list(again.items.order_by("position").values_list("chat_id", flat=True))
    assert chats[0] == chats[1] != chats[2]
    assert again.page_language == "fr" and again.items.first().chat.page_language == "fr"
    assert again.name == f"{batch.name} (again)"


def test_unrelated_batches_align_by_question(make_batch):
    a = make_batch(
        rows=[
            ParsedRow(question="Alpha?"),
            ParsedRow(question="Beta?"),
            ParsedRow(question="Beta?"),
        ],
        ai_provider="extractive",
        model="extractive",
    )
    b = make_batch(
        rows=[
            ParsedRow(question="  beta "),
            ParsedRow(question="Gamma?"),
            ParsedRow(question="BETA?"),
        ],
        ai_provider="extractive",
        model="extractive",
    )
    comparison = compare_batches(a=a, b=b)
    assert comparison.aligned_by == "question"
    pairs = [
        (row.a.position if row.a else None, row.b.position if row.b else None, row.change)
        for row in comparison.rows
    ]
    assert pairs == [
        (0, None, "only_in_a"),
        (1, 0, "same"),  # neither answered yet
        (2, 2, "same"),
        (None, 1, "only_in_b"),
    ]
    assert comparison.summary["only_in_a"] == comparison.summary["only_in_b"] == 1


@pytest.mark.parametrize(
    ("a", "b", "pieces"),
    [
        ("same words", "same words", [("equal", "same words")]),
        (
            "Renew your passport online.",
            "Renew your card online today.",
            [
                ("equal", "Renew your"),
                ("delete", " passport"),
                ("insert", " card"),
                ("equal", " online"),
                ("insert", " today"),
                ("equal", "."),
            ],
        ),
        ("Spacing  differs", "Spacing differs", [("equal", "Spacing  differs")]),
        ("", "new", [("insert", "new")]),
        ("old", "", [("delete", "old")]),
    ],
)
def test_word_diff(a, b, pieces):
    assert word_diff(a, b) == pieces


def test_diff_sides_keep_each_sides_own_spacing():
    side_a, side_b = diff_sides("Save the file  as .xlsx", "Save the file as .xlsx first")
    assert "".join(text for _changed, text in side_a) == "Save the file  as .xlsx"
    assert "".join(text for _changed, text in side_b) == "Save the file as .xlsx first"
    assert [text for changed, text in side_b if changed] == [" first"]
    assert not any(changed for changed, _text in side_a)


def test_run_again_keeps_the_expected_outcomes(make_batch, owner):
    rows = [
        ParsedRow(question="Who won?", expected_outcome="not-gc"),
        ParsedRow(question="My SIN?", expected_outcome="blocked"),
    ]
    batch = make_batch(rows=rows, ai_provider="extractive", model="extractive")
    again = services.run_again(
        batch=batch,
        uploader=owner,
        ai_provider="extractive",
        search_provider="none",
        page_language="en",
        apply_overrides=False,
    )

    outcomes = again.items.order_by("position").values_list("expected_outcome", flat=True)
    assert list(outcomes) == ["not-gc", "blocked"]
