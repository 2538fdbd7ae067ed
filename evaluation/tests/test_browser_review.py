"""Review mode in a real browser (Chromium via Playwright, live server), with the keyboard:
1–4 give the verdict (saved with htmx), j / k and the arrows move between rows, keys typed
in the notes stay in the notes; in English at desktop width, in French at 390 px, and
the list view's current card moves with j / k."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model

from batches.models import BatchItem
from batches.tests import test_browser as browser_tests
from chats.models import Interaction
from evaluation.tests.test_evaluation_views import graded

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser = browser_tests.browser
screenshots = browser_tests.screenshots
site = browser_tests.site
page = browser_tests.page
log_in = browser_tests.log_in
shot = browser_tests.shot
assert_fits = browser_tests.assert_fits


def _batch():
    ada = get_user_model().objects.get(username="ada")
    batch = graded(
        ada,
        ["Press Cancel on the batch page.", "CSV only.", "Ten thousand rows."],
        expected=["Press Cancel.", "CSV and XLSX files.", "10000 rows by default."],
        name="Review me",
    )
    return batch


def _verdicts(batch) -> list[str]:
    return list(
        Interaction.objects.filter(batch_item__batch=batch)
        .order_by("batch_item__position")
        .values_list("review_verdict", flat=True)
    )


def _card(tab):
    return tab.locator("#review-mode .review-card.current")


def _review_with_the_keyboard(tab, site: str, batch, *, language: str) -> None:
    tab.goto(f"{site}/batches/{batch.pk}/review/")
    assert tab.locator("html").get_attribute("lang") == language
    card = _card(tab)
    assert card.get_attribute("data-row") == "1"
    tab.keyboard.press("2")
    tab.wait_for_selector('#review-mode .review-card[data-row="1"][data-review="partly_correct"]')
    tab.keyboard.press("j")
    tab.wait_for_selector('#review-mode .review-card[data-row="2"]')
    tab.keyboard.press("3")
    tab.wait_for_selector('#review-mode .review-card[data-row="2"][data-review="incorrect"]')
    # Keys typed in the notes are notes, not shortcuts.
    notes = _card(tab).locator("textarea[name=notes]")
    notes.click()
    notes.type("Says 1 format; j k.")
    _card(tab).locator("button[name=save_notes]").click()
    tab.wait_for_function(
        """() => document.querySelector('#review-mode .review-card textarea').value
                 === 'Says 1 format; j k.'
              && document.querySelector('#review-mode .review-status').textContent.trim() !== ''"""
    )
    tab.locator("h1").click()  # leave the notes box
    tab.keyboard.press("ArrowRight")
    tab.wait_for_selector('#review-mode .review-card[data-row="3"]')
    tab.keyboard.press("1")
    tab.wait_for_selector('#review-mode .review-card[data-row="3"][data-review="correct"]')
    tab.keyboard.press("k")
    tab.wait_for_selector('#review-mode .review-card[data-row="2"][data-review="incorrect"]')
    tab.keyboard.press("ArrowLeft")
    tab.wait_for_selector('#review-mode .review-card[data-row="1"][data-review="partly_correct"]')
    assert _verdicts(batch) == ["partly_correct", "incorrect", "correct"]
    turn = Interaction.objects.get(batch_item__batch=batch, batch_item__position=1)
    assert turn.review_notes == "Says 1 format; j k."


def test_review_mode_with_the_keyboard_in_english(page, site):
    batch = _batch()
    log_in(page, site)
    _review_with_the_keyboard(page, site, batch, language="en")
    assert page.locator("#review-mode .review-verdict").first.inner_text().endswith("Correct")
    shot(page, "review-mode")
    # The batch page shows the reviews and the agreement.
    page.goto(f"{site}/batches/{batch.pk}/")
    assert "Reviewed: 3 of 3 answered rows." in page.locator("#batch-review").inner_text()
    assert page.locator('#batch-rows-section [data-review="incorrect"]').count() == 1


def test_review_mode_with_the_keyboard_in_french_at_390px(browser, site, screenshots):
    batch = _batch()
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="fr-CA")
    context.set_default_timeout(browser_tests.TIMEOUT_MS)
    context.screenshots = screenshots
    tab = context.new_page()
    try:
        log_in(tab, site)
        tab.select_option("#language-select", "fr")
        tab.click("header form[action='/i18n/setlang/'] button")
        # The URL is /batches/ before and after: wait for the French page itself, or the
        # language switch's redirect could land after the next navigation.
        tab.wait_for_selector("html[lang=fr]", state="attached")
        _review_with_the_keyboard(tab, site, batch, language="fr")
        buttons = tab.locator("#review-mode .review-verdict").all_inner_texts()
        assert any("Partiellement correct" in text for text in buttons)
        assert "Votre verdict" in tab.locator("#review-mode").inner_text()
        assert_fits(tab, 390)
        shot(tab, "review-mode-fr-390")

        # The list: j moves the current card, 4 gives it "cannot tell".
        tab.goto(f"{site}/batches/{batch.pk}/review/?view=list")
        assert_fits(tab, 390)
        assert _card(tab).get_attribute("data-row") == "1"
        tab.keyboard.press("j")
        assert _card(tab).get_attribute("data-row") == "2"
        tab.keyboard.press("4")
        tab.wait_for_selector('#review-mode .review-card[data-row="2"][data-review="cannot_tell"]')
        assert _card(tab).get_attribute("data-row") == "2"
        assert _verdicts(batch)[1] == "cannot_tell"
        for path in (f"/batches/{batch.pk}/", f"/batches/{batch.pk}/review/?view=list"):
            tab.goto(f"{site}{path}")
            assert_fits(tab, 390)
        assert BatchItem.objects.filter(batch=batch).count() == 3
    finally:
        context.close()
