"""The batch's own copy of a screened question (see docs/providers-and-guard.md, "The guard").

A batch keeps the upload twice: `BatchItem.question` (what the engine asks) and the
question cell inside `BatchItem.row` (every original column, for the export). Screening
that decides happens when a row is answered (the pages' preview at upload is
batches.upload_guard, which stores nothing but the counts). When the
engine records an answered row whose question the guard redacted or blocked, both copies
are replaced by the redacted text in the same UPDATE (and so are the referring URL and
its cell when the guard redacted the URL), so with the default policy
(GUARD_STORE_ORIGINAL off) no unredacted question remains in the database once the row
is done. Rows not answered yet (pending, failed, cancelled) still hold the upload: they
have not been screened. With GUARD_STORE_ORIGINAL on, the upload is kept as it was.
"""

from __future__ import annotations

from django.conf import settings

from batches.models import BatchItem
from batches.uploads import QUESTION_ALIASES, URL_ALIASES, find_alias
from chats.models import GuardStatus, Interaction
from chats.services import redacted_row


def question_column(row: dict) -> str | None:
    """The header of the row's question column (the upload rules' aliases)."""
    return find_alias([str(key) for key in row], QUESTION_ALIASES) if row else None


def url_column(row: dict) -> str | None:
    """The header of the row's referring URL column (the upload rules' aliases)."""
    return find_alias([str(key) for key in row], URL_ALIASES) if row else None


def guarded_item_fields(
    item: BatchItem, interaction: Interaction | None, headers: list | None = None
) -> dict:
    """Extra fields for the UPDATE that records `item` as answered by `interaction`:
    the redacted question in `question` and in the row's question cell, the redacted
    referring URL in `referring_url`; {} when the guard passed the row or the policy
    keeps the original."""
    if (
        interaction is None
        or interaction.guard_status not in (GuardStatus.REDACTED, GuardStatus.BLOCKED)
        or settings.GUARD_STORE_ORIGINAL
    ):
        return {}
    fields: dict = {}
    if headers is None and not isinstance(item.row, dict):
        headers = item.batch.input_columns
    row = item.columns(headers)
    if interaction.referring_url != item.referring_url:  # the guard redacted the URL
        fields["referring_url"] = interaction.referring_url
        column = url_column(row)
        if column is not None and str(row.get(column, "")).strip() == item.referring_url.strip():
            row = redacted_row(row, column, interaction.referring_url)
            fields["row"] = _stored(item, row, headers)
    text = interaction.redacted_question
    if not text:  # only the URL was redacted: the question stands
        return fields
    fields["question"] = text
    column = question_column(row)
    if column is not None and str(row.get(column, "")).strip() == item.question.strip():
        fields["row"] = _stored(item, redacted_row(row, column, text), headers)
    return fields


def _stored(item: BatchItem, row: dict, headers: list | None):
    """`row` in the form `item.row` holds it (by position, or a legacy dict)."""
    return row if isinstance(item.row, dict) else BatchItem.stored_row(row, headers or [])
