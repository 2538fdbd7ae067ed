"""The AI judge's reply parsing (strict) on a table of replies."""

from __future__ import annotations

import pytest

from chats.judge import JudgeReplyError, parse_judge_reply


@pytest.mark.parametrize(
    ("reply", "verdict", "found", "missing", "reason"),
    [
        (
            '{"verdict": "pass", "found": ["a"], "missing": [], "reason": "ok"}',
            "pass",
            ["a"],
            [],
            "ok",
        ),
        (
            '{"verdict": "FAIL", "found": [], "missing": ["fee"], "reason": "no fee"}',
            "fail",
            [],
            ["fee"],
            "no fee",
        ),
        ('```json\n{"verdict": "pass", "reason": "fine"}\n```', "pass", [], [], "fine"),
        (
            '{"verdict": " pass ", "found": ["  two\\n words "], "reason": "a\\nb"}',
            "pass",
            ["two words"],
            [],
            "a b",
        ),
    ],
)
def test_valid_replies(reply, verdict, found, missing, reason):
    parsed = parse_judge_reply(reply)
    assert (parsed.verdict, parsed.found, parsed.missing, parsed.reason) == (
        verdict,
        found,
        missing,
        reason,
    )


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("", "empty"),
        ("The answer is fine.", "not one JSON object"),
        ('Sure! {"verdict": "pass"}', "not one JSON object"),
        ('{"verdict": "pass"} {"verdict": "fail"}', "not one JSON object"),
        ('["pass"]', "not a JSON object"),
        ('{"verdict": "maybe"}', 'not "pass" or "fail"'),
        ('{"found": []}', 'not "pass" or "fail"'),
        ('{"verdict": true}', 'not "pass" or "fail"'),
        ('{"verdict": "pass", "found": "a, b"}', "`found` is not a list"),
        ('{"verdict": "pass", "missing": [1, 2]}', "`missing` is not a list"),
        ('{"verdict": "pass", "reason": ["x"]}', "reason is not text"),
    ],
)
def test_malformed_replies_are_refused(reply, message):
    with pytest.raises(JudgeReplyError, match=message):
        parse_judge_reply(reply)


def test_notes_join_reason_and_ideas():
    parsed = parse_judge_reply(
        '{"verdict": "fail", "found": ["a", "b"], "missing": ["c"], "reason": "Half."}'
    )
    assert parsed.notes == "Half. | Found: a; b | Missing: c"
