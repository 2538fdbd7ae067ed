"""The guard at upload (batches.upload_guard): counts stored on the batch, unanswered rows
shown as they will be sent, what is stored unchanged."""

from __future__ import annotations

import pytest

from batches.models import BatchItem
from batches.services import create_batch_run
from batches.upload_guard import screened_items, screened_sample
from batches.uploads import ParsedRow

pytestmark = pytest.mark.django_db

ROWS = [
    ParsedRow(question="Call me at 613-555-0199 about my benefits"),
    ParsedRow(question="How do I renew my passport?"),
    ParsedRow(question="Where is the form?", referring_url="https://x.ca/p?email=a.b@example.com"),
]


def create(owner):
    return create_batch_run(
        uploader=owner, name="PI", rows=ROWS, ai_provider="extractive", search_provider="local"
    )


@pytest.mark.parametrize(
    ("action", "expected"),
    [("block", {"blocked": 2, "redacted": 0}), ("redact", {"blocked": 0, "redacted": 2})],
)
def test_counts_follow_the_policy_at_upload(owner, settings, action, expected):
    settings.GUARD_PII_ACTION = action
    assert create(owner).upload_guard == expected


def test_unanswered_rows_are_shown_redacted_but_stored_as_uploaded(owner, settings):
    settings.GUARD_PII_ACTION = "redact"
    batch = create(owner)
    items = screened_items(
        batch.items.select_related("interaction").order_by("position"), language="en"
    )
    assert [item.upload_guard_status for item in items] == ["redacted", "", "redacted"]
    assert "613-555-0199" not in items[0].shown_question
    assert "[PHONE]" in items[0].shown_question
    assert items[1].shown_question == "How do I renew my passport?"
    # What is stored is the upload, until the answer-time guard runs (as before).
    assert BatchItem.objects.get(batch=batch, position=0).question == ROWS[0].question


def test_the_chooser_preview_is_screened_cell_by_cell():
    sample = [["My e-mail is a.b@example.com", "plain"], ["", "613-555-0199"]]
    shown = screened_sample(sample, language="fr")
    assert "a.b@example.com" not in shown[0][0] and shown[0][1] == "plain"
    assert shown[1][0] == "" and "613-555-0199" not in shown[1][1]
