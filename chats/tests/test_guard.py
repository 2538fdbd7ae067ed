"""chats.guard: the labelled table (precision/recall per kind, printed), the policy, the
messages, and the AI check's parsing. The cost per question: bench/bench_guard.py."""

from __future__ import annotations

import asyncio
from collections import Counter

import hypothesis
import pytest
from django.utils import translation
from hypothesis import strategies as st

from chats import guard
from chats.guard import BLOCKED, PASSED, REDACTED, GuardResult, screen
from chats.providers.base import Generation
from chats.tests.guard_table import TABLE

# Kinds the issue calls structured: all of them together need recall >= 0.9.
STRUCTURED = (
    "phone",
    "email",
    "postal_code",
    "sin",
    "card",
    "id_number",
    "ip_address",
    "url",
    "address",
    "name",
)
# Every case of these kinds must be blocked.
ALWAYS_BLOCKED = ("phone", "email", "postal_code", "sin", "card")


def _evaluate() -> tuple[dict[str, Counter], list[tuple[str, str, set, set]]]:
    per_kind: dict[str, Counter] = {}
    rows = []
    for language, question, expected in TABLE:
        result = screen(question, language=language)
        found = set(result.reasons)
        for kind in expected | found:
            counts = per_kind.setdefault(kind, Counter())
            if kind in expected and kind in found:
                counts["tp"] += 1
            elif kind in expected:
                counts["fn"] += 1
            else:
                counts["fp"] += 1
        rows.append((language, question, set(expected), found, result.status))
    return per_kind, rows


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 1.0


def test_labelled_table_precision_and_recall_per_kind(capsys):
    assert len(TABLE) >= 400
    assert {language for language, _, _ in TABLE} == {"en", "fr"}
    per_kind, rows = _evaluate()

    lines = [
        f"guard evaluation: {len(TABLE)} questions "
        f"({sum(1 for r in rows if r[2])} to block, {sum(1 for r in rows if not r[2])} ordinary)",
        f"{'kind':<12} {'cases':>5} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7}",
    ]
    for kind in sorted(per_kind):
        counts = per_kind[kind]
        precision = _ratio(counts["tp"], counts["tp"] + counts["fp"])
        recall = _ratio(counts["tp"], counts["tp"] + counts["fn"])
        cases = counts["tp"] + counts["fn"]
        lines.append(
            f"{kind:<12} {cases:>5} {counts['tp']:>4} {counts['fp']:>4} {counts['fn']:>4} "
            f"{precision:>9.2f} {recall:>7.2f}"
        )
    structured_tp = sum(per_kind.get(kind, Counter())["tp"] for kind in STRUCTURED)
    structured_fn = sum(per_kind.get(kind, Counter())["fn"] for kind in STRUCTURED)
    structured_recall = _ratio(structured_tp, structured_tp + structured_fn)
    ordinary = [row for row in rows if not row[2]]
    ordinary_blocked = [row for row in ordinary if row[4] != PASSED]
    to_block = [row for row in rows if row[2]]
    missed = [row for row in to_block if row[4] != BLOCKED]
    lines.append(f"structured kinds recall: {structured_recall:.2f}")
    lines.append(f"ordinary questions stopped: {len(ordinary_blocked)} of {len(ordinary)}")
    lines.append(f"questions to block that passed: {len(missed)} of {len(to_block)}")
    for language, question, expected, found, _status in rows:
        if expected != found:
            lines.append(
                f"  differs: [{language}] {question!r}: {sorted(expected)} -> {sorted(found)}"
            )
    report = "\n".join(lines)
    print(report)  # shown with -s or -rP (captured otherwise)
    with capsys.disabled():
        print("\n" + report)

    for language, question, expected, _found, status in rows:
        if expected & set(ALWAYS_BLOCKED):
            assert status == BLOCKED, (language, question)
    assert structured_recall >= 0.9
    # Issue 26: recall of the questions to block >= 0.97, no false block among the others.
    assert len(missed) <= 0.03 * len(to_block), missed
    assert ordinary_blocked == [], ordinary_blocked


