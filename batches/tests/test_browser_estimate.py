"""Issue 25 in a real browser (Chromium via Playwright, live server): the start step
shows the estimate (calls, tokens, cost in real time and economy mode, duration) and
takes a budget, at 390 px, in English and French."""

from __future__ import annotations

import os

import pytest
from django.contrib.auth import get_user_model

from batches.services import create_batch_run
from batches.tests import test_browser as browser_tests
from batches.uploads import parse_upload
from chats.tests.fake_servers import FakeAIServer

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser = browser_tests.browser
screenshots = browser_tests.screenshots
site = browser_tests.site
log_in = browser_tests.log_in


@pytest.fixture
def fake_openai(settings):
    with FakeAIServer(tokenizer="o200k_base") as server:
        server.configure(settings)
        yield server


def test_start_step_shows_the_estimate_and_takes_a_budget_at_390px(
    browser, site, screenshots, fake_openai
):
    parsed = parse_upload(data=browser_tests.SAMPLE_EN.read_bytes(), filename="questions.csv")
    batch = create_batch_run(
        uploader=get_user_model().objects.get(username="ada"),
        name="Estimate",
        rows=parsed.rows,
        ai_provider="openai",
        model="gpt-4o-mini",
        search_provider="local",
        input_columns=parsed.columns,
    )
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    context.set_default_timeout(browser_tests.TIMEOUT_MS)
    context.screenshots = screenshots
    page = context.new_page()
    try:
        log_in(page, site)
        page.goto(f"{site}/batches/{batch.pk}/")
        estimate = page.locator("#batch-estimate")
        text = estimate.inner_text()
        assert "Estimate before start" in text
        assert f"{batch.total_items}" in text  # the provider calls
        assert "Cost in real time" in text and "Cost in economy mode" in text
        assert "USD" in text
        browser_tests.assert_fits(page, 390)
        browser_tests.shot(page, "estimate-en-390")

        page.fill(f"#budget-{batch.pk}", "0.5")
        page.click("#batch-estimate button[type=submit]")
        page.locator("#batch-budget-line", has_text="Budget: 0.5000 USD").wait_for()
        batch.refresh_from_db()
        assert float(batch.budget) == 0.5

        page.goto(f"{site}/batches/")
        page.select_option("#language-select", "fr")
        page.click("header form[action='/i18n/setlang/'] button")
        page.wait_for_url(f"{site}/batches/")
        page.goto(f"{site}/batches/{batch.pk}/")
        text = page.locator("#batch-estimate").inner_text()
        assert "Estimation avant le début" in text
        assert "Coût en temps réel" in text and "Coût en mode économique" in text
        assert "Budget : 0,5000 USD" in text
        browser_tests.assert_fits(page, 390)
        browser_tests.shot(page, "estimate-fr-390")
    finally:
        context.close()
