"""Prompt assembly and the tolerant answer parser."""

from __future__ import annotations

import pytest

from chats.prompts import AnswerStreamFilter, build_messages, build_system_prompt, parse_answer
from chats.providers.base import Message
from chats.search.base import SearchResult

RESULTS = [
    SearchResult("Renew a passport", "https://example.org/passport", "Adults renew online."),
    SearchResult("Child passports", "https://example.org/child/", "Children need form B."),
]


# --- system prompt --------------------------------------------------------------------------


def test_system_prompt_numbers_the_results_with_title_url_and_snippet():
    system = build_system_prompt(language="en", search_results=RESULTS)
    assert "[1] Renew a passport\nURL: https://example.org/passport\nAdults renew online." in system
    assert "[2] Child passports\nURL: https://example.org/child/" in system
    assert "<citation-url>" in system and "<answer>" in system
    assert "write the answer in English" in system


def test_system_prompt_asks_for_the_page_language():
    system = build_system_prompt(language="fr", search_results=RESULTS)
    assert "write the answer in French" in system


def test_system_prompt_says_when_nothing_was_found_and_names_the_page():
    system = build_system_prompt(
        language="en", search_results=[], referring_url="https://example.org/help"
    )
    assert "none were found" in system
    assert "https://example.org/help" in system


def test_override_is_appended_last():
    system = build_system_prompt(
        language="en", search_results=RESULTS, override_text="  Always answer in one line. "
    )
    assert system.endswith("Additional instructions:\nAlways answer in one line.")
    assert "Additional instructions" not in build_system_prompt(
        language="en", search_results=RESULTS, override_text="   "
    )


def test_messages_replay_earlier_turns_then_the_question():
    messages = build_messages(history=[("Q1", "A1"), ("Q2", "")], question="Q3")
    assert messages == [
        Message("user", "Q1"),
        Message("assistant", "A1"),
        Message("user", "Q2"),
        Message("assistant", "(no answer)"),
        Message("user", "Q3"),
    ]


# --- parser -------------------------------------------------------------------------------


def test_parses_the_requested_format():
    parsed = parse_answer(
        "<answer>Renew online.</answer>\n<citation-url>https://example.org/passport"
        "</citation-url>\n<citation-title>Renew a passport</citation-title>",
        RESULTS,
    )
    assert parsed.answer == "Renew online."
    assert parsed.citation_url == "https://example.org/passport"
    assert parsed.citation_title == "Renew a passport"


def test_no_tags_means_the_raw_text_is_the_answer():
    parsed = parse_answer("  Just renew it online.\n", RESULTS)
    assert parsed.answer == "Just renew it online."
    assert parsed.citation_url == ""
    assert parsed.citation_title == ""


def test_no_tags_but_a_search_result_url_in_the_text_becomes_the_citation():
    parsed = parse_answer("See https://example.org/child for children.", RESULTS)
    assert parsed.answer == "See https://example.org/child for children."
    assert parsed.citation_url == "https://example.org/child/"
    assert parsed.citation_title == "Child passports"


def test_a_url_that_is_not_a_search_result_is_not_a_citation_without_tags():
    assert parse_answer("Try https://elsewhere.example/x", RESULTS).citation_url == ""


@pytest.mark.parametrize(
    "raw",
    [
        # unclosed answer (cut off by max_tokens before the citation)
        "<answer>Renew online.",
        # upper case, underscores, spaces inside tags
        "<ANSWER>Renew online.</ANSWER><citation_url> https://example.org/passport </citation_url>",
        # wrapped in a code fence
        "```xml\n<answer>Renew online.</answer>\n"
        "<citation-url>https://example.org/passport</citation-url>\n```",
        # chatter around the tags
        "Sure! Here it is:\n<answer>Renew online.</answer>\n"
        "<citation-url><https://example.org/passport></citation-url>",
    ],
)
def test_odd_but_recognisable_formats(raw):
    parsed = parse_answer(raw, RESULTS)
    assert parsed.answer == "Renew online."
    if "citation" in raw:
        assert parsed.citation_url == "https://example.org/passport"
        assert parsed.citation_title == "Renew a passport"  # taken from the search result


def test_citation_without_answer_tag_keeps_the_text_as_answer():
    parsed = parse_answer(
        "Renew online.\n<citation-url>https://example.org/passport</citation-url>", RESULTS
    )
    assert parsed.answer == "Renew online."
    assert parsed.citation_url == "https://example.org/passport"


def test_empty_answer_tag_falls_back_to_the_text_outside():
    parsed = parse_answer("Renew online.<answer></answer>", RESULTS)
    assert parsed.answer == "Renew online."


@pytest.mark.parametrize("url", ["javascript:alert(1)", "not a url", "", "ftp://example.org/file"])
def test_only_http_urls_are_kept_as_citations(url):
    parsed = parse_answer(
        f"<answer>A</answer><citation-url>{url}</citation-url>"
        "<citation-title>Click me</citation-title>",
        RESULTS,
    )
    assert parsed.citation_url == ""
    assert parsed.citation_title == ""  # no title without a URL