def test_reasons_are_kinds_never_values():
    result = screen("my name is Ana Silva, SIN 046 454 286, 613-555-0111", language="en")
    assert result.reasons == ("name", "phone", "sin")
    assert result.status == BLOCKED
    for value in ("Ana", "Silva", "046", "454", "286", "613", "0111"):
        assert value not in result.text
        assert all(value not in reason for reason in result.reasons)
    assert result.text == "my name is [NAME], SIN [SIN], [PHONE]"


def test_passed_question_is_returned_unchanged():
    question = "How do I renew my passport? Form PPTC 054, $160."
    assert screen(question, language="en") == GuardResult(PASSED, question, ())


def test_redact_policy_replaces_findings_and_goes_on(settings):
    settings.GUARD_PII_ACTION = "redact"
    result = screen("Email jean@example.ca or call 613-555-0123 about my EI", language="en")
    assert result.status == REDACTED
    assert result.reasons == ("email", "phone")
    assert result.text == "Email [EMAIL] or call [PHONE] about my EI"


def test_abuse_follows_its_own_action(settings):
    settings.GUARD_PII_ACTION = "redact"
    settings.GUARD_ABUSE_ACTION = "block"
    assert screen("where is my fucking refund", language="en").status == BLOCKED
    settings.GUARD_ABUSE_ACTION = "redact"
    result = screen("where is my fucking refund", language="en")
    assert result.status == REDACTED
    assert result.text == "where is my […] refund"
    # Personal information still follows GUARD_PII_ACTION.
    settings.GUARD_PII_ACTION = "block"
    assert screen("shit, my SIN 046 454 286", language="en").status == BLOCKED


def test_redacted_text_passes_a_second_screening(settings):
    settings.GUARD_PII_ACTION = "redact"
    settings.GUARD_ABUSE_ACTION = "redact"
    for language, question, _ in TABLE:
        redacted = screen(question, language=language).text
        assert screen(redacted, language=language).status == PASSED, (question, redacted)


def test_settings_add_words_to_the_lists(settings):
    assert screen("this is a frobnicated answer", language="en").status == PASSED
    settings.GUARD_PROFANITY_WORDS = ["frobnicat*"]
    settings.GUARD_THREAT_WORDS = ["je vais tout casser"]
    assert screen("this is a frobnicated answer", language="en").reasons == ("profanity",)
    assert screen("Je vais TOUT casser!", language="fr").reasons == ("threat",)


def test_words_match_whole_words_ignoring_case_and_accents():
    assert screen("ENCULÉ", language="fr").reasons == ("profanity",)
    assert screen("encule", language="fr").reasons == ("profanity",)
    assert screen("Scunthorpe and shitake mushrooms", language="en").status == PASSED


def test_blocked_message_is_translated_and_names_the_reasons():
    english = guard.blocked_message(("phone", "sin"), language="en")
    french = guard.blocked_message(("phone", "sin"), language="fr")
    assert "personal information" in english
    assert "phone number, social insurance number" in english
    assert "renseignements personnels" in french
    assert "numéro de téléphone, numéro d'assurance sociale" in french
    abuse = guard.blocked_message(("threat",), language="fr")
    assert "menace" in abuse
    # The active language is left as it was.
    with translation.override("en"):
        guard.blocked_message(("phone",), language="fr")
        assert translation.get_language() == "en"


def test_reason_labels_in_each_language():
    assert guard.reason_labels(["email", "address"], "en") == ["e-mail address", "street address"]
    assert guard.reason_labels(["email", "address"], "fr") == [
        "adresse courriel",
        "adresse postale",
    ]


def test_redacted_row_replaces_only_the_question_cell():
    row = {"Question": "call 613-555-0123", "expected": "x", "url": "https://a.example"}
    result = screen(row["Question"], language="en")
    assert guard.redacted_row(row, "Question", result) == {**row, "Question": "call [PHONE]"}
    assert row["Question"] == "call 613-555-0123"  # a copy, the input is untouched
    passed = screen("hello", language="en")
    assert guard.redacted_row(row, "Question", passed) is row
    assert guard.redacted_row(row, None, result) is row
    assert guard.redacted_row(row, "Question", "[NAME] asks") == {**row, "Question": "[NAME] asks"}


# --- AI check: parsing and the retry loop (the HTTP round trip is in test_guard_pipeline) --


