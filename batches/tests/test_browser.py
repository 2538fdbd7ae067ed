"""The pages in a real browser: Chromium driven by Playwright against the live server.

Upload the shipped sample questions, start, watch the progress bar reach 100 %, open a
row's chat, ask a follow-up and see it stream, download the CSV; a bad file; the same in
French. Takes a screenshot of each page (see SCREENSHOTS_DIR).
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from chats.tests.factories import ChatFactory
from chats.tests.fake_servers import FakeAIServer

# Playwright's sync API runs an event loop in this thread; the ORM calls made here (to
# create the user) are still plain synchronous ones.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ROOT = Path(django_settings.BASE_DIR)
# Screenshots go to a temporary folder, so that a test run leaves the checkout clean;
# BATCHCHAT_SCREENSHOTS_DIR=docs/screenshots refreshes the README's pictures.
SCREENSHOTS_DIR = os.environ.get("BATCHCHAT_SCREENSHOTS_DIR", "")
SAMPLE_EN = ROOT / "sample" / "questions.csv"
SAMPLE_FR = ROOT / "sample" / "questions-fr.csv"
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM_PATH,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def site(live_server, settings, tmp_path, django_user_model):
    settings.LOCAL_SEARCH_INDEX = str(tmp_path / "search-index.sqlite3")
    settings.CELERY_BROKER_URL = ""  # the inline runner: the page drives processing
    django_user_model.objects.create_user(username="ada", password="pw-ada-12345")
    return live_server.url


@pytest.fixture
def page(browser, site, screenshots):
    context = browser.new_context(
        accept_downloads=True, viewport={"width": 1280, "height": 900}, locale="en-GB"
    )
    context.set_default_timeout(TIMEOUT_MS)
    context.screenshots = screenshots
    page = context.new_page()
    # The Content-Security-Policy must not block anything the pages use.
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(f"{message.text} at {message.location}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    yield page
    context.close()
    assert violations == []


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(SCREENSHOTS_DIR) if SCREENSHOTS_DIR else tmp_path_factory.mktemp("screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shot(page, name: str, *, full_page: bool = True) -> None:
    path = page.context.screenshots / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one


def log_in(page, site: str, *, screenshot: str | None = None) -> None:
    page.goto(f"{site}/batches/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", "ada")
    page.fill("#id_password", "pw-ada-12345")
    if screenshot:
        shot(page, screenshot)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{site}/batches/")


def upload_and_run(page, sample: Path, *, name: str, language: str) -> int:
    """Upload `sample` with the offline providers, start it, wait for 100 %; its id."""
    page.fill("#id_name", name)
    page.set_input_files("#id_file", str(sample))
    page.select_option("#id_ai_model", "extractive::extractive")
    page.select_option("#id_search_provider", "local")
    page.select_option("#id_page_language", language)
    page.click("#batch-upload button[type=submit]")
    row = page.locator("#batch-rows tr", has_text=name)
    row.wait_for()
    batch_id = int(row.get_attribute("id").removeprefix("batch-"))
    # Not started yet: nothing to cancel.
    assert row.locator("form[action$='/cancel/']").count() == 0
    # The inline driver processes slices from this page; the polled row shows progress. A
    # small batch can be done, and its driver gone, before a wait for the driver begins,
    # so the page records that the driver appeared.
    page.evaluate(
        """id => {
            window.sawDriver = false;
            new MutationObserver(() => {
                window.sawDriver ||= !!document.querySelector(`#driver-${id}.driver`);
            }).observe(document.body, {childList: true, subtree: true});
        }""",
        batch_id,
    )
    row.locator("form[action$='/start/'] button").click()
    wait_for_bar_full(page, f"#batch-{batch_id}")
    assert page.evaluate("window.sawDriver")
    return batch_id


def wait_for_bar_full(page, scope: str) -> None:
    """Wait until the progress bar inside `scope` shows every row finished."""
    page.wait_for_function(
        """scope => {
            const bar = document.querySelector(`${scope} .bar[role=progressbar]`);
            return bar && bar.dataset.total !== "0" && bar.dataset.finished === bar.dataset.total
                && bar.getAttribute("aria-valuenow") === "100";
        }""",
        arg=scope,
        timeout=60_000,  # generous: CI machines may be busy
    )


def ask_follow_up(page, question: str) -> int:
    """Ask in the chat page; how many times the streamed answer changed before it was stored."""
    turns_before = page.locator("#transcript article.turn").count()
    page.evaluate(
        """() => {
            window.streamUpdates = 0;
            const out = document.getElementById("streaming-answer");
            new MutationObserver(() => { if (out.textContent) window.streamUpdates++; })
                .observe(out, {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.fill("#id_question", question)
    page.click("form[data-stream] button[type=submit]")
    page.locator("#transcript article.turn").nth(turns_before).wait_for()
    return page.evaluate("window.streamUpdates")


def test_english_flow_upload_start_chat_download_and_bad_file(page, site):
    log_in(page, site, screenshot="login")
    expected_rows = list(csv.DictReader(SAMPLE_EN.open(encoding="utf-8")))

    batch_id = upload_and_run(page, SAMPLE_EN, name="Sample questions", language="en")
    row = page.locator(f"#batch-{batch_id}")
    assert "Completed" in row.inner_text()
    assert f"100% · {len(expected_rows)} done, 0 failed of {len(expected_rows)}" in row.inner_text()
    shot(page, "batches")

    # Download the CSV: one row per question, in order, with the answers.
    with page.expect_download() as download_info:
        row.locator("a[href$='/download/csv/']").click()
    data = Path(download_info.value.path()).read_text(encoding="utf-8-sig")
    exported = list(csv.DictReader(io.StringIO(data)))
    assert [r["question"] for r in exported] == [r["question"] for r in expected_rows]
    assert all(r["status"] == "done" and r["answer"] for r in exported)
    assert any(r["citation_url"] for r in exported)

    # Detail page: the per-row table, filtered by status.
    row.locator(f"a[href='/batches/{batch_id}/']").click()
    page.wait_for_url(f"{site}/batches/{batch_id}/")
    assert page.locator("tbody tr[id^=row-]").count() == len(expected_rows)
    assert page.locator(".filter-links").inner_text().count(f"({len(expected_rows)})") == 2
    shot(page, "batch-detail")

    # A row's chat: transcript with its citation; a follow-up streams in.
    page.locator("#row-1 a", has_text="Open chat").click()
    page.wait_for_url("**/chats/**")
    assert page.locator("#transcript article.turn").count() == 1
    # The offline answerer emits its words at once, so the pieces may arrive together;
    # test_follow_up_streams_piece_by_piece checks the streaming itself.
    assert ask_follow_up(page, "Which encodings can a CSV file use?") >= 1
    assert page.locator("#transcript article.turn").count() == 2
    assert page.locator("#ask-status").inner_text() == "Answer stored."
    page.locator("#transcript article.turn").nth(1).locator("details summary").click()
    shot(page, "chat")

    # Prompt overrides page.
    page.click("nav >> text=Prompt overrides")
    page.fill("#id_text", "Answer in plain words, in at most three sentences.")
    page.click("main button[type=submit]")
    assert "Your prompt override was saved." in page.locator("#messages").inner_text()
    shot(page, "prompt-overrides")

    # A bad file: the parser's message next to the file field, nothing created.
    page.goto(f"{site}/batches/")
    page.set_input_files(
        "#id_file",
        files=[{"name": "notes.csv", "mimeType": "text/csv", "buffer": b"question,body\n,There\n"}],
    )
    page.click("#batch-upload button[type=submit]")
    error = page.locator("#id_file_error")
    error.wait_for()
    assert "question" in error.inner_text().lower()
    assert page.locator("#id_file").get_attribute("aria-invalid") == "true"
    assert page.locator("#batch-rows tr[id^=batch-]").count() == 1
    shot(page, "upload-error")


def test_french_flow(page, site):
    log_in(page, site)
    page.select_option("#language-select", "fr")
    page.click("header form[action='/i18n/setlang/'] button")
    page.wait_for_url(f"{site}/batches/")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.locator("#upload-heading").inner_text() == "Nouveau lot"
    expected = list(csv.DictReader(SAMPLE_FR.open(encoding="utf-8")))

    batch_id = upload_and_run(page, SAMPLE_FR, name="Questions en français", language="fr")
    row = page.locator(f"#batch-{batch_id}")
    assert "Terminé" in row.inner_text()
    assert f"100 % · {len(expected)} faites, 0 échouées sur {len(expected)}" in row.inner_text()
    shot(page, "batches-fr")

    row.locator(f"a[href='/batches/{batch_id}/']").click()
    page.locator("#row-0 a", has_text="Ouvrir la conversation").click()
    page.wait_for_url("**/chats/**")
    assert ask_follow_up(page, "Quels formats de fichier sont acceptés ?") >= 1
    assert page.locator("#ask-status").inner_text() == "Réponse enregistrée."
    shot(page, "chat-fr")

    # A bad file, in French: the form still says which field is wrong.
    page.goto(f"{site}/batches/")
    page.set_input_files(
        "#id_file", files=[{"name": "vide.csv", "mimeType": "text/csv", "buffer": b""}]
    )
    page.click("#batch-upload button[type=submit]")
    page.locator("#id_file_error").wait_for()
    assert "Veuillez corriger ce qui suit" in page.locator("#batch-upload").inner_text()


def test_follow_up_streams_piece_by_piece(page, site, settings, django_user_model):
    # A fake OpenAI-compatible server (real SDK, real HTTP) that sends a chunk every 40 ms:
    # the page must show the answer growing before the stored turn replaces it.
    with FakeAIServer(stream_delay=0.04) as server:
        server.configure(settings)
        chat = ChatFactory(
            uploader=django_user_model.objects.get(username="ada"),
            ai_provider="compatible",
            model="local-model",
            search_provider="none",
        )
        log_in(page, site)
        page.goto(f"{site}{chat.get_absolute_url()}")
        updates = ask_follow_up(page, "Does the answer stream?")
    assert updates > 3
    turn = page.locator("#transcript article.turn").first
    assert "Fake answer (turn 1) to: Does the answer stream?" in turn.inner_text()


# --- Issue 15: the pages as a user found them -----------------------------------------------


def tab_text(page, status: str) -> str:
    return page.locator(f"#batch-rows-section a[data-status={status}]").inner_text()


def assert_fits(page, width: int) -> None:
    """Nothing sticks out sideways: no horizontal scrolling, header controls on screen."""
    overflow = page.evaluate("() => document.documentElement.scrollWidth")
    wide = page.evaluate(
        """w => [...document.querySelectorAll("body *")]
            .filter(e => e.getBoundingClientRect().right > w + 1)
            .slice(0, 5).map(e => e.tagName + ": " + e.textContent.trim().slice(0, 30))""",
        width,
    )
    assert overflow <= width, f"page is {overflow}px wide in a {width}px viewport: {wide}"
    for control in page.locator("header button, header select, header a").all():
        box = control.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


def test_live_rows_citations_and_french_pages(page, site):
    """French UI: start from the batch page; rows and tabs follow progress with no reload and
    end right; the "started" message goes; a citation opens the sample document."""
    log_in(page, site)
    page.select_option("#language-select", "fr")
    page.click("header form[action='/i18n/setlang/'] button")
    page.wait_for_url(f"{site}/batches/")
    # Bug 9: provider labels in French, and the form says what the local index holds.
    assert "Sans recherche" in page.locator("#id_search_provider").inner_text()
    assert "Documents locaux (hors ligne)" in page.locator("#id_search_provider").inner_text()
    assert "index_documents" in page.locator("#id_search_provider_helptext").inner_text()
    expected = list(csv.DictReader(SAMPLE_FR.open(encoding="utf-8")))

    page.set_input_files("#id_file", str(SAMPLE_FR))
    page.select_option("#id_ai_model", "extractive::extractive")
    page.select_option("#id_search_provider", "local")
    page.select_option("#id_page_language", "fr")
    page.click("#batch-upload button[type=submit]")
    row = page.locator("#batch-rows tr", has_text="questions-fr")  # the file's stem
    row.wait_for()
    assert "questions-fr.csv" not in row.locator("a").first.inner_text()
    batch_id = int(row.get_attribute("id").removeprefix("batch-"))
    row.locator(f"a[href='/batches/{batch_id}/']").click()
    page.wait_for_url(f"{site}/batches/{batch_id}/")
    assert f"En attente ({len(expected)})" in tab_text(page, "pending")
    # Bug 5: the offline answerer uses no prompt.
    assert "sans effet" in page.locator("dl.settings").inner_text()

    page.locator("#batch-progress form[action$='/start/'] button").click()
    wait_for_bar_full(page, "#batch-progress")
    # Bug 1: the rows and the tabs follow, without a reload, and end right.
    page.wait_for_function(
        """n => document.querySelectorAll("#batch-rows-section tbody tr[data-status=done]")
            .length === n""",
        arg=len(expected),
        timeout=30_000,
    )
    page.wait_for_function(
        """() => document.querySelector("#batch-rows-section a[data-status=pending]")
            .textContent.includes("(0)")""",
        timeout=30_000,
    )
    assert f"Fait ({len(expected)})" in tab_text(page, "done")
    assert "Actualiser" not in page.locator("main").inner_text()
    # Bug 6: the "started" message is gone once the batch is finished.
    page.wait_for_function("() => !document.getElementById('messages').textContent.trim()")
    assert "Terminé" in page.locator("#batch-progress .status").inner_text()
    assert "Durée" in page.locator("#batch-stats").inner_text()
    assert "Mots lus / écrits" in page.locator("#batch-stats").inner_text()
    # Bug 10: one unambiguous date format ("1 déc. 2026, 14:05").
    created = page.locator("dl.settings time").inner_text()
    assert re.fullmatch(r"\d{1,2} [a-zéû]+\.? \d{4}, \d{2}:\d{2}", created), created
    shot(page, "batch-detail-fr")

    # Bug 7: a citation opens the indexed document, served by the app.
    citation = page.locator("#batch-rows-section tbody a[href^='/docs/']").first
    href = citation.get_attribute("href")
    citation.click()
    page.wait_for_url(f"{site}{href}")
    assert page.locator("article.document h1").inner_text()
    assert "docs.batchchat.local" in page.locator("article.document header").inner_text()

    # Bug 4: an answer that found nothing is counted, not shown as a plain success.
    page.goto(f"{site}/batches/")
    page.set_input_files(
        "#id_file",
        files=[
            {
                "name": "hors-sujet.csv",
                "mimeType": "text/csv",
                "buffer": b"question\nQuelle est la capitale de l'Australie ?\n",
            }
        ],
    )
    page.select_option("#id_ai_model", "extractive::extractive")
    page.select_option("#id_search_provider", "local")
    page.select_option("#id_page_language", "fr")
    page.click("#batch-upload button[type=submit]")
    off_topic = page.locator("#batch-rows tr", has_text="hors-sujet")
    off_topic.wait_for()
    off_topic.locator("form[action$='/start/'] button").click()
    off_topic.locator(".not-found-count").wait_for(timeout=60_000)
    assert "1 réponse n’a rien trouvé" in off_topic.inner_text()
    assert off_topic.locator(".seg-not-found").count() == 1
    off_topic.locator("a[href^='/batches/']").first.click()
    page.locator("#batch-rows-section a[data-status=not_found]", has_text="(1)").wait_for()

    # Bug 9: an upload error in French.
    page.goto(f"{site}/batches/")
    page.set_input_files(
        "#id_file",
        files=[{"name": "notes.csv", "mimeType": "text/csv", "buffer": b"titre,texte\nA,B\n"}],
    )
    page.click("#batch-upload button[type=submit]")
    # No question column: the column chooser says so, in French, and names the columns.
    page.locator("#columns-preview").wait_for()
    assert (
        "Aucune colonne ne porte un nom de question" in page.locator("#batch-upload").inner_text()
    )
    # A file whose question cell is empty while others are filled: the parser's message.
    page.goto(f"{site}/batches/")
    page.set_input_files(
        "#id_file",
        files=[{"name": "vide.csv", "mimeType": "text/csv", "buffer": b"question,texte\n,B\n"}],
    )
    page.click("#batch-upload button[type=submit]")
    error = page.locator("#id_file_error")
    error.wait_for()
    assert "la cellule « question » est vide" in error.inner_text()


def test_failures_are_shown_and_rows_retried(page, site, settings):
    """Bugs 2 and 3: failed rows make "Completed with 2 failed" and a split bar; a failed row's
    chat shows its question and error and retries it; selected rows are retried."""
    with FakeAIServer() as server:
        server.configure(settings)
        server.fail_next(2, "400")  # a 400 fails the row at once (no retry)
        log_in(page, site)
        page.set_input_files("#id_file", str(SAMPLE_EN))
        page.select_option("#id_ai_model", "compatible::local-model")
        page.select_option("#id_search_provider", "none")
        page.click("#batch-upload button[type=submit]")
        row = page.locator("#batch-rows tr", has_text="questions")
        row.wait_for()
        batch_id = int(row.get_attribute("id").removeprefix("batch-"))
        row.locator("form[action$='/start/'] button").click()
        wait_for_bar_full(page, f"#batch-{batch_id}")
        row.locator(".status", has_text="Completed with 2 failed").wait_for()
        assert row.locator(".seg-failed").count() == 1
        assert "2 failed" in row.locator(".bar-text").inner_text()
        shot(page, "batches-failures")

        row.locator(f"a[href='/batches/{batch_id}/']").click()
        page.wait_for_url(f"{site}/batches/{batch_id}/")
        assert "Failed (2)" in tab_text(page, "failed")
        page.locator(
            "#batch-rows-section tbody tr[data-status=failed] a", has_text="Open chat"
        ).first.click()
        page.wait_for_url("**/chats/**")
        unanswered = page.locator("#unanswered")
        assert "Failed" in unanswered.inner_text()
        assert "400" in unanswered.locator(".form-errors").inner_text()
        assert unanswered.locator("p.question").inner_text().strip()
        assert page.locator("#id_question").count() == 0  # no follow-up before a retry
        assert "row" in page.locator("h1").inner_text()
        shot(page, "chat-failed-row")
        page.click("#unanswered button[type=submit]")
        page.wait_for_url(f"{site}/batches/{batch_id}/")
        wait_for_bar_full(page, "#batch-progress")
        page.locator("#batch-progress .status", has_text="Completed with 1 failed").wait_for()

        # Select the remaining failed row and retry it from the table.
        page.wait_for_function(
            "() => document.querySelectorAll('#rows-form input[name=items]').length === 1"
        )
        page.check("#rows-form input[name=items]")
        page.click("#retry-selected")
        page.wait_for_url(f"{site}/batches/{batch_id}/")
        wait_for_bar_full(page, "#batch-progress")
        page.wait_for_function(
            """() => document.querySelector("#batch-progress .status").textContent.trim()
                === "Completed" """
        )
        page.wait_for_function(
            """() => document.querySelector("#batch-rows-section a[data-status=failed]")
                .textContent.includes("(0)")""",
        )


def test_phone_viewport_390px(browser, site, screenshots):
    """Bug 8: at 390 px the header wraps (every control on screen) and the tables need no
    sideways scrolling."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    context.screenshots = screenshots
    page = context.new_page()
    try:
        log_in(page, site)
        batch_id = upload_and_run(page, SAMPLE_EN, name="Phone batch", language="en")
        assert_fits(page, 390)
        status = page.locator(f"#batch-{batch_id} .status")
        box = status.bounding_box()
        assert box["x"] + box["width"] <= 390
        shot(page, "batches-phone")
        page.goto(f"{site}/batches/{batch_id}/")
        assert_fits(page, 390)
        first_row = page.locator("#batch-rows-section tbody tr").first
        for cell in first_row.locator("td:visible").all():
            cell_box = cell.bounding_box()
            assert cell_box["x"] + cell_box["width"] <= 390
        status_cell = first_row.locator("td[data-label=Status]")
        assert status_cell.is_visible() and "Done" in status_cell.inner_text()
        first_row.scroll_into_view_if_needed()
        shot(page, "batch-detail-phone", full_page=False)  # the whole page is 22 cards long
    finally:
        context.close()


def test_admin_and_api_docs_work_under_the_content_security_policy(page, site):
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="ada").update(is_staff=True, is_superuser=True)
    log_in(page, site)
    response = page.goto(f"{site}/batches/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.goto(f"{site}/admin/batches/batch/")
    page.locator("#changelist").wait_for()
    page.goto(f"{site}/api/docs")
    page.locator(".swagger-ui .info").wait_for()  # rendered by its own scripts
    # The page fixture fails the test on any Content-Security-Policy violation.


def test_every_page_fits_390px_in_english_and_french_and_run_again_starts_in_one_click(
    browser, site, screenshots
):
    """Issue 27: no page wider than a 390 px phone, in either language (the detail page's
    "Compare with" form was 507 px); "Run again and start" makes a running batch."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    context.screenshots = screenshots
    page = context.new_page()
    try:
        log_in(page, site)
        first = upload_and_run(page, SAMPLE_EN, name="Phone pages", language="en")
        page.goto(f"{site}/batches/{first}/")
        page.click("#batch-evaluation button:has-text('Run again and start')")
        page.wait_for_url(re.compile(r".*/batches/\d+/$"))
        second = int(page.url.rstrip("/").rsplit("/", 1)[1])
        assert second != first
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
        for language in ("en", "fr"):
            if language == "fr":
                page.goto(f"{site}/batches/")
                page.select_option("#language-select", "fr")
                page.click("header form[action='/i18n/setlang/'] button")
                page.wait_for_url(f"{site}/batches/")
            for path in pages:
                page.goto(f"{site}{path}")
                assert page.locator("html").get_attribute("lang") == language
                assert_fits(page, 390)
    finally:
        context.close()
