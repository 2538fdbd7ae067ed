"""The guard at upload (see docs/providers-and-guard.md, "The guard at upload").

When a batch is created, every row's question and referring URL go through the guard's
offline step (`chats.services.screen_offline`: the patterns and word lists, no provider
call) and the batch remembers how many rows will be blocked and redacted
(`Batch.upload_guard`), so the page says "12 will be blocked, 3 redacted" before Start.
The pages show a row that has not been answered yet as it will be sent: the redacted text,
with a "will be blocked" / "will be redacted" note (`screened_items`); the column chooser's
preview shows every cell through the same step (`screened_sample`), since the question
column is not chosen yet.

What is stored does not change: pending rows keep the upload until answered, and the
answer-time guard (batches.guard_rows, chats.services.process_message) runs again and
decides, with the settings of that time and the AI check when it is on. Reusing the
upload-time result there would be wrong when GUARD_PII_ACTION / GUARD_ABUSE_ACTION or the
word lists changed between upload and Start, and the offline step costs microseconds per
row against a provider call of seconds, so the answer-time step is not skipped.
"""

from __future__ import annotations

from collections.abc import Iterable

from batches.models import BatchItem
from chats.models import GuardStatus
from chats.services import screen_offline


def upload_counts(rows: Iterable, *, language: str) -> dict:
    """{"blocked": n, "redacted": m} over parsed rows (objects with `question` and
    `referring_url`). Each distinct question and URL is screened once (uploads repeat
    their referring URLs and often their questions)."""
    statuses = {GuardStatus.BLOCKED: 2, GuardStatus.REDACTED: 1, GuardStatus.PASSED: 0}
    questions: dict[str, int] = {}
    urls: dict[str, int] = {"": 0}
    counts = {"blocked": 0, "redacted": 0}
    for row in rows:
        question = questions.get(row.question)
        if question is None:
            status = screen_offline(row.question, language=language).status
            question = questions[row.question] = statuses[status]
        url = urls.get(row.referring_url)
        if url is None:
            status = screen_offline("", row.referring_url, language=language).status
            url = urls[row.referring_url] = statuses[status]
        worst = max(question, url)
        if worst == 2:
            counts["blocked"] += 1
        elif worst == 1:
            counts["redacted"] += 1
    return counts


def screened_items(
    items: Iterable[BatchItem], *, headers: list[str] | None = None, language: str
) -> list[BatchItem]:
    """The page's items with `shown_question`, `shown_row` (the uploaded cells by header,
    BatchItem.columns) and `upload_guard_status` set: a row with no answer yet shows what
    the guard will send; an answered row its stored text (already screened at answer time)."""
    items = list(items)
    for item in items:
        item.shown_question = item.question
        item.shown_row = item.columns(headers)
        item.upload_guard_status = ""
        if item.interaction_id is not None:
            continue
        screened = screen_offline(item.question, item.referring_url, language=language)
        if screened.status == GuardStatus.PASSED:
            continue
        item.upload_guard_status = screened.status
        item.shown_question = screened.question
        item.shown_row = {
            key: screen_offline(str(value), language=language).question
            if isinstance(value, str)
            else value
            for key, value in item.shown_row.items()
        }
    return items


def screened_sample(sample: list[list[str]], *, language: str) -> list[list[str]]:
    """The column chooser's preview cells as the guard would send them."""
    return [
        [screen_offline(cell, language=language).question for cell in cells] for cells in sample
    ]
