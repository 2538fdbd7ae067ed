"""Issue 27 item 2 in a real browser (Chromium via Playwright, live server): an uploaded
file with personal information shows no raw personal value on any page before Start:
the column chooser's preview, the batch list, the batch page, its rows partial and the
rows' chat pages show the questions as the guard will send them, with the count."""

from __future__ import annotations

import os

import pytest

from batches.models import Batch, BatchItem
from batches.tests import test_browser as browser_tests

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser = browser_tests.browser
screenshots = browser_tests.screenshots
site = browser_tests.site
page = browser_tests.page
log_in = browser_tests.log_in

# The raw values that must appear on no page before Start.
PERSONAL = ["613-555-0199", "jane.doe@example.com", "046 454 286", "marc.tremblay@example.org"]
FILE = (
    "Ask,Page\n"
    '"My phone is 613-555-0199, can you call me about my benefits?",\n'
    '"Email jane.doe@example.com the form for a passport renewal",\n'
    '"My SIN is 046 454 286, how do I file my taxes?",\n'
    "How do I renew my passport?,https://www.canada.ca/en/x?email=marc.tremblay@example.org\n"
    "Which file formats can I upload?,\n"
)


def assert_no_personal_value(tab, where: str) -> None:
    html = tab.content()
    found = [value for value in PERSONAL if value in html]
    assert found == [], f"{where} shows {found}"


def test_uploaded_personal_information_is_shown_as_it_will_be_sent(page, site):
    log_in(page, site)
    page.fill("#id_name", "Personal details")
    page.set_input_files(
        "#id_file",
        files=[{"name": "personal.csv", "mimeType": "text/csv", "buffer": FILE.encode()}],
    )
    page.select_option("#id_ai_model", "extractive::extractive")
    page.select_option("#id_search_provider", "local")
    page.click("#batch-upload button[name=action][value=columns]")
    preview = page.locator("#columns-preview")
    preview.wait_for()
    assert "How do I renew my passport?" in preview.inner_text()
    assert "[EMAIL]" in preview.inner_text()  # the guard's placeholder
    assert_no_personal_value(page, "the column chooser")
    page.select_option("#id_question", "Ask")
    page.select_option("#id_url", "Page")
    page.click("#batch-upload button[type=submit]")
    row = page.locator("#batch-rows tr", has_text="Personal details")
    row.wait_for()
    batch_id = int(row.get_attribute("id").removeprefix("batch-"))
    assert_no_personal_value(page, "the batch list")

    batch = Batch.objects.get(pk=batch_id)
    assert batch.status == Batch.Status.UPLOADED
    # Four rows hold personal information; with the default policy (block) all four.
    assert batch.upload_guard == {"blocked": 4, "redacted": 0}

    page.goto(f"{site}/batches/{batch_id}/")
    count = page.locator("#guard-upload-count")
    assert "4 rows will be blocked, 0 redacted" in count.inner_text()
    assert page.locator("#batch-rows-section .status-blocked").count() == 4
    assert "Which file formats can I upload?" in page.locator("#batch-rows-section").inner_text()
    assert_no_personal_value(page, "the batch page")
    # Every uploaded column shown beside the question, too.
    page.goto(f"{site}/batches/{batch_id}/?cols=Page")
    assert_no_personal_value(page, "the batch page with the URL column")
    page.goto(f"{site}/batches/{batch_id}/rows/?cols=Ask&cols=Page")
    assert_no_personal_value(page, "the rows partial")

    for item in BatchItem.objects.filter(batch_id=batch_id).select_related("chat"):
        page.goto(f"{site}/chats/{item.chat.chat_id}/")
        page.locator("#unanswered").wait_for()
        assert_no_personal_value(page, f"the chat page of row {item.position + 1}")

    # French: the same pages, the count translated.
    page.goto(f"{site}/batches/")
    page.select_option("#language-select", "fr")
    page.click("header form[action='/i18n/setlang/'] button")
    page.wait_for_url(f"{site}/batches/")
    page.goto(f"{site}/batches/{batch_id}/")
    assert (
        "4 lignes seront bloquées, 0 caviardée(s)"
        in page.locator("#guard-upload-count").inner_text()
    )
    assert_no_personal_value(page, "the French batch page")
