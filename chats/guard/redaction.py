"""Redaction: what replaces the guard's findings, in a question and in a batch row.

Pure functions. A finding becomes a placeholder (`[PHONE]`, `[EMAIL]`, ...), the same in
both languages, so that search and the model see a marker rather than a hole, and never
re-triggered by `screen`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chats.guard.detectors import Finding


class Screened(Protocol):
    """What `redacted_row` reads of a `policy.GuardResult` (policy imports this module)."""

    changed: bool
    text: str


PLACEHOLDERS = {
    "phone": "[PHONE]",
    "email": "[EMAIL]",
    "postal_code": "[POSTAL CODE]",
    "sin": "[SIN]",
    "card": "[CARD NUMBER]",
    "id_number": "[ID NUMBER]",
    "ip_address": "[IP ADDRESS]",
    "url": "[URL]",
    "address": "[ADDRESS]",
    "name": "[NAME]",
    "ai_personal": "[PERSONAL]",
    "profanity": "[…]",
    "threat": "[…]",
    "injection": "[…]",
    "probe": "[…]",
}


def redact(text: str, findings: Iterable[Finding]) -> str:
    """`text` with each finding replaced by its placeholder; overlapping findings become
    one placeholder (that of the finding that starts first, the longest on a tie)."""
    pieces: list[str] = []
    position = 0
    last_end = -1
    for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
        if finding.start < last_end:  # inside (or across) the previous one: widen it
            if finding.end > last_end:
                last_end = finding.end
                position = last_end
            continue
        pieces.append(text[position : finding.start])
        pieces.append(PLACEHOLDERS.get(finding.kind, "[…]"))
        position = last_end = finding.end
    pieces.append(text[position:])
    return "".join(pieces)


def redacted_row(row: dict, question_column: str | None, result: Screened | str) -> dict:
    """A copy of an uploaded row whose question cell holds the redacted text.

    Pure: the batch engine calls it when it records a screened row, so that with the
    default policy (GUARD_STORE_ORIGINAL off) no unredacted question remains once the row
    is answered. `result` is the guard's result or the redacted text itself. A passed
    result, or no question column in the row, returns the row unchanged.
    """
    if not isinstance(result, str):
        if not result.changed:
            return row
        result = result.text
    if not question_column or question_column not in row:
        return row
    return {**row, question_column: result}
