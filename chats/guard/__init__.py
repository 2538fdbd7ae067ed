"""The guard: personal information and abuse found before a question leaves the server.

Who owns what:

- `policy`: the kinds of findings, the actions (`GUARD_PII_ACTION`, `GUARD_ABUSE_ACTION`)
  and statuses (the `chats.models.GuardStatus` choices), `GuardResult`, `screen`, `screen_url` (a referring URL), the
  translated labels and blocked message, and the optional AI check;
- `detectors`: where personal information and abuse are in a text (`find` -> `Finding`s);
- `redaction`: placeholders, `redact` (a text) and `redacted_row` (an uploaded row);
- `words`: the word lists (`data/*.txt`, one list a file, each with its source and date,
  read once at first use) and their matching on folded words;
- `pipeline`: step 0 of the chat pipeline (`guard_step` -> `GuardStep`), which
  `chats.services` runs before search and the model.

Everything other modules use is importable from `chats.guard`.
"""

from __future__ import annotations

from chats.guard.detectors import Finding, find
from chats.guard.pipeline import GUARD_MODEL, GuardStep, guard_step
from chats.guard.policy import (
    ABUSE_KINDS,
    ACTIONS,
    AI_CHECK_SYSTEM,
    BLOCK,
    BLOCKED,
    KIND_LABELS,
    KINDS,
    PASSED,
    PII_KINDS,
    REDACT,
    REDACTED,
    STATUSES,
    GuardResult,
    action_for,
    ai_check,
    ai_check_request,
    apply_ai_check,
    blocked_message,
    parse_ai_check,
    reason_labels,
    screen,
    screen_url,
)
from chats.guard.redaction import PLACEHOLDERS, redact, redacted_row
from chats.guard.words import fold

__all__ = [
    "ABUSE_KINDS",
    "ACTIONS",
    "AI_CHECK_SYSTEM",
    "BLOCK",
    "BLOCKED",
    "GUARD_MODEL",
    "KINDS",
    "KIND_LABELS",
    "PASSED",
    "PII_KINDS",
    "PLACEHOLDERS",
    "REDACT",
    "REDACTED",
    "STATUSES",
    "Finding",
    "GuardResult",
    "GuardStep",
    "action_for",
    "ai_check",
    "ai_check_request",
    "apply_ai_check",
    "blocked_message",
    "find",
    "fold",
    "guard_step",
    "parse_ai_check",
    "reason_labels",
    "redact",
    "redacted_row",
    "screen",
    "screen_url",
]