def test_parse_ai_check_is_strict():
    text = "Does bob lee get the benefit?"
    ok = '{"personal_information": [{"kind": "name", "text": "bob lee"}]}'
    assert guard.parse_ai_check(ok, text) == ["bob lee"]
    assert guard.parse_ai_check('{"personal_information": []}', text) == []
    assert guard.parse_ai_check("```json\n" + ok + "\n```", text) == ["bob lee"]
    for bad in (
        "no",
        "Sure! " + ok,
        '{"personal_information": "Bob"}',
        '{"personal_information": [{"kind": "name", "text": "Alice"}]}',  # not in the text
        '{"personal_information": [], "extra": 1}',
        '{"personal_information": [{"kind": "name"}]}',
        "[]",
    ):
        assert guard.parse_ai_check(bad, text) is None, bad


def _answers(*texts):
    replies = list(texts)
    requests = []

    async def generate(request):
        requests.append(request)
        return Generation(text=replies.pop(0), model="m")

    return generate, requests


def test_ai_check_redacts_what_the_model_found(settings):
    settings.GUARD_PII_ACTION = "redact"
    generate, requests = _answers(
        "nonsense", '{"personal_information": [{"kind": "name", "text": "bob lee"}]}'
    )
    start = screen("Does bob lee at 613-555-0123 get the benefit?", language="en")
    result = asyncio.run(guard.ai_check(start, agenerate=generate, language="en", model="m"))
    assert len(requests) == 2  # the unparseable answer was asked again
    assert "613" not in requests[0].messages[0].content  # the model sees the redacted text
    assert result.status == REDACTED
    assert result.reasons == ("ai_personal", "phone")
    assert result.text == "Does [PERSONAL] at [PHONE] get the benefit?"


def test_ai_check_blocks_under_the_block_policy_and_skips_blocked_questions():
    generate, requests = _answers('{"personal_information": [{"kind": "name", "text": "Bob"}]}')
    result = asyncio.run(
        guard.ai_check(
            screen("Is Bob eligible?", language="en"), agenerate=generate, language="en", model="m"
        )
    )
    assert result.status == BLOCKED and result.reasons == ("ai_personal",)
    blocked = screen("SIN 046 454 286", language="en")
    checked = guard.ai_check(blocked, agenerate=generate, language="en", model="m")
    assert asyncio.run(checked) is blocked
    assert len(requests) == 1


def test_ai_check_gives_up_after_its_attempts(settings):
    settings.GUARD_AI_CHECK_ATTEMPTS = 3
    generate, requests = _answers("x", "y", "z", "never asked")
    start = screen("Is Bob eligible?", language="en")
    checked = guard.ai_check(start, agenerate=generate, language="en", model="m")
    assert asyncio.run(checked) is start
    assert len(requests) == 3


@pytest.mark.parametrize("kind", guard.KINDS)
def test_every_kind_has_a_label_and_a_placeholder(kind):
    assert kind in guard.KIND_LABELS and kind in guard.PLACEHOLDERS


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(
    st.text(alphabet=st.sampled_from(list("0123456789 -.()+@:/<>'$abcKLMNOPéÉàA\n")), max_size=80)
    | st.text(max_size=120)
)
def test_screen_never_fails_and_keeps_passed_text(text):
    result = screen(text, language="fr")
    assert result.status in (PASSED, REDACTED, BLOCKED)
    assert set(result.reasons) <= set(guard.KINDS)
    if result.status == PASSED:
        assert result.text == text and result.reasons == ()
    else:
        assert result.reasons


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("SIN 0\u200b46\u00a0454\u2013286 please", "SIN [SIN] please"),
        ("\u200bK1A\u200b0B1\u200b", "\u200b[POSTAL CODE]\u200b"),
        ("NAS ０４６ ４５４ ２８６ merci", "NAS [SIN] merci"),
        ("é-mail jean.roy＠gmail.com ok", "é-mail [EMAIL] ok"),
        ("tél. ６１３-５５５-０１２３.", "tél. [PHONE]."),
    ],
)
def test_disguises_are_redacted_over_exactly_the_characters_as_written(
    settings, question, expected
):
    settings.GUARD_PII_ACTION = "redact"
    assert screen(question).text == expected


