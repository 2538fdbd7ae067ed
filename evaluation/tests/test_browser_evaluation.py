"""Evaluation in a real browser (Chromium via Playwright, live server): upload with the
column chooser, grades and the expected-vs-generated diff on the batch page, "Run again
with…", and the compare page with its side-by-side word diff, in English and in French."""

from __future__ import annotations

import os

import pytest

from batches.models import Batch
from batches.services import run_again
from batches.tests import test_browser as browser_tests
from evaluation.tests.test_evaluation_views import answer_items, graded

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The browser, page and live-site fixtures of the main browser tests.
browser = browser_tests.browser
screenshots = browser_tests.screenshots
site = browser_tests.site
page = browser_tests.page
log_in = browser_tests.log_in
shot = browser_tests.shot

# Column names nobody would guess: the user picks the question column in the chooser.
QUESTIONS = (
    "Ask,Golden answer,Team\n"
    "How do I cancel a batch that is running?,Press Cancel on the batch page.,Support\n"
    "Which file formats can I upload?,CSV and XLSX files.,Support\n"
    "What is the maximum number of rows in a batch?,10000 rows by default.,Operations\n"
)


def wait_completed(tab, batch_id: int) -> None:
    """On the batch page: the progress section reaches Completed (the page drives it)."""
    tab.wait_for_function(
        """() => document.querySelector("#batch-progress .status-completed")""",
        timeout=60_000,
    )


def test_column_chooser_grades_run_again_and_compare(page, site):
    log_in(page, site)

    # Upload: "Choose columns…" shows the first rows; pick the question column.
    page.fill("#id_name", "Evaluation A")
    page.set_input_files(
        "#id_file",
        files=[{"name": "golden.csv", "mimeType": "text/csv", "buffer": QUESTIONS.encode()}],
    )
    page.select_option("#id_ai_model", "extractive::extractive")
    page.select_option("#id_search_provider", "local")
    page.click("#batch-upload button[name=action][value=columns]")
    page.locator("#columns-preview").wait_for()
    assert (
        "How do I cancel a batch that is running?" in page.locator("#columns-preview").inner_text()
    )
    # Found by its alias: the expected answer column is preselected.
    # Options are column positions, labelled with the header.
    chosen = page.locator("#id_expected_answer option:checked")
    assert chosen.inner_text() == "Golden answer"
    page.select_option("#id_question", label="Ask")
    shot(page, "column-chooser")
    page.click("#batch-upload button[type=submit]")
    row = page.locator("#batch-rows tr", has_text="Evaluation A")
    row.wait_for()
    first_id = int(row.get_attribute("id").removeprefix("batch-"))

    # Start it from its page and let the page drive it to the end.
    page.goto(f"{site}/batches/{first_id}/")
    page.locator("#batch-progress form[action$='/start/'] button").click()
    wait_completed(page, first_id)
    # The grades appear without a reload (swapped in with the final progress).
    evaluation = page.locator("#batch-evaluation")
    evaluation.locator(".grade-summary").wait_for()
    assert "Gave an answer: 100 % (3/3)" in evaluation.inner_text()
    page.reload()
    assert "Mean similarity:" in evaluation.inner_text()
    # Expected vs generated, side by side with the words that differ marked.
    details = page.locator("#row-0 details.expected")
    details.locator("summary").click()
    assert details.locator(".diff-pair del").count() >= 1
    assert details.locator(".diff-pair ins").count() >= 1
    shot(page, "batch-evaluation")

    # Run again with no search: the offline answerer finds nothing.
    page.click("#batch-evaluation a[href$='/run-again/']")
    page.wait_for_url(f"{site}/batches/{first_id}/run-again/")
    page.fill("#id_name", "Evaluation B")
    page.select_option("#id_search_provider", "none")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{site}/batches/*/")
    second_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    assert Batch.objects.get(pk=second_id).run_from_id == first_id
    page.locator("#batch-progress form[action$='/start/'] button").click()
    wait_completed(page, second_id)

    # Compare with the batch it was run from (preselected).
    page.reload()
    assert page.locator("#compare-other").input_value() == str(first_id)
    page.click("#batch-evaluation form[action$='/compare/'] button")
    page.wait_for_url(f"{site}/batches/{second_id}/compare/{first_id}/")
    # Whatever the order of the ids, the batch run from is the baseline.
    assert f"#{first_id} " in page.locator("#compare-baseline").inner_text()
    assert f"#{second_id} " in page.locator("#compare-new").inner_text()
    assert page.locator("#compare-rates tr[data-rate=pass_rate]").count() == 1
    assert page.locator("#compare-rows tr[data-change=improved]").count() == 0
    first_row = page.locator("#compare-row-1")
    assert first_row.locator(".side-a").inner_text().strip().startswith("Baseline")
    assert first_row.locator(".side-a del").count() >= 1
    assert first_row.locator(".side-b ins").count() >= 1
    shot(page, "compare")
    # The filter keeps only one class.
    page.click("#compare-summary a[data-change=same]")
    page.wait_for_url("**?change=same")
    assert page.locator("#compare-rows tr[data-change]").count() == 0


def test_compare_page_in_french(page, site, django_user_model):
    ada = django_user_model.objects.get(username="ada")
    a = graded(
        ada,
        ["Remplissez le formulaire en ligne.", "Le délai est de dix jours.", "Même réponse."],
        expected=["Remplissez le formulaire papier.", "", ""],
        citations=["https://exemple.ca/a", "https://example.org/a", ""],
        name="Lot A",
        page_language="fr",
    )
    b = run_again(
        batch=a,
        uploader=ada,
        ai_provider="extractive",
        search_provider="none",
        page_language="fr",
        apply_overrides=False,
    )
    answer_items(
        b,
        ["Remplissez le formulaire papier.", "Le délai est de vingt jours.", "Même réponse."],
        ["https://exemple.ca/a", "https://exemple.ca/c", "https://example.org/a"],
    )

    log_in(page, site)
    page.select_option("#language-select", "fr")
    page.click("header form[action='/i18n/setlang/'] button")
    page.wait_for_url(f"{site}/batches/")
    page.goto(f"{site}/batches/{a.pk}/compare/{b.pk}/")
    heading = page.locator("h1").inner_text().replace("\u00a0", " ")
    assert heading == "Comparaison : nouvelle exécution / référence"
    summary = page.locator("#compare-summary").inner_text()
    assert "Améliorée (1)" in summary
    assert "En recul (1)" in summary
    assert "Identique (1)" in summary
    second = page.locator("#compare-row-2")
    assert second.locator(".change").inner_text() == "En recul"
    assert second.locator(".side-a del").inner_text() == "dix"
    assert second.locator(".side-b ins").inner_text() == "vingt"
    assert "Alignées".lower() in page.locator("main").inner_text().lower()
    shot(page, "compare-fr")

    # The batch page in French: the summary and the expected-vs-generated diff.
    page.goto(f"{site}/batches/{a.pk}/")
    evaluation = page.locator("#batch-evaluation").inner_text()
    assert "Évaluation" in evaluation
    assert "Citation conforme\u00a0: 50 % (1/2)" in evaluation
    details = page.locator("#row-0 details.expected")
    details.locator("summary", has_text="Attendue et générée").click()
    assert details.locator("del").inner_text() == "papier"
    assert details.locator("ins").inner_text() == "en ligne"
    shot(page, "batch-evaluation-fr")