def test_html_entities_and_trailing_punctuation_are_cleaned():
    parsed = parse_answer(
        "<answer>A</answer><citation-url>https://example.org/s?a=1&amp;b=2.</citation-url>"
        "<citation-title>Fish &amp; chips\n guide</citation-title>"
    )
    assert parsed.citation_url == "https://example.org/s?a=1&b=2"
    assert parsed.citation_title == "Fish & chips guide"


def test_overlong_citations_are_cut_to_the_column_sizes():
    parsed = parse_answer(
        "<answer>A</answer><citation-url>https://example.org/" + "a" * 3000 + "</citation-url>"
        "<citation-title>" + "t" * 900 + "</citation-title>"
    )
    assert len(parsed.citation_url) == 2048
    assert len(parsed.citation_title) == 500


def test_empty_output():
    parsed = parse_answer("", RESULTS)
    assert (parsed.answer, parsed.citation_url, parsed.citation_title) == ("", "", "")


# --- streaming display ----------------------------------------------------------------------


def _feed(pieces: list[str]) -> tuple[list[str], AnswerStreamFilter]:
    stream = AnswerStreamFilter()
    return [stream.feed(piece) for piece in pieces], stream


def test_stream_filter_shows_only_the_answer_and_never_half_a_tag():
    shown, stream = _feed(
        [
            "<ans",
            "wer>Renew ",
            "online",
            ".</ans",
            "wer><citation-url>https://x.org</",
            "citation-url>",
        ]
    )
    assert "".join(shown) == "Renew online."
    assert all("<" not in piece for piece in shown)
    assert stream.shown == parse_answer(stream.raw).answer


def test_stream_filter_passes_plain_text_through():
    shown, stream = _feed(["Just ", "renew ", "it."])
    assert "".join(shown) == "Just renew it."


def test_stream_filter_stops_when_chatter_turns_out_to_precede_the_answer():
    shown, stream = _feed(["Sure! ", "<answer>Renew online.</answer>"])
    assert "".join(shown) == "Sure!"
    assert stream.feed(" more") == ""
    assert parse_answer(stream.raw).answer == "Renew online."


# --- Not-found answers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, language, expected",
    [
        ("I could not find this in the documents searched.", "en", True),
        ("Je n'ai pas trouvé cette information dans les documents consultés.", "fr", True),
        ("I couldn't find that in the search results; try the help centre.", "fr", True),
        ("  ", "en", True),
        ("Cancel it from the batch page: rows in flight finish.", "en", False),
        ("Annulez-le depuis la page du lot.", "fr", False),
    ],
)
def test_is_not_found(answer, language, expected):
    from chats.prompts import is_not_found

    assert is_not_found(answer, language) is expected


@pytest.mark.django_db
def test_not_found_query_agrees_with_is_not_found():
    from chats.models import Interaction
    from chats.prompts import is_not_found, not_found_q
    from chats.providers.extractive import NOT_FOUND
    from chats.tests.factories import InteractionFactory

    answers = [NOT_FOUND["en"], NOT_FOUND["fr"], "", "A real answer.", "I did not find it."]
    for answer in answers:
        InteractionFactory(answer=answer)
    for language in ("en", "fr"):
        matched = set(
            Interaction.objects.filter(not_found_q("answer", language)).values_list(
                "answer", flat=True
            )
        )
        assert matched == {a for a in answers if is_not_found(a, language)}


def test_extractive_answerer_needs_no_prompt():
    from chats.prompts import counts_words, uses_prompt

    assert not uses_prompt("extractive") and counts_words("extractive")
    assert uses_prompt("openai") and not counts_words("openai")


# --- answer types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "answer", "answer_type"),
    [
        ("<answer>Renew online.</answer>", "Renew online.", "normal"),
        (
            "<answer><not-gc>I can only help with this government's services.</not-gc></answer>",
            "I can only help with this government's services.",
            "not-gc",
        ),
        ("<answer><pt-muni>Ask your province.</pt-muni></answer>", "Ask your province.", "pt-muni"),
        (
            "<answer><clarifying_question>Which passport?</clarifying_question></answer>",
            "Which passport?",
            "clarifying-question",
        ),
        (
            "<answer>I could not find this in the documents searched.</answer>",
            "I could not find this in the documents searched.",
            "not-found",
        ),
        ("<answer></answer>", "", "not-found"),
    ],
)
def test_parse_answer_tells_the_answer_type_and_drops_its_tags(reply, answer, answer_type):
    parsed = parse_answer(reply)

    assert (parsed.answer, parsed.answer_type) == (answer, answer_type)


def test_not_found_words_follow_the_page_language():
    reply = "<answer>Je n'ai pas trouvé cette information.</answer>"

    assert parse_answer(reply, language="fr").answer_type == "not-found"


def test_type_tags_are_not_shown_while_streaming():
    stream = AnswerStreamFilter()

    shown = "".join(stream.feed(token) for token in ["<answer><not-", "gc>Not our", " service."])

    assert shown == "Not our service."


def test_system_prompt_asks_for_the_origin_type_tags():
    prompt = build_system_prompt(language="en", search_results=RESULTS)

    assert "<not-gc>" in prompt and "<pt-muni>" in prompt and "<clarifying-question>" in prompt
