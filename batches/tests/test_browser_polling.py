"""The batch page's poll in a real browser (issue 28, item 5): it backs off while nothing
changes, asks nothing while the tab is hidden, asks at once when it is shown again, comes
back to its fast pace after a change, and follows the batch to completion.

The batch is moved by the test (as the engine's writer would: rows, then counters) and
the runner is Celery's, so the page only watches (no page driver changes it meanwhile).
The tab's visibility is emulated: `document.visibilityState` and its `visibilitychange`
event, which is what static/js/app.js reads.
"""

from __future__ import annotations

import pytest
from django.db.models import F
from django.utils import timezone

from batches.models import Batch, BatchItem
from batches.tests.test_browser import (  # noqa: F401 - fixtures used by name
    browser,
    log_in,
    page,
    screenshots,
    site,
    wait_for_bar_full,
)
from batches.tests.view_helpers import real_batch

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROGRESS = "#batch-progress"
SET_VISIBILITY = """state => {
    Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def finish_rows(batch: Batch, positions: list[int]) -> None:
    now = timezone.now()
    BatchItem.objects.filter(batch=batch, position__in=positions).update(
        status=BatchItem.Status.DONE, finished_at=now
    )
    Batch.objects.filter(pk=batch.pk).update(
        processed_items=F("processed_items") + len(positions), updated_at=now
    )


def finished_shown(tab) -> int:
    return int(tab.get_attribute(f"{PROGRESS} .bar[role=progressbar]", "data-finished"))


def test_polling_backs_off_pauses_while_hidden_and_follows_the_batch_to_the_end(
    page,  # noqa: F811
    site,  # noqa: F811
    settings,
    django_user_model,
):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/15"  # the page only watches
    owner = django_user_model.objects.get(username="ada")
    batch = real_batch(owner, 4, name="Watched")
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.PROCESSING)
    polls: list[str] = []
    page.on("request", lambda request: "/progress/" in request.url and polls.append(request.url))
    log_in(page, site)
    page.goto(f"{site}{batch.get_absolute_url()}")
    assert page.get_attribute(PROGRESS, "data-poll") is not None

    # 1. Nothing changes: every answer is 204 and the pause grows (2 s, 4 s, 8 s).
    page.wait_for_function(
        "s => Number(document.querySelector(s).dataset.pollDelay) >= 8000", arg=PROGRESS
    )
    assert len(polls) >= 2
    assert finished_shown(page) == 0

    # 2. A row finishes: the next poll shows it, and the new section polls fast again.
    finish_rows(batch, [0])
    page.wait_for_function(
        """s => {
            const bar = document.querySelector(`${s} .bar[role=progressbar]`);
            return bar && bar.dataset.finished === "1";
        }""",
        arg=PROGRESS,
        timeout=30_000,
    )
    page.wait_for_function(
        "s => document.querySelector(s).dataset.pollDelay === '2000'", arg=PROGRESS
    )
    assert page.locator("#batch-rows-section tr#row-0[data-status=done]").count() == 1

    # 3. The tab is hidden: its poll comes due and asks nothing; the batch moves on.
    page.evaluate(SET_VISIBILITY, "hidden")
    page.wait_for_selector(f"{PROGRESS}[data-poll-waiting]", state="attached", timeout=30_000)
    asked_while_hidden = len(polls)
    finish_rows(batch, [1, 2])
    page.wait_for_timeout(1500)  # a visible tab would have asked in this time
    assert len(polls) == asked_while_hidden
    assert finished_shown(page) == 1

    # 4. Shown again: it asks at once and shows where the batch is.
    page.evaluate(SET_VISIBILITY, "visible")
    page.wait_for_function(
        """s => document.querySelector(`${s} .bar[role=progressbar]`).dataset.finished === "3" """,
        arg=PROGRESS,
    )
    assert len(polls) > asked_while_hidden

    # 5. The batch ends: the page shows it complete, and polling stops (286).
    finish_rows(batch, [3])
    Batch.objects.filter(pk=batch.pk).update(status=Batch.Status.COMPLETED)
    wait_for_bar_full(page, PROGRESS)
    page.wait_for_function(
        "s => !document.querySelector(s).hasAttribute('data-poll')", arg=PROGRESS
    )
    assert page.locator("#batch-rows-section tr[data-status=done]").count() == 4
