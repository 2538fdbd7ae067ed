"""Repeats in a real browser (Chromium via Playwright, live server) at 390 px: the upload
form's "Answers per question", and the start step's projected provider calls, in English
and in French; then the run shows each row's repeat and its question's result."""

from __future__ import annotations

import os

import pytest

from batches.models import Batch
from batches.tests import test_browser as browser_tests

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser = browser_tests.browser
screenshots = browser_tests.screenshots
site = browser_tests.site
log_in = browser_tests.log_in
shot = browser_tests.shot
assert_fits = browser_tests.assert_fits

QUESTIONS = (
    "question,expected answer\n"
    "How do I cancel a batch that is running?,Press Cancel on the batch page.\n"
    "Which file formats can I upload?,CSV and XLSX files.\n"
)


def test_start_step_shows_projected_calls_with_repeats_in_english_and_french_at_390px(
    browser, site, screenshots
):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    context.set_default_timeout(browser_tests.TIMEOUT_MS)
    context.screenshots = screenshots
    page = context.new_page()
    try:
        log_in(page, site)
        page.fill("#id_name", "Repeated")
        page.set_input_files(
            "#id_file",
            files=[{"name": "q.csv", "mimeType": "text/csv", "buffer": QUESTIONS.encode()}],
        )
        page.select_option("#id_ai_model", "extractive::extractive")
        page.select_option("#id_search_provider", "local")
        page.fill("#id_repeats", "3")
        page.check("#id_judge_enabled")
        assert_fits(page, 390)
        page.click("#batch-upload button[type=submit]:not([name])")
        row = page.locator("#batch-rows tr", has_text="Repeated")
        row.wait_for()
        batch = Batch.objects.get(name="Repeated")
        assert (batch.repeats, batch.total_items) == (3, 6)

        page.goto(f"{site}/batches/{batch.pk}/")
        projected = page.locator("#projected-calls")
        text = projected.inner_text()
        # 2 questions × 3 answers, plus the judge on the 6 rows with an expected answer.
        assert "about 12 provider calls" in text
        assert "2 questions × 3 answers each = 6" in text
        assert "AI judge: 6" in text
        assert_fits(page, 390)
        projected.scroll_into_view_if_needed()
        shot(page, "projected-calls-phone", full_page=False)

        page.select_option("#language-select", "fr")
        page.click("header form[action='/i18n/setlang/'] button")
        page.wait_for_load_state()
        page.goto(f"{site}/batches/{batch.pk}/")
        assert page.locator("html").get_attribute("lang") == "fr"
        text = page.locator("#projected-calls").inner_text()
        assert "environ 12 appels au fournisseur" in text
        assert "2 questions × 3 réponses chacune = 6" in text
        assert "juge IA : 6" in text
        assert_fits(page, 390)
        shot(page, "projected-calls-phone-fr", full_page=False)

        # Start: the projection goes, the rows say which repeat they are.
        page.locator("#batch-progress form[action$='/start/'] button").click()
        page.wait_for_function(
            """() => document.querySelector("#batch-progress .status-completed")""",
            timeout=60_000,
        )
        page.reload()
        assert page.locator("#projected-calls").count() == 0
        cells = page.locator("#batch-rows-section .repeat-of")
        assert cells.count() == 6
        assert "question 2, répétition 3/3" in cells.nth(5).inner_text()
        assert page.locator("#batch-rows-section .question-result").count() == 6
        assert_fits(page, 390)
    finally:
        context.close()
