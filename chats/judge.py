"""The AI judge: its prompt and the strict parsing of its reply (evaluation grader).

The judge is an ordinary model call (see `chats.services.judge_answer`) asked to compare
an answer with the expected one and to reply with one JSON object:

    {"verdict": "pass" | "fail", "found": [key ideas of the expected answer present],
     "missing": [key ideas absent], "reason": "one line"}

Parsing is strict: a reply that is not exactly one such object (a code fence around it is
tolerated) raises JudgeReplyError, and the row's verdict becomes "no verdict" rather than
a guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from chats.providers.base import Message

MAX_IDEAS = 20
MAX_IDEA_CHARS = 300
MAX_REASON_CHARS = 300

JUDGE_SYSTEM = (
    "You grade the answers of a question-answering assistant of a public service website. "
    "You are given a question, the expected answer (written by an expert) and the "
    "assistant's answer. List the key ideas of the expected answer, and say which of them "
    "the assistant's answer contains (in any wording or language) and which it misses. "
    'The verdict is "pass" when the answer contains the essential ideas and contradicts '
    'none of them, otherwise "fail".\n'
    "Reply with one JSON object and nothing else:\n"
    '{"verdict": "pass" or "fail", "found": ["idea", ...], "missing": ["idea", ...], '
    '"reason": "one short sentence"}'
)

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL | re.IGNORECASE)


class JudgeReplyError(ValueError):
    """The judge's reply is not the JSON object asked for."""


@dataclass(frozen=True)
class JudgeVerdict:
    verdict: str  # "pass" or "fail"
    reason: str
    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def notes(self) -> str:
        """One text for the export and the pages: reason, then the ideas found / missing."""
        parts = [self.reason] if self.reason else []
        if self.found:
            parts.append("Found: " + "; ".join(self.found))
        if self.missing:
            parts.append("Missing: " + "; ".join(self.missing))
        return " | ".join(parts)


def judge_messages(*, question: str, expected_answer: str, answer: str) -> list[Message]:
    content = (
        f"<question>\n{question.strip()}\n</question>\n"
        f"<expected>\n{expected_answer.strip()}\n</expected>\n"
        f"<answer>\n{answer.strip()}\n</answer>"
    )
    return [Message("user", content)]


def parse_judge_reply(text: str) -> JudgeVerdict:
    """The verdict in `text`, or JudgeReplyError saying what is wrong with it."""
    text = (text or "").strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if not text:
        raise JudgeReplyError("The judge's reply is empty.")
    try:
        data = json.loads(text)
    except ValueError:
        raise JudgeReplyError("The judge's reply is not one JSON object.") from None
    if not isinstance(data, dict):
        raise JudgeReplyError("The judge's reply is not a JSON object.")
    verdict = data.get("verdict")
    if not isinstance(verdict, str) or verdict.strip().lower() not in ("pass", "fail"):
        raise JudgeReplyError('The judge\'s verdict is not "pass" or "fail".')
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        raise JudgeReplyError("The judge's reason is not text.")
    ideas = {}
    for key in ("found", "missing"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(idea, str) for idea in value):
            raise JudgeReplyError(f"The judge's `{key}` is not a list of texts.")
        ideas[key] = [
            " ".join(idea.split())[:MAX_IDEA_CHARS] for idea in value[:MAX_IDEAS] if idea.strip()
        ]
    return JudgeVerdict(
        verdict=verdict.strip().lower(),
        reason=" ".join(reason.split())[:MAX_REASON_CHARS],
        found=ideas["found"],
        missing=ideas["missing"],
    )
