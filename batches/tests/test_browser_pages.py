"""Issue 27 items 4 and 5, issue 22's compare page: every page at 390 px in English and
French (document width at most the viewport), the column chooser with a long URL column in
its preview, the compare page's content in both languages, and no leftover English (nor
English number format, nor a colon without its no-break space) on the French pages."""

from __future__ import annotations

import os
import re

import pytest

from batches.tests import test_browser as browser_tests

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser = browser_tests.browser
screenshots = browser_tests.screenshots
site = browser_tests.site
log_in = browser_tests.log_in
assert_fits = browser_tests.assert_fits
upload_and_run = browser_tests.upload_and_run
wait_for_bar_full = browser_tests.wait_for_bar_full
TIMEOUT_MS = browser_tests.TIMEOUT_MS

LONG_URL = "https://www.canada.ca/en/services/" + "very-long-path-segment/" * 12 + "page.html"
CHOOSER_FILE = "Ask,Page\n" + "".join(
    f"Question number {n} about passports?,{LONG_URL}\n" for n in range(3)
)
# UI words that must not be left in English on a French page (whole words, visible text;
# user content on these pages is French: the French sample and its answers).
ENGLISH = [
    "Status",
    "Answer",
    "Answers",
    "Upload",
    "Start",
    "Delete",
    "Download",
    "Cancel",
    "Rows",
    "Processing",
    "Completed",
    "Run again",
    "Found nothing",
    "Answered",
    "Failed",
    "Blocked",
    "Redacted",
    "Previous",
    "Next",
    "Language",
    "Log out",
    "Latency",
    "Grades",
    "Expected",
    "Baseline",
    "Improved",
    "Regressed",
    "Compare",
    "Similarity",
    "Batches",
    "Question:",
    "Choose",
    "Show",
    "Retry",
    "Done",
    "Pending",
]


# The French sample's own text (its documents become the answers): content, not the UI.
CONTENT = "\n".join(
    path.read_text(encoding="utf-8")
    for path in [
        browser_tests.SAMPLE_FR,
        *(browser_tests.ROOT / "sample" / "docs" / "fr").glob("*"),
    ]
    if path.is_file()
)


def visible_text(page) -> str:
    """The page's text, with the labels only screen readers get ("Question:")."""
    hidden = page.locator(".visually-hidden").all_text_contents()
    return page.locator("body").inner_text() + "\n" + "\n".join(hidden)


def english_left(text: str) -> list[str]:
    return [word for word in ENGLISH if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text)]


def french_format_problems(text: str) -> list[str]:
    problems = re.findall(r"(?<![\w./:-])\d+\.\d+(?![\w./-])", text)  # 0.14, not 0,14
    problems += re.findall(r"\w{2,}[ ]?:(?!//|\d)", text)  # "Bloquée:" or a plain space
    return [problem for problem in problems if problem not in CONTENT]


def to_french(page, site: str) -> None:
    page.goto(f"{site}/batches/")
    page.select_option("#language-select", "fr")
    page.click("header form[action='/i18n/setlang/'] button")
    page.wait_for_url(f"{site}/batches/")


def open_chooser(page) -> None:
    page.goto(page.url.split("/batches/")[0] + "/batches/")
    page.set_input_files(
        "#id_file",
        files=[{"name": "long.csv", "mimeType": "text/csv", "buffer": CHOOSER_FILE.encode()}],
    )
    page.click("#batch-upload button[name=action][value=columns]")
    page.locator("#columns-preview").wait_for()


def test_every_page_at_390px_in_english_and_french_with_no_english_left_in_french(
    browser, site, screenshots
):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    context.screenshots = screenshots
    page = context.new_page()
    try:
        log_in(page, site)
        first = upload_and_run(page, browser_tests.SAMPLE_FR, name="Lot un", language="fr")
        page.goto(f"{site}/batches/{first}/")
        page.click("#batch-evaluation button:has-text('Run again and start')")
        page.wait_for_url(re.compile(r".*/batches/\d+/$"))
        second = int(page.url.rstrip("/").rsplit("/", 1)[1])
        wait_for_bar_full(page, "#batch-progress")
        chat_href = page.locator("#batch-rows-section a[href^='/chats/']").first.get_attribute(
            "href"
        )
        pages = [
            "/batches/",
            f"/batches/{first}/",
            f"/batches/{second}/",
            f"/batches/{second}/run-again/",
            f"/batches/{second}/compare/{first}/",
            f"/batches/{first}/delete/",
            chat_href,
        ]
        found: dict[str, list[str]] = {}
        for language in ("en", "fr"):
            if language == "fr":
                to_french(page, site)
            for path in pages:
                page.goto(f"{site}{path}")
                assert page.locator("html").get_attribute("lang") == language
                assert_fits(page, 390)
                if language == "fr":
                    text = visible_text(page)
                    problems = english_left(text) + french_format_problems(text)
                    if problems:
                        found[path] = problems
            # The compare page says which run is the baseline, in the page's language.
            page.goto(f"{site}/batches/{second}/compare/{first}/")
            compare = visible_text(page)
            assert ("baseline" if language == "en" else "référence") in compare.lower()
            # The column chooser, with a long URL in its preview.
            open_chooser(page)
            assert_fits(page, 390)
            if language == "fr":
                text = visible_text(page)
                problems = english_left(text) + french_format_problems(text)
                if problems:
                    found["column chooser"] = problems
        assert found == {}
        # Delete from the batch page (htmx, its confirmation accepted): the address bar
        # shows the list, not the deleted batch's address.
        page.goto(f"{site}/batches/{second}/")
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator(f"#batch-progress a[href='/batches/{second}/delete/']").click()
        page.wait_for_url(f"{site}/batches/")
        assert page.locator(f"#batch-{second}").count() == 0
    finally:
        context.close()