@pytest.mark.parametrize(
    "question", ["Deadline 2024/03/01?", "Form T2202 – $1,000", "Page 12_3 of the guide"]
)
def test_undoing_disguises_makes_no_new_finding(question):
    assert screen(question).status == PASSED


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Call me at (613) 555-0123 please", "Call me at [PHONE] please"),
        ("call (555) 555-5555 now", "call [PHONE] now"),
        ("My name is Jean-Pierre de la Fontaine and I", "My name is [NAME] and I"),
        ("my name is Jan van der Berg", "my name is [NAME]"),
        ("Nom : Omar al Rashid.", "Nom : [NAME]."),
        ("I live at 123 Main Street, Apt 4 in Ottawa", "I live at [ADDRESS] in Ottawa"),
        ("I live at Unit 5, 123 Main Street", "I live at [ADDRESS]"),
        ("j'habite app. 4, 1200 rue Sainte-Catherine à Montréal", "j'habite [ADDRESS] à Montréal"),
    ],
)
def test_redaction_covers_the_whole_value(settings, question, expected):
    settings.GUARD_PII_ACTION = "redact"
    assert screen(question).text == expected


@pytest.mark.parametrize(
    "question",
    ["My phone number is 555-555-5555", "call (123) 456-7890", "cell +1 999-999-9999"],
)
def test_ten_digits_in_phone_format_are_labelled_a_phone(question):
    assert screen(question).reasons == ("phone",)


def test_a_lower_case_word_after_a_name_is_not_taken_with_it(settings):
    settings.GUARD_PII_ACTION = "redact"
    assert screen("My name is Bob and I live here").text == "My name is [NAME] and I live here"


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        (
            "Bonjour, je me nomme Karim Ben Youssef et j'ai une question",
            "Bonjour, je me nomme [NAME] et j'ai une question",
        ),
        (
            "Mon prénom est Anika et mon nom de famille est Sharma.",
            "Mon prénom est [NAME] et mon nom de famille est [NAME].",
        ),
    ],
)
def test_french_introductions_find_the_name(settings, question, expected):
    settings.GUARD_PII_ACTION = "redact"
    assert screen(question).text == expected


def test_screen_url_redacts_path_and_query_values_and_keeps_the_url_readable(settings):
    settings.GUARD_PII_ACTION = "redact"
    url = (
        "https://www.canada.ca/en/jo.roy%40example.ca/page.html"
        "?email=jo.roy%40example.ca&sin=046+454+286&tel=613-555-0123&lang=en#top"
    )
    result = guard.screen_url(url)
    assert result.status == REDACTED
    assert result.reasons == ("email", "phone", "sin")
    assert result.text == (
        "https://www.canada.ca/en/[EMAIL]/page.html?email=[EMAIL]&sin=[SIN]&tel=[PHONE]&lang=en#top"
    )
    assert guard.screen_url(result.text).status == PASSED  # placeholders never re-trigger


def test_screen_url_reads_bare_numbers_under_personal_keys_and_numbers_with_separators(settings):
    settings.GUARD_PII_ACTION = "redact"
    result = guard.screen_url("https://www.canada.ca/p/613-555-0123?sin=046454286&tel=6135550123")
    assert result.status == REDACTED
    assert "046454286" not in result.text and "6135550123" not in result.text
    assert "613-555-0123" not in result.text


def test_screen_url_blocks_under_the_block_policy():
    result = guard.screen_url("https://www.canada.ca/page?email=jo.roy@example.ca")
    assert result.status == BLOCKED and result.reasons == ("email",)
    assert "jo.roy" not in result.text


@pytest.mark.parametrize(
    "url",
    [
        "",
        "https://www.canada.ca/en/services/benefits/ei.html",
        "https://www.canada.ca/fr/2024-03-01/formulaire.html?form=IMM%205257&lang=fr&page=2",
        "https://www.canada.ca/en.html?utm_source=news&q=passport+renewal#contact",
        # Bare numeric ids of pages and records are not phone or identity numbers.
        "https://www.canada.ca/en/services/benefits/ei/12345678901.html?id=987654321",
        "https://www.canada.ca/fr/nouvelles/6135550123?page=046454286&ref=4165550199",
    ],
)
def test_screen_url_passes_a_clean_url_byte_for_byte(url):
    assert guard.screen_url(url) == GuardResult(PASSED, url)
