"""What the fake AI servers answer (chats.tests.fake_servers, fake_batch_servers): the
same deterministic answer for the same request, whatever the protocol.

The answer echoes the last user message and cites the first URL of the system prompt
(with the title on the ``[1] ...`` line) in the tag format of ``chats.prompts``. A
question containing ``[no-tags]`` gets a plain answer without tags. A judge request
(``chats.judge``: ``<expected>`` and ``<answer>`` blocks) gets a JSON verdict: the expected
answer's words of 4+ letters are the key ideas, "pass" when the answer has them all; an
expected answer containing ``[malformed]`` gets a reply that is not JSON. Standard
library only.
"""

from __future__ import annotations

import json
import re
from typing import Any

_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_TITLE = re.compile(r"^\s*\[1\]\s*(.+?)\s*$", re.MULTILINE)


def text_of(content: Any) -> str:
    """Message content as text: a string, or a list of {type: text, text} blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def compose_answer(system: str, messages: list[dict[str, Any]]) -> str:
    """The fake model's answer: echoes the question and cites the first URL of `system`."""
    questions = [text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    question = questions[-1] if questions else ""
    if "<expected>" in question and "<answer>" in question:
        return judge_reply(question)
    turn = len(questions)
    body = f"Fake answer (turn {turn}) to: {question}"
    if "[no-tags]" in question:
        return body
    url_match = _URL.search(system)
    title_match = _TITLE.search(system)
    url = url_match.group(0) if url_match else ""
    title = title_match.group(1) if title_match and url else ""
    return (
        f"<answer>{body}</answer>"
        f"<citation-url>{url}</citation-url><citation-title>{title}</citation-title>"
    )


def judge_reply(content: str) -> str:
    expected = content.split("<expected>", 1)[1].split("</expected>", 1)[0]
    answer = content.split("<answer>", 1)[1].split("</answer>", 1)[0].lower()
    if "[malformed]" in expected:
        return "I think the answer is mostly fine."
    ideas = list(dict.fromkeys(w for w in re.findall(r"\w{4,}", expected.lower())))
    found = [idea for idea in ideas if idea in answer]
    missing = [idea for idea in ideas if idea not in answer]
    verdict = "fail" if missing else "pass"
    return json.dumps(
        {
            "verdict": verdict,
            "found": found,
            "missing": missing,
            "reason": f"{len(found)} ideas found.",
        }
    )


def count_tokens(text: str) -> int:
    return len(text.split())


def chunks(text: str) -> list[str]:
    """Split into word-sized pieces whose concatenation is exactly `text`."""
    return re.findall(r"\S+\s*|\s+", text) or [""]
