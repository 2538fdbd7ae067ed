"""Economy mode in a real browser: upload with Mode "Economy", start, see the provider
batch on the batch page while the provider works, then the answers once it has ended."""

from __future__ import annotations

import os

import pytest

from batchchat.tests.waiting import wait_until
from batches.models import Batch
from batches.tests import test_browser as browser_tests
from chats.tests.fake_batch_servers import FakeBatchServer

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

browser = browser_tests.browser
screenshots = browser_tests.screenshots
site = browser_tests.site
page = browser_tests.page
log_in = browser_tests.log_in
shot = browser_tests.shot


@pytest.fixture
def batch_server(settings):
    with FakeBatchServer() as server:
        server.configure(settings)
        settings.ECONOMY_POLL_SECONDS = 0
        server.auto_complete = False
        yield server


def test_economy_batch_page_shows_the_provider_batch_then_the_answers(page, site, batch_server):
    log_in(page, site)
    page.fill("#id_name", "Overnight run")
    page.set_input_files("#id_file", str(browser_tests.SAMPLE_EN))
    page.select_option("#id_ai_model", "openai::gpt-4o-mini")
    page.select_option("#id_search_provider", "none")
    page.select_option("#id_mode", "economy")
    page.click("#batch-upload button[type=submit]")
    row = page.locator("#batch-rows tr", has_text="Overnight run")
    row.wait_for()
    batch_id = int(row.get_attribute("id").removeprefix("batch-"))
    row.locator("form[action$='/start/'] button").click()
    # Leave the list only once the start has landed (leaving aborts a request in flight).
    wait_until(
        lambda: Batch.objects.get(pk=batch_id).status != Batch.Status.UPLOADED,
        message="the batch was never started",
    )
    page.goto(f"{site}/batches/{batch_id}/")
    # The page drives the slices (no worker): the rows go to one provider batch.
    in_progress = page.locator("#provider-batches tr.provider-batch", has_text="in progress")
    in_progress.wait_for(timeout=60_000)
    assert "Expected within 24 h" in page.inner_text("#provider-batches")
    shot(page, "batch-economy")
    batch_server.finish()
    batch_server.auto_complete = True  # the next waves (the sample's follow-up turns)
    completed = page.locator("#provider-batches tr.provider-batch", has_text="completed")
    completed.first.wait_for(timeout=60_000)
    batch = Batch.objects.get(pk=batch_id)
    page.wait_for_function(
        "() => !document.querySelector('#batch-progress[hx-get]')", timeout=60_000
    )
    batch.refresh_from_db()
    assert batch.status == Batch.Status.COMPLETED
    assert batch.processed_items == batch.total_items
    assert batch_server.realtime_calls == 0
