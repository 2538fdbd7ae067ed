"""Run again + compare: a batch answered offline, run again unchanged (all `same`), and
run again with another provider (fake OpenAI-protocol server): `changed`, `improved` and
`regressed` where the expected citation says so."""

from __future__ import annotations

from datetime import timedelta

import pytest

from batches import engine, services
from batches.models import Batch, BatchItem
from batches.uploads import ParsedRow
from chats.models import Interaction
from evaluation.compare import (
    RateDelta,
    classify,
    compare_batches,
    diff_sides,
    order_batches,
    rate_deltas,
    word_diff,
)
from evaluation.grading import GradeSummary, regrade_batch

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
    assert [item.columns()["team"] for item in copied] == ["T0", "T1", "T2"]
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
    # The ids the other way round: the batch run from is still the baseline.
    assert _changes(other, first) == ["regressed", "improved", "changed"]
    comparison = compare_batches(a=other, b=first)
    assert (comparison.baseline, comparison.new) == (first, other)
    assert comparison.summary == {
        "improved": 1,
        "regressed": 1,
        "changed": 1,
        "same": 0,
        "only_in_baseline": 0,
        "only_in_new": 0,
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
        (
            row.baseline.position if row.baseline else None,
            row.new.position if row.new else None,
            row.change,
        )
        for row in comparison.rows
    ]
    assert pairs == [
        (0, None, "only_in_baseline"),
        (1, 0, "same"),  # neither answered yet
        (2, 2, "same"),
        (None, 1, "only_in_new"),
    ]
    assert comparison.summary["only_in_baseline"] == comparison.summary["only_in_new"] == 1


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


# --- Direction, change classes, rates ----------------------------------------------------------


def _item(verdict="", answer=None, url="", position=0) -> BatchItem:
    """An unsaved row: answered `answer` (None = not answered) with that verdict."""
    item = BatchItem(position=position, question="Q?", verdict=verdict)
    if answer is not None:
        item.status = BatchItem.Status.DONE
        item.interaction = Interaction(answer=answer, citation_url=url)
    return item


@pytest.mark.parametrize(
    ("baseline", "new", "change"),
    [
        (_item("fail", "Wrong."), _item("pass", "Right."), "improved"),
        (_item("pass", "Right."), _item("fail", "Wrong."), "regressed"),
        # The verdict decides before the text: the same words can regress (other expectation).
        (_item("pass", "Same."), _item("fail", "Same."), "regressed"),
        (_item("pass", "Right."), _item("pass", "Also right."), "changed"),
        (_item("ungraded", "One."), _item("ungraded", "Two."), "changed"),
        (_item("pass", "A", "https://x.org/a"), _item("pass", "A", "https://x.org/b"), "changed"),
        (_item("fail", "Same  text."), _item("fail", "Same text."), "same"),
        (_item("", "Same.", "https://x.org/a/"), _item("", "Same.", "http://x.org/a"), "same"),
        (_item(), _item(), "same"),
        (_item(), _item("ungraded", "Now answered."), "changed"),
        (_item("pass", "Right."), None, "only_in_baseline"),
        (None, _item("pass", "Right."), "only_in_new"),
    ],
)
def test_change_classes(baseline, new, change):
    assert classify(baseline, new) == change


def test_the_older_batch_is_the_baseline_in_either_order(make_batch):
    older = make_batch(2, name="Older", ai_provider="extractive", model="extractive")
    newer = make_batch(2, name="Newer", ai_provider="extractive", model="extractive")
    for first, second in ((older, newer), (newer, older)):
        assert order_batches(first, second) == (older, newer)
        comparison = compare_batches(a=first, b=second)
        assert (comparison.baseline, comparison.new) == (older, newer)


def test_the_batch_run_from_is_the_baseline_even_when_newer(make_batch, owner):
    source = make_batch(2, name="Source", ai_provider="extractive", model="extractive")
    again = services.run_again(
        batch=source,
        uploader=owner,
        ai_provider="extractive",
        search_provider="none",
        page_language="en",
        apply_overrides=False,
    )
    third = services.run_again(
        batch=again,
        uploader=owner,
        ai_provider="extractive",
        search_provider="none",
        page_language="en",
        apply_overrides=False,
    )
    # Make the source look newer than its re-runs: "run from" still wins over age.
    Batch.objects.filter(pk=source.pk).update(created_at=again.created_at + timedelta(days=1))
    source.refresh_from_db()
    for first, second in ((source, again), (again, source)):
        assert order_batches(first, second) == (source, again)
    # Up the chain: the re-run of a re-run is new against the first source.
    for first, second in ((source, third), (third, source)):
        assert order_batches(first, second) == (source, third)
        assert compare_batches(a=first, b=second).aligned_by == "row"


def test_rate_deltas_new_minus_baseline():
    baseline = GradeSummary(
        verdict_graded=4, verdict_passed=1, similarity_count=2, similarity_mean=0.5
    )
    new = GradeSummary(verdict_graded=4, verdict_passed=3, similarity_count=2, similarity_mean=0.25)
    rates = {rate.name: rate for rate in rate_deltas(baseline, new)}
    assert rates["pass_rate"] == RateDelta("pass_rate", "passRate", 0.25, 0.75)
    assert rates["pass_rate"].delta == 0.5
    assert rates["mean_similarity"].delta == -0.25
    # A rate one run cannot have (no citations expected) has no difference.
    assert rates["citation_match_rate"].baseline is None
    assert rates["citation_match_rate"].delta is None
    assert list(rates) == [
        "pass_rate",
        "outcome_accuracy",
        "citation_match_rate",
        "mean_similarity",
        "answer_found_rate",
        "judge_pass_rate",
        "guard_precision",
        "guard_recall",
    ]
