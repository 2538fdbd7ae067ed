"""The question set pages in a real browser (Chromium via Playwright, live server): the
grid with a run of repeats, the trend chart and a question's history, at 390 px in
English and in French: nothing wider than the screen, the chart drawn and scaled to the
phone, and no English left on the French pages (issue 23 items 4 and 5)."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model

from batches.tests import test_browser as browser_tests
from batches.tests.test_browser_pages import english_left, french_format_problems, visible_text
from evaluation.tests.grid_helpers import add_run, make_set

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser = browser_tests.browser
screenshots = browser_tests.screenshots
site = browser_tests.site
log_in = browser_tests.log_in
assert_fits = browser_tests.assert_fits
shot = browser_tests.shot
TIMEOUT_MS = browser_tests.TIMEOUT_MS

# French content, so that only the interface's words can be left in English.
QUESTIONS = [
    "Comment renouveler mon passeport canadien quand il a expiré depuis plus d’un an ?",
    "Quels documents faut-il pour une demande de visa de visiteur ?",
    "Combien coûte un passeport pour un enfant de moins de seize ans ?",
]
EXPECTED = ["Remplir le formulaire de renouvellement.", "Une pièce d’identité.", "57 dollars."]


def build(owner):
    question_set = make_set(owner, texts=QUESTIONS, expected=EXPECTED, name="Passeports")
    add_run(
        question_set,
        ["pass", "pass", "fail"],
        name="Semaine un",
        answers=["Il faut remplir le formulaire.", "Une pièce d’identité valide.", "Cela dépend."],
        citation=True,
        outcome=True,
    )
    add_run(
        question_set,
        [["pass", "pass", "pass"], ["pass", "fail", "fail"], ["fail", "fail", "fail"]],
        name="Semaine deux",
        answers=[
            ["Il faut remplir le nouveau formulaire."] * 3,
            ["Un passeport valide.", "Rien.", "Rien du tout."],
            ["Cela dépend de l’âge."] * 3,
        ],
        citation=False,
    )
    return question_set


def test_grid_history_and_chart_at_390px_in_english_and_french(browser, site, screenshots):
    owner = get_user_model().objects.get(username="ada")
    question_set = build(owner)
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    context.screenshots = screenshots
    page = context.new_page()
    try:
        log_in(page, site)
        grid = f"/sets/{question_set.pk}/"
        history = f"/sets/{question_set.pk}/questions/2/"
        found: dict[str, list[str]] = {}
        for language in ("en", "fr"):
            if language == "fr":
                page.goto(f"{site}/sets/")
                page.select_option("#language-select", "fr")
                page.click("header form[action='/i18n/setlang/'] button")
                page.wait_for_url(f"{site}/sets/")
            for path in ("/sets/", grid, f"{grid}?filter=flaky", history):
                page.goto(f"{site}{path}")
                assert page.locator("html").get_attribute("lang") == language
                assert_fits(page, 390)
                if language == "fr":
                    text = visible_text(page)
                    problems = english_left(text) + french_format_problems(text)
                    if problems:
                        found[path] = problems
            # The grid: the newest run's cell of question 2 reads 1/3 with its three answers
            # linked, and the chart is drawn within the phone's width.
            page.goto(f"{site}{grid}")
            cell = page.locator("#question-2 td.grid-cell").first
            assert "1/3" in cell.inner_text()
            assert cell.locator("a[href^='/chats/']").count() == 3
            chart = page.locator("#trend-chart svg.trend-svg")
            box = chart.bounding_box()
            assert box is not None and 300 <= box["width"] <= 390 and box["height"] > 100
            assert page.locator("#trend-chart polyline.trend-line").count() >= 2
            legend = page.locator("#trend-chart .trend-legend").inner_text()
            assert ("Pass rate" if language == "en" else "Taux de réussite") in legend
            shot(page, f"set-grid-390-{language}")
            # The flaky filter keeps question 2 only.
            page.goto(f"{site}{grid}?filter=flaky")
            assert page.locator("tbody tr[id^='question-']").count() == 1
            # The history: both runs, oldest first, the second's answer marked against the first's.
            page.goto(f"{site}{history}")
            runs = page.locator("#question-history article.history-run")
            assert runs.count() == 2
            assert "passeport" in runs.nth(1).locator("ins").first.inner_text()
            assert runs.nth(1).locator("del").count() >= 1
            shot(page, f"question-history-390-{language}")
        assert found == {}
    finally:
        context.close()
