"""A provider outage in a real browser: the fake provider is stopped while the batch runs;
the batch page says so within a few seconds, and the notice clears when it is back, with
no row failed (issue 27, item 1)."""

from __future__ import annotations

import pytest

from batches.tests.test_browser import (  # noqa: F401 - fixtures used by name
    browser,
    log_in,
    page,
    screenshots,
    site,
    wait_for_bar_full,
)
from chats.tests.fake_servers import FakeAIServer

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROWS = 100  # two calls in flight, 0.2 s each: the batch runs for about 10 s
NOTICE = "#batch-progress .outage"


def test_an_outage_mid_run_shows_the_notice_and_it_clears_when_the_provider_returns(
    page,  # noqa: F811
    site,  # noqa: F811
    settings,
    tmp_path,
):
    settings.PROVIDER_BREAKER_FAILURES = 2
    settings.PROVIDER_BREAKER_PROBE_SECONDS = 0.5
    settings.PROVIDER_BACKOFF_BASE = 0.01
    settings.PROVIDER_MAX_ATTEMPTS = 2
    settings.REDIS_URL = ""
    settings.BATCH_CONCURRENCY = 2
    questions = tmp_path / "outage.csv"
    questions.write_text(
        "question\n" + "".join(f"Question {i}?\n" for i in range(ROWS)), encoding="utf-8"
    )
    server = FakeAIServer(latency=0.2).start()
    try:
        server.configure(settings)
        log_in(page, site)
        page.fill("#id_name", "Outage")
        page.set_input_files("#id_file", str(questions))
        page.select_option("#id_ai_model", "compatible::local-model")
        page.select_option("#id_search_provider", "none")
        page.click("#batch-upload button[type=submit]")
        row = page.locator("#batch-rows tr", has_text="Outage")
        row.wait_for()
        batch_id = int(row.get_attribute("id").removeprefix("batch-"))
        row.locator("form[action$='/start/'] button").click()
        row.locator(f"a[href='/batches/{batch_id}/']").click()
        page.wait_for_url(f"{site}/batches/{batch_id}/")
        page.wait_for_function(
            """() => {
                const bar = document.querySelector("#batch-progress .bar[role=progressbar]");
                return bar && Number(bar.dataset.finished) >= 3;
            }""",
            timeout=60_000,
        )
        assert page.locator(NOTICE).count() == 0

        server.stop()
        notice = page.locator(NOTICE)
        notice.wait_for(timeout=30_000)
        text = notice.inner_text()
        assert "The provider does not answer (connection refused), retrying;" in text
        assert "rows waiting" in text
        assert "Last answer at" in text
        assert "0 failed" in page.locator("#batch-progress .bar-text").inner_text()

        server.start()
        notice.wait_for(state="detached", timeout=60_000)
        wait_for_bar_full(page, "#batch-progress")
        bar_text = page.locator("#batch-progress .bar-text").inner_text()
        assert f"{ROWS} done, 0 failed of {ROWS}" in bar_text
    finally:
        server.stop()
