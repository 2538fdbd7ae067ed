"""The fingerprint of a set's questions and expectations: equal files, equal fingerprints.

Pure (no models), so the data migration that made the first sets computes the same value
as an upload today."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

# What makes two sets "the same questions": the other columns do not count.
QUESTION_FIELDS = (
    "question",
    "referring_url",
    "chat_key",
    "expected_answer",
    "expected_citation_url",
    "expected_outcome",
)


def chat_keys(chat_ids: Iterable[object]) -> list[str]:
    """Each row's conversation key from its chat, in row order: the first row's position
    of that chat when the chat has several rows, "" for a chat of its own."""
    chat_ids = list(chat_ids)
    first: dict[object, int] = {}
    count: dict[object, int] = {}
    for position, chat_id in enumerate(chat_ids):
        first.setdefault(chat_id, position)
        count[chat_id] = count.get(chat_id, 0) + 1
    return [str(first[c] + 1) if count[c] > 1 else "" for c in chat_ids]


def fingerprint(questions: Iterable[Mapping[str, object]]) -> str:
    payload = [[str(q.get(field) or "") for field in QUESTION_FIELDS] for q in questions]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()
