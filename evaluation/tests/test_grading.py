"""Graders on tables of cases, grade_items/regrade_batch on the real database, and the
AI judge through the fake OpenAI-protocol server."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from batches import engine
from batches.models import BatchItem, JudgeVerdict
from batches.uploads import ParsedRow
from chats.models import Interaction
from chats.providers.extractive import NOT_FOUND
from evaluation import grading
from evaluation.grading import (
    answer_found,
    answer_similarity,
    citation_match,
    clean_expected,
    decide_verdict,
    grade_items,
    grade_summary,
    normalise_url,
    regrade_batch,
)


@pytest.mark.parametrize(
    ("cited", "expected", "match"),
    [
        ("https://www.canada.ca/en/services.html", "http://canada.ca/en/services.html", True),
        ("https://WWW.Canada.CA/en/services/", "https://www.canada.ca/en/services", True),
        ("https://canada.ca/en/x?utm=1#top", "https://canada.ca/en/x", True),
        ("https://canada.ca:443/en/x", "canada.ca/en/x", True),
        ("https://canada.ca/en/x", "https://canada.ca/fr/x", False),
        ("https://canada.ca/en/X", "https://canada.ca/en/x", False),  # paths are case-sensitive
        ("https://canada.ca:8443/en/x", "https://canada.ca/en/x", False),
        ("https://other.example/en/x", "https://canada.ca/en/x", False),
        ("", "https://canada.ca/en/x", False),  # no citation where one was expected
        ("https://canada.ca/en/x", "", None),  # nothing expected: no grade
        ("https://canada.ca/en/x", "   ", None),
    ],
)
def test_citation_match(cited, expected, match):
    assert citation_match(cited, expected) is match


def test_normalise_url_keeps_host_and_path_only():
    assert normalise_url(" HTTPS://www.Example.org/a/b/?q=1#f ") == "example.org/a/b"
    assert normalise_url("http://[::1") == "http://[::1"  # unparseable: compared as text


@pytest.mark.parametrize(
    ("answer", "expected", "low", "high"),
    [
        ("Renew your passport online.", "Renew your passport online.", 1.0, 1.0),
        ("renew YOUR passport, online!", "Renew your passport online.", 1.0, 1.0),
        ("Nothing in common here", "Renew your passport online.", 0.0, 0.0),
        ("", "Renew your passport online.", 0.0, 0.0),
        ("You can renew your passport online or by mail.", "Renew your passport online.", 0.5, 0.9),
        ("Online passport your renew.", "Renew your passport online.", 0.2, 0.6),  # order counts
        ("Renouvelez votre passeport en ligne.", "Renouvelez votre passeport en ligne.", 1.0, 1.0),
    ],
)
def test_answer_similarity_bounds(answer, expected, low, high):
    value = answer_similarity(answer, expected)
    assert 0.0 <= value <= 1.0
    assert low <= value <= high


def test_answer_similarity_without_expectation_is_none():
    assert answer_similarity("Anything", "") is None
    assert answer_similarity("Anything", " .,; ") is None


def test_answer_similarity_is_symmetric():
    a, b = "The fee is 120 dollars for adults", "Adults pay a fee of 120 dollars"
    assert answer_similarity(a, b) == answer_similarity(b, a)


@pytest.mark.parametrize(
    ("answer", "language", "found"),
    [
        (NOT_FOUND["en"], "en", False),
        (NOT_FOUND["fr"], "fr", False),
        (NOT_FOUND["en"], "fr", False),  # an English refusal on a French page
        ("I couldn't find this information in the search results.", "en", False),
        ("I could not find the answer; try the Service Canada office.", "en", False),
        ("I'm sorry, but I cannot answer that question.", "en", False),
        ("I don't have enough information to answer.", "en", False),
        ("Je n’ai pas trouvé la réponse dans les résultats.", "fr", False),
        ("Je n'ai pas pu trouver cette information.", "fr", False),
        ("Je ne sais pas.", "fr", False),
        ("Aucune information à ce sujet dans les documents.", "fr", False),
        ("", "en", False),
        ("Cancel a running batch with the Cancel button.", "en", True),
        ("Vous pouvez annuler un lot en cours avec le bouton Annuler.", "fr", True),
        ("Upload a CSV file; if the column is not found, rename it.", "en", True),
    ],
)
def test_answer_found(answer, language, found):
    assert answer_found(answer, language) is found


# --- Services on the database ---------------------------------------------------------------


def _answer(item: BatchItem, text: str, url: str = "") -> None:
    item.interaction = Interaction.objects.create(
        chat=item.chat, position=0, question=item.question, answer=text, citation_url=url
    )
    item.status = BatchItem.Status.DONE
    item.save(update_fields=["interaction", "status"])


@pytest.fixture
def graded_batch(make_batch):
    rows = [
        ParsedRow(
            question="How do I renew?",
            expected_answer="Renew your passport online.",
            expected_citation_url="https://www.canada.ca/en/passport",
        ),
        ParsedRow(question="Fees?", expected_answer="The fee is 120 dollars."),
        ParsedRow(question="No expectation?"),
        ParsedRow(question="Failed row?", expected_answer="Something."),
    ]
    batch = make_batch(rows=rows, ai_provider="extractive", model="extractive")
    items = list(batch.items.select_related("chat").order_by("position"))
    _answer(items[0], "Renew your passport online.", "https://canada.ca/en/passport/")
    _answer(items[1], NOT_FOUND["en"], "")
    _answer(items[2], "Some answer.", "https://example.org/")
    items[3].status = BatchItem.Status.FAILED
    items[3].save(update_fields=["status"])
    return batch


@pytest.mark.django_db
def test_grade_items_saves_every_grade_with_one_update(graded_batch):
    items = list(graded_batch.items.select_related("chat", "interaction").order_by("position"))

    with CaptureQueriesContext(connection) as queries:
        assert grade_items(items=items) == 4
    writes = [q for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("UPDATE")]
    assert len(writes) == 1  # one bulk_update
    assert len(queries.captured_queries) <= 4  # + the judge flag lookup (+ savepoint on some DBs)

    first, second, third, fourth = graded_batch.items.order_by("position")
    assert (first.citation_match, first.answer_similarity, first.answer_found) == (True, 1.0, True)
    assert (second.citation_match, second.answer_found) == (None, False)
    assert 0.0 <= second.answer_similarity < 0.3
    assert (third.citation_match, third.answer_similarity, third.answer_found) == (None, None, True)
    assert (fourth.citation_match, fourth.answer_similarity, fourth.answer_found) == (
        None,
        None,
        None,
    )
    assert all(item.graded_at for item in (first, second, third, fourth))
    assert first.judge_verdict == ""  # the judge is off by default


@pytest.mark.django_db
def test_summary_counts_each_rate_over_its_rows(graded_batch):
    regrade_batch(batch=graded_batch)  # failed rows are not graded by regrade
    summary = grade_summary(graded_batch)
    assert (summary.citation_checked, summary.citation_matched) == (1, 1)
    assert summary.similarity_count == 2
    assert 0.5 < summary.similarity_mean < 0.65
    assert (summary.found_checked, summary.found) == (3, 2)
    assert summary.answer_found_rate == round(2 / 3, 4)
    assert summary.judged == 0 and summary.judge_pass_rate is None
    # Verdicts: citation pass, similarity fail (not found), nothing to grade; failed: none.
    assert (summary.verdict_passed, summary.verdict_graded, summary.verdict_ungraded) == (1, 2, 1)
    assert summary.pass_rate == 0.5


@pytest.mark.django_db
def test_regrade_uses_new_expectations_without_answering_again(graded_batch):
    regrade_batch(batch=graded_batch)
    item = graded_batch.items.get(position=2)
    assert item.citation_match is None
    BatchItem.objects.filter(pk=item.pk).update(expected_citation_url="https://example.org")
    interactions = Interaction.objects.count()

    assert regrade_batch(batch=graded_batch) == 3

    item.refresh_from_db()
    assert item.citation_match is True
    assert Interaction.objects.count() == interactions


@pytest.mark.django_db(transaction=True)
def test_engine_grades_rows_after_storing_them(fake_ai, make_batch):
    rows = [
        ParsedRow(question=f"Question {i}?", expected_answer=f"Fake answer to: Question {i}?")
        for i in range(3)
    ]
    batch = make_batch(rows=rows)

    engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=2)

    items = list(batch.items.order_by("position"))
    assert all(item.graded_at is not None for item in items)
    assert all(item.answer_found for item in items)
    assert all(0.7 < item.answer_similarity < 1.0 for item in items)
    assert all((item.verdict, item.verdict_reason) == ("pass", "similarity") for item in items)
    assert grading.grade_finished_items(batch_id=batch.pk) == 0  # nothing graded twice


# --- The AI judge ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_judge_grades_through_the_batch_provider(fake_ai, make_batch):
    rows = [
        ParsedRow(question="Question one?", expected_answer="Question answer"),
        ParsedRow(question="Question two?", expected_answer="Passport renewal online"),
        ParsedRow(question="Question three?", expected_answer="[malformed] whatever"),
    ]
    batch = make_batch(rows=rows, judge_enabled=True)

    engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=1)

    one, two, three = batch.items.order_by("position")
    assert one.judge_verdict == JudgeVerdict.PASS
    assert "Found: question; answer" in one.judge_notes
    assert two.judge_verdict == JudgeVerdict.FAIL
    assert "Missing: passport; renewal; online" in two.judge_notes
    assert three.judge_verdict == JudgeVerdict.ERROR
    assert "not one JSON object" in three.judge_notes
    judge_calls = [r for r in fake_ai.requests if "<expected>" in str(r.body)]
    assert len(judge_calls) == 3
    assert all(r.body["model"] == "local-model" for r in judge_calls)
    summary = grade_summary(batch)
    assert (summary.judged, summary.judge_passed, summary.judge_pass_rate) == (2, 1, 0.5)


@pytest.mark.django_db(transaction=True)
def test_judge_follows_the_retry_policy(fake_ai, make_batch, settings):
    settings.PROVIDER_MAX_ATTEMPTS = 3
    batch = make_batch(
        rows=[ParsedRow(question="Question one?", expected_answer="Question")], judge_enabled=True
    )
    engine.process_for_duration(batch_id=batch.pk, seconds=30, concurrency=1)
    fake_ai.reset()
    fake_ai.fail_next(2, "503")

    regrade_batch(batch=batch)

    assert batch.items.get().judge_verdict == JudgeVerdict.PASS
    assert len(fake_ai.requests) == 3  # two 503s, then the verdict


@pytest.mark.django_db
def test_extractive_batches_get_no_judge_verdict(graded_batch):
    graded_batch.judge_enabled = True
    graded_batch.save(update_fields=["judge_enabled"])
    regrade_batch(batch=graded_batch)
    first = graded_batch.items.get(position=0)
    assert first.judge_verdict == JudgeVerdict.ERROR
    assert "cannot judge" in first.judge_notes


@pytest.mark.django_db(transaction=True)
def test_run_batch_prints_the_grades(tmp_path, owner, settings):
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "search-index.sqlite3")
    path = tmp_path / "golden.csv"
    path.write_text(
        "question,expected answer,expected citation\n"
        "How do I cancel a batch that is running?,Press Cancel.,https://nowhere.example/\n"
        "Which file formats can I upload?,CSV and XLSX.,\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    call_command(
        "run_batch",
        str(path),
        "--provider=extractive",
        "--search=local",
        "--user=owner",
        f"--out={tmp_path / 'results.csv'}",
        stdout=out,
    )
    assert (
        "Grades: pass rate " in out.getvalue()
        and "/2), citation match 0% (0/1), mean similarity" in out.getvalue()
        and "(2 rows), answers found 100% (2/2)." in out.getvalue()
    )
    rows = list(csv.DictReader(io.StringIO((tmp_path / "results.csv").read_text("utf-8-sig"))))
    assert [row["citation_match"] for row in rows] == ["false", ""]
    assert [row["answer_found"] for row in rows] == ["true", "true"]


# --- Verdicts -------------------------------------------------------------------------------

# (expected outcome, answer type, citation match, judge, similarity) -> (verdict, reason)
VERDICT_TABLE = [
    # 1. expected outcome
    ("not-gc", "not-gc", None, "", None, ("pass", "outcome")),
    ("not-gc", "not-found", None, "", None, ("pass", "outcome")),
    ("not-gc", "normal", None, "pass", 1.0, ("fail", "outcome")),
    ("pt-muni", "pt-muni", False, "", None, ("pass", "outcome")),
    ("pt-muni", "not-gc", None, "", None, ("fail", "outcome")),
    ("not-found", "not-found", None, "", None, ("pass", "outcome")),
    ("clarifying-question", "normal", None, "", None, ("fail", "outcome")),
    ("blocked", "blocked", None, "", None, ("pass", "outcome")),
    ("blocked", "normal", True, "pass", 1.0, ("fail", "outcome")),
    ("not-blocked", "blocked", None, "", None, ("fail", "outcome")),
    ("not-blocked", "normal", None, "", None, ("pass", "outcome")),
    ("not-blocked", "normal", False, "", None, ("fail", "citation")),
    ("normal", "not-found", True, "", None, ("fail", "outcome")),
    # 2. expected citation
    ("", "normal", True, "fail", 0.0, ("pass", "citation")),
    ("", "normal", False, "pass", 1.0, ("fail", "citation")),
    ("normal", "normal", True, "", None, ("pass", "citation")),
    # 3. the AI judge (no verdict goes on)
    ("", "normal", None, "pass", 0.0, ("pass", "judge")),
    ("", "normal", None, "fail", 1.0, ("fail", "judge")),
    ("", "normal", None, "error", 0.9, ("pass", "similarity")),
    # 4. similarity against the threshold (0.3 here)
    ("", "normal", None, "", 0.3, ("pass", "similarity")),
    ("", "normal", None, "", 0.29, ("fail", "similarity")),
    ("", "blocked", None, "", 0.0, ("fail", "similarity")),
    # 5. nothing expected
    ("", "normal", None, "", None, ("ungraded", "nothing")),
    ("", "blocked", None, "error", None, ("ungraded", "nothing")),
]


@pytest.mark.parametrize(
    ("outcome", "answer_type", "citation", "judge", "similarity", "decided"), VERDICT_TABLE
)
def test_verdict_table(outcome, answer_type, citation, judge, similarity, decided):
    assert (
        decide_verdict(
            expected_outcome=outcome,
            answer_type=answer_type,
            citation_match=citation,
            judge_verdict=judge,
            similarity=similarity,
            threshold=0.3,
        )
        == decided
    )


def test_sentence_tags_are_stripped_before_similarity():
    expected = "<s-1>Renew your passport online.</s-1> <s-2>It takes ten days.</s-2>"

    cleaned = " ".join(clean_expected(expected).split())
    assert cleaned == "Renew your passport online. It takes ten days."
    assert answer_similarity("Renew your passport online. It takes ten days.", expected) == 1.0
    assert answer_similarity("A bold answer", "A <b>bold</b> answer") == 1.0


@pytest.mark.django_db
def test_blocked_row_never_counts_as_an_answer_and_passes_an_expected_block(make_batch, settings):
    settings.GRADE_SIMILARITY_PASS = 0.5
    rows = [
        ParsedRow(question="My SIN?", expected_outcome="blocked"),
        ParsedRow(question="Fees?", expected_outcome="not-blocked"),
        ParsedRow(question="Who won?", expected_outcome="not-gc"),
        ParsedRow(question="Close?", expected_answer="The fee is 120 dollars."),
    ]
    batch = make_batch(rows=rows, ai_provider="extractive", model="extractive")
    items = list(batch.items.select_related("chat").order_by("position"))
    for item, (text, kind) in zip(
        items,
        [
            ("This question was not answered.", "blocked"),
            ("This question was not answered.", "blocked"),
            ("Who won? The game.", "normal"),
            ("The fee is 120 dollars, paid online.", "normal"),
        ],
        strict=True,
    ):
        _answer(item, text)
        Interaction.objects.filter(pk=item.interaction_id).update(answer_type=kind)

    regrade_batch(batch=batch)

    graded = list(batch.items.order_by("position"))
    assert [(i.verdict, i.verdict_reason) for i in graded] == [
        ("pass", "outcome"),
        ("fail", "outcome"),
        ("fail", "outcome"),
        ("pass", "similarity"),
    ]
    assert [i.answer_found for i in graded] == [False, False, True, True]


@pytest.mark.django_db
def test_summary_outcome_accuracy_guard_precision_recall_and_judge_counts(make_batch):
    rows = [
        ParsedRow(question="SIN?", expected_outcome="blocked"),  # blocked: true block
        ParsedRow(question="Phone?", expected_outcome="blocked"),  # answered: missed
        ParsedRow(question="Fees?", expected_outcome="not-blocked"),  # blocked: false block
        ParsedRow(question="Hours?", expected_outcome="not-blocked"),  # answered: fine
        ParsedRow(question="Game?", expected_outcome="not-gc"),  # not-found: met
    ]
    batch = make_batch(rows=rows, ai_provider="extractive", model="extractive")
    items = list(batch.items.select_related("chat").order_by("position"))
    for item, kind in zip(
        items, ["blocked", "normal", "blocked", "normal", "not-found"], strict=True
    ):
        _answer(item, "text")
        Interaction.objects.filter(pk=item.interaction_id).update(answer_type=kind)
    regrade_batch(batch=batch)
    BatchItem.objects.filter(pk=items[3].pk).update(judge_verdict=JudgeVerdict.ERROR)

    summary = grade_summary(batch)

    assert (summary.outcome_met, summary.outcome_checked) == (3, 5)
    assert (summary.guard_true_blocks, summary.guard_blocked) == (1, 2)
    assert summary.guard_precision == 0.5
    assert (summary.guard_expected_blocks, summary.guard_recall) == (2, 0.5)
    assert summary.judge_no_verdict == 1
