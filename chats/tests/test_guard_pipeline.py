"""The guard inside process_message: what the fake search and AI servers received (nothing
for a blocked question, only redacted text otherwise), what is stored and logged."""

from __future__ import annotations

import json
import logging
import re
import unicodedata

import pytest

from chats.guard import AI_CHECK_SYSTEM, pipeline
from chats.models import Interaction
from chats.services import process_message
from chats.tests.factories import ChatFactory
from chats.tests.fake_answers import compose_answer
from chats.tests.fake_search import FakeSearchServer
from chats.tests.fake_servers import FakeAIServer

pytestmark = pytest.mark.django_db

PHONE = "613-555-0123"
SIN = "046 454 286"


@pytest.fixture
def servers(settings):
    with FakeAIServer() as ai, FakeSearchServer() as search:
        ai.configure(settings)
        search.configure(settings)
        yield ai, search


def _chat(**kwargs):
    fields = {"ai_provider": "openai", "model": "gpt-4o-mini", "search_provider": "searxng"}
    return ChatFactory(**(fields | kwargs))


def _everything_sent(ai, search) -> str:
    return "\n".join([*(r.raw for r in ai.requests), *(r.raw for r in search.requests)])


def _our_log(caplog) -> str:
    """The messages our code logged. Not `caplog.text`: the DEBUG lines of the HTTP and
    factory libraries hold ports and memory addresses ("0x7f555c2f8cd0"), which may
    contain any digits. Tests that read it give their chat a fixed id for the same reason."""
    ours = ("chats", "batches", "batchchat")
    return "\n".join(
        record.getMessage() for record in caplog.records if record.name.split(".")[0] in ours
    )


def test_blocked_question_makes_no_request_and_stores_the_fixed_answer(servers, caplog):
    ai, search = servers
    chat = _chat(chat_id="guard-blocked")
    tokens = []
    caplog.set_level(logging.DEBUG)

    interaction = process_message(
        chat=chat, question=f"My SIN is {SIN}, call me at {PHONE}", on_token=tokens.append
    )

    assert ai.requests == [] and search.requests == []
    interaction.refresh_from_db()
    assert interaction.guard_status == "blocked"
    assert interaction.answer_type == "blocked"
    assert interaction.guard_reasons == ["phone", "sin"]
    assert interaction.question == "My SIN is [SIN], call me at [PHONE]"
    assert interaction.redacted_question == interaction.question
    assert interaction.answer.startswith("This question was not answered")
    assert "phone number, social insurance number" in interaction.answer
    assert interaction.model == "guard"
    assert interaction.search_query == "" and interaction.search_results == []
    assert interaction.input_tokens is None and interaction.citation_url == ""
    assert tokens == [interaction.answer]  # the chat page streams the fixed answer
    logged = _our_log(caplog)
    assert "046" not in logged and "555-0123" not in logged


def test_blocked_answer_is_in_the_page_language(servers):
    interaction = process_message(chat=_chat(page_language="fr"), question=f"Mon NAS: {SIN}")
    assert "renseignements personnels" in interaction.answer


def test_redacted_question_goes_on_without_the_values(servers, settings, caplog):
    ai, search = servers
    settings.GUARD_PII_ACTION = "redact"
    caplog.set_level(logging.DEBUG)

    interaction = process_message(
        chat=_chat(chat_id="guard-redacted"),
        question=f"Is my EI late? call {PHONE} or mail jo.roy@example.ca",
    )

    assert len(ai.requests) == 1 and len(search.requests) == 1
    sent = _everything_sent(ai, search)
    logged = _our_log(caplog)
    assert "question redacted (email,phone)" in logged  # the guard's line was captured
    for value in (PHONE, "555", "jo.roy", "example.ca"):
        assert value not in sent
        assert value not in logged
    assert search.requests[0].query["q"] == "Is my EI late? call [PHONE] or mail [EMAIL]"
    interaction.refresh_from_db()
    assert interaction.guard_status == "redacted"
    assert interaction.guard_reasons == ["email", "phone"]
    assert interaction.question == "Is my EI late? call [PHONE] or mail [EMAIL]"
    assert interaction.redacted_question == interaction.question
    assert interaction.search_query == interaction.question
    assert interaction.answer == "Fake answer (turn 1) to: " + interaction.question


def test_passed_question_is_stored_as_asked(servers):
    interaction = process_message(chat=_chat(), question="How do I renew my passport?")
    interaction.refresh_from_db()
    assert interaction.guard_status == "passed"
    assert interaction.guard_reasons == []
    assert interaction.redacted_question == ""
    assert interaction.question == "How do I renew my passport?"


def test_store_original_keeps_it_but_never_sends_it_again(servers, settings):
    ai, search = servers
    settings.GUARD_PII_ACTION = "redact"
    settings.GUARD_STORE_ORIGINAL = True
    chat = _chat()

    first = process_message(chat=chat, question=f"Call {PHONE} about my claim")
    first.refresh_from_db()
    assert first.question == f"Call {PHONE} about my claim"
    assert first.redacted_question == "Call [PHONE] about my claim"

    process_message(chat=chat, question="And when will it be paid?")
    # The follow-up replays the first turn as the model saw it, without the number.
    assert PHONE not in _everything_sent(ai, search)
    history = ai.requests[1].body["messages"]
    assert {"role": "user", "content": "Call [PHONE] about my claim"} in history


def test_blocked_turns_are_left_out_of_later_prompts(servers):
    ai, _search = servers
    chat = _chat()
    process_message(chat=chat, question=f"My SIN is {SIN}")
    process_message(chat=chat, question="How do I renew my passport?")
    (request,) = ai.requests
    users = [m["content"] for m in request.body["messages"] if m["role"] == "user"]
    assert users == ["How do I renew my passport?"]
    assert Interaction.objects.filter(chat=chat).count() == 2


def _ai_check_responder(found: list[str]):
    def respond(system, messages):
        if system == AI_CHECK_SYSTEM:
            entries = [{"kind": "name", "text": value} for value in found]
            return json.dumps({"personal_information": entries})
        return compose_answer(system, messages)

    return respond


def test_ai_check_through_the_provider_redacts_what_patterns_missed(servers, settings):
    ai, search = servers
    settings.GUARD_AI_CHECK = True
    settings.GUARD_PII_ACTION = "redact"
    ai.responder = _ai_check_responder(["bob lee"])

    interaction = process_message(chat=_chat(), question=f"Does bob lee ({PHONE}) qualify?")

    check, answer = ai.requests
    assert check.body["messages"][0] == {"role": "system", "content": AI_CHECK_SYSTEM}
    assert check.body["messages"][1]["content"] == "Does bob lee ([PHONE]) qualify?"
    assert "bob lee" not in answer.raw and "bob lee" not in search.requests[0].raw
    assert interaction.guard_status == "redacted"
    assert interaction.guard_reasons == ["ai_personal", "phone"]
    assert interaction.question == "Does [PERSONAL] ([PHONE]) qualify?"


def test_ai_check_blocks_under_the_default_policy(servers, settings):
    ai, search = servers
    settings.GUARD_AI_CHECK = True
    ai.responder = _ai_check_responder(["bob lee"])

    interaction = process_message(chat=_chat(), question="Does bob lee qualify?")

    assert len(ai.requests) == 1  # the check only; no answer was asked for
    assert search.requests == []
    assert interaction.guard_status == "blocked"
    assert interaction.question == "Does [PERSONAL] qualify?"


def test_ai_check_retries_an_answer_that_does_not_parse(servers, settings):
    ai, _search = servers
    settings.GUARD_AI_CHECK = True
    replies = iter(["I think there is a name.", '{"personal_information": []}'])

    def respond(system, messages):
        return next(replies) if system == AI_CHECK_SYSTEM else compose_answer(system, messages)

    ai.responder = respond
    interaction = process_message(chat=_chat(), question="Does Bob qualify?")
    assert len(ai.requests) == 3  # two checks, one answer
    assert interaction.guard_status == "passed"


def test_ai_check_is_off_by_default_and_never_for_extractive(servers, settings, monkeypatch):
    ai, _search = servers
    process_message(chat=_chat(), question="Does Bob qualify?")
    assert len(ai.requests) == 1  # no check

    settings.GUARD_AI_CHECK = True
    called = []

    async def check(result, chat):
        called.append(chat)
        return result

    monkeypatch.setattr(pipeline, "_ai_check", check)
    chat = _chat(ai_provider="extractive", model="extractive", search_provider="none")
    process_message(chat=chat, question="Does Bob qualify?")
    assert called == []


def test_chat_page_shows_the_redacted_question_and_why(servers, settings, owner, owner_client):
    settings.GUARD_PII_ACTION = "redact"
    settings.GUARD_STORE_ORIGINAL = True
    chat = _chat(uploader=owner)
    url = chat.get_absolute_url()

    response = owner_client.post(f"{url}ask/", {"question": f"Call {PHONE} about my EI"})
    assert response.status_code == 302
    page = owner_client.get(url).content.decode()
    assert "Redacted by the guard before search and the AI model saw it (phone number)." in page
    assert "Sent as: <q>Call [PHONE] about my EI</q>" in page

    settings.GUARD_PII_ACTION = "block"
    settings.GUARD_STORE_ORIGINAL = False
    owner_client.post(f"{url}ask/", {"question": f"My SIN is {SIN}"})
    page = owner_client.get(url).content.decode()
    assert "Blocked by the guard: not sent to search or to the AI model" in page
    assert "social insurance number" in page
    assert SIN not in page


def test_chat_page_in_french(servers, owner, owner_client):
    chat = _chat(uploader=owner, page_language="fr")
    process_message(chat=chat, question=f"Mon NAS est {SIN}")
    owner_client.cookies["django_language"] = "fr"
    page = owner_client.get(chat.get_absolute_url(), HTTP_ACCEPT_LANGUAGE="fr")
    text = page.content.decode()
    assert "Bloquée par le filtre" in text
    assert "numéro d&#x27;assurance sociale" in text


# The disguises of issue 26: each (question, its value's characters, the redacted search
# query). In redact mode nothing of the value reaches either fake server.
DISGUISES = [
    ("My SIN is 046\u00a0454\u00a0286", "046454286", "My SIN is [SIN]"),
    ("SIN 046\u2013454\u2013286?", "046454286", "SIN [SIN]?"),
    ("SIN 046_454_286?", "046454286", "SIN [SIN]?"),
    ("SIN 046/454/286?", "046454286", "SIN [SIN]?"),
    ("Mon NAS ０４６ ４５４ ２８６", "046454286", "Mon NAS [SIN]"),
    ("SIN 0\u200b46 4\u200b54 286", "046454286", "SIN [SIN]"),
    ("call 613\u00a0555\u00a00123", "6135550123", "call [PHONE]"),
    ("call (613)\u2009555\u20140123", "6135550123", "call [PHONE]"),
    ("tél. ６１３-５５５-０１２３", "6135550123", "tél. [PHONE]"),
    ("mail jean.roy＠gmail.com", "jean.roy", "mail [EMAIL]"),
    ("mail jean\u200b.roy@gmail\u200b.com", "jean.roy", "mail [EMAIL]"),
    ("postal K1A\u200b0B1 office", "K1A0B1", "postal [POSTAL CODE] office"),
    ("code K1A\u00a00B1 office", "K1A0B1", "code [POSTAL CODE] office"),
    ("code ｋ１ａ ０ｂ１ office", "K1A0B1", "code [POSTAL CODE] office"),
    ("card 4111\u00a01111\u00a01111\u00a01111", "4111111111111111", "card [CARD NUMBER]"),
    ("card 4111_1111_1111_1111", "4111111111111111", "card [CARD NUMBER]"),
    # Issue 26, item 4, each disguise once more: thin and narrow no-break spaces, em and
    # figure dashes, Arabic-Indic digits, word joiners, soft hyphens, fullwidth forms.
    ("SIN 046\u2009454\u2009286 ok", "046454286", "SIN [SIN] ok"),
    ("NAS 046\u202f454\u202f286 svp", "046454286", "NAS [SIN] svp"),
    ("SIN 046\u2014454\u2014286 ok", "046454286", "SIN [SIN] ok"),
    ("SIN 046\u2012454\u2012286 ok", "046454286", "SIN [SIN] ok"),
    (
        "SIN \u0660\u0664\u0666 \u0664\u0665\u0664 \u0662\u0668\u0666 ok",
        "046454286",
        "SIN [SIN] ok",
    ),
    ("NAS 046\u2060454\u2060286 svp", "046454286", "NAS [SIN] svp"),
    ("SIN 046\u00ad454\u00ad286 ok", "046454286", "SIN [SIN] ok"),
    ("sin ０４６－４５４－２８６ ok", "046454286", "sin [SIN] ok"),
    ("phone 613/555/0123 ok", "6135550123", "phone [PHONE] ok"),
    ("phone 613_555_0123 ok", "6135550123", "phone [PHONE] ok"),
    (
        "call 6\u200b1\u200b3\u200b5\u200b5\u200b5\u200b0\u200b1\u200b2\u200b3 ok",
        "6135550123",
        "call [PHONE] ok",
    ),
    ("mail ｊｅａｎ．ｒｏｙ＠ｇｍａｉｌ．ｃｏｍ ok", "jean.roy", "mail [EMAIL] ok"),
    ("mail jean.roy\uff20gmail\uff0ecom ok", "jean.roy", "mail [EMAIL] ok"),
    ("code Ｈ３Ｂ １Ｋ９ ok", "H3B1K9", "code [POSTAL CODE] ok"),
    ("code K\u200b1\u200bA\u200b0\u200bB\u200b1 ok", "K1A0B1", "code [POSTAL CODE] ok"),
    ("card ４１１１ １１１１ １１１１ １１１１ ok", "4111111111111111", "card [CARD NUMBER] ok"),
    ("card 4111/1111/1111/1111 ok", "4111111111111111", "card [CARD NUMBER] ok"),
]

# Issue 26, items 1-3: whole values (no fragment beside the placeholder) and names, sites
# and handles; each with the pieces that must not be sent and the search query sent.
WHOLE_VALUES = [
    ("call me at (613) 555-0123 today", ("613", "555"), "call me at [PHONE] today"),
    ("My name is Maria de los Santos Garcia", ("Maria", "Santos", "Garcia"), "My name is [NAME]"),
    ("Je me nomme Karim Ben Youssef, merci", ("Karim", "Youssef"), "Je me nomme [NAME], merci"),
    ("Can Mohammed Al-Khatib get EI?", ("Mohammed", "Khatib"), "Can [NAME] get EI?"),
    ("Is the passport of Xu Jing ready?", ("Xu Jing",), "Is the passport of [NAME] ready?"),
    ("my wife Priya lost her job", ("Priya",), "my wife [NAME] lost her job"),
    (
        "Where is my refund? Thanks, John Smith",
        ("John", "Smith"),
        "Where is my refund? Thanks, [NAME]",
    ),
    (
        "I live at 45 Elgin Street, Apt 1203, Ottawa",
        ("45 Elgin", "Elgin", "1203"),
        "I live at [ADDRESS], Ottawa",
    ),
    (
        "J'habite au 3400 boulevard de Maisonneuve Ouest app. 1203",
        ("3400", "Maisonneuve", "Ouest", "1203"),
        "J'habite au [ADDRESS]",
    ),
    ("my site www.lucbergeron.ca has it", ("lucbergeron",), "my site [URL] has it"),
    (
        "follow me on instagram @marie.roy.qc",
        ("marie.roy", "roy.qc"),
        "follow me on instagram [URL]",
    ),
]


def _undisguised(sent: str) -> str:
    """What was sent, with every disguise undone and separators dropped (JSON escapes
    decoded first), so a value is found however it was written."""
    decoded = sent.encode().decode("unicode_escape", errors="ignore")
    decoded = unicodedata.normalize("NFKC", decoded)
    return re.sub(r"[\W_]", "", decoded, flags=re.UNICODE).upper()


@pytest.mark.parametrize(("question", "value", "query"), DISGUISES)
def test_disguised_values_never_reach_the_servers_in_redact_mode(
    servers, settings, question, value, query
):
    ai, search = servers
    settings.GUARD_PII_ACTION = "redact"

    interaction = process_message(chat=_chat(), question=question)

    assert interaction.guard_status == "redacted"
    assert search.requests[0].query["q"] == query
    assert value.upper().replace(".", "") not in _undisguised(_everything_sent(ai, search))


@pytest.mark.parametrize(("question", "pieces", "query"), WHOLE_VALUES)
def test_whole_values_and_names_never_reach_the_servers_in_redact_mode(
    servers, settings, question, pieces, query
):
    ai, search = servers
    settings.GUARD_PII_ACTION = "redact"

    interaction = process_message(chat=_chat(), question=question)

    assert interaction.guard_status == "redacted"
    assert search.requests[0].query["q"] == query
    sent = _everything_sent(ai, search)
    for piece in pieces:
        assert piece not in sent


# --- Every field that is sent: the referring URL and the history ------------------------

URL_EMAIL = "jo.roy@example.ca"
PERSONAL_URL = (
    "https://www.canada.ca/en/services/benefits/ei.html"
    f"?email=jo.roy%40example.ca&sin={SIN.replace(' ', '+')}&tel={PHONE}&lang=en"
)
REDACTED_URL = (
    "https://www.canada.ca/en/services/benefits/ei.html?email=[EMAIL]&sin=[SIN]&tel=[PHONE]&lang=en"
)
# Whole values only: short fragments ("046") may occur in a port or an id by chance.
URL_VALUES = (URL_EMAIL, "jo.roy", "046+454+286", "046 454 286", "454+286", PHONE, "555-0123")


def test_personal_values_in_the_url_never_reach_the_servers_in_redact_mode(
    servers, settings, caplog
):
    ai, search = servers
    settings.GUARD_PII_ACTION = "redact"
    caplog.set_level(logging.DEBUG)

    interaction = process_message(
        chat=_chat(chat_id="guard-url"),
        question="When is my EI paid?",
        referring_url=PERSONAL_URL,
    )

    assert len(ai.requests) == 1
    sent = _everything_sent(ai, search)
    for value in URL_VALUES:
        assert value not in sent
        assert value not in _our_log(caplog)
    system = ai.requests[0].body["messages"][0]["content"]
    assert f"The user asked from this page: {REDACTED_URL}" in system
    interaction.refresh_from_db()
    assert interaction.referring_url == REDACTED_URL
    assert interaction.guard_status == "redacted"
    assert interaction.guard_reasons == ["email", "phone", "sin"]
    assert interaction.guard_fields == ["url:email", "url:phone", "url:sin"]
    # The question itself passed: stored as asked, nothing beside it.
    assert interaction.question == "When is my EI paid?"
    assert interaction.redacted_question == ""
    assert "url redacted (email,phone,sin)" in _our_log(caplog)


DISGUISED_URL = (
    "https://forms.example.ca/u/Priya%20Natarajan/apply"
    "?courriel=jean.roy%EF%BC%A0gmail.com&nas=046%E2%80%93454%E2%80%93286"
    "&tel=%EF%BC%96%EF%BC%91%EF%BC%93+555+0123&name=jo&lang=fr"
)


def test_disguised_values_and_names_in_the_url_never_reach_the_servers(servers, settings):
    ai, search = servers
    settings.GUARD_PII_ACTION = "redact"

    interaction = process_message(
        chat=_chat(), question="Quand suis-je payé?", referring_url=DISGUISED_URL
    )

    sent = _undisguised(_everything_sent(ai, search))
    for value in ("PRIYA", "NATARAJAN", "JEANROY", "046454286", "6135550123", "NAMEJO"):
        assert value not in sent
    interaction.refresh_from_db()
    assert interaction.referring_url == (
        "https://forms.example.ca/u/[NAME]/apply"
        "?courriel=[EMAIL]&nas=[SIN]&tel=[PHONE]&name=[NAME]&lang=fr"
    )
    assert interaction.guard_fields == ["url:email", "url:name", "url:phone", "url:sin"]


def test_a_personal_url_blocks_the_turn_under_the_block_policy(servers):
    ai, search = servers

    interaction = process_message(
        chat=_chat(), question="When is my EI paid?", referring_url=PERSONAL_URL
    )

    assert ai.requests == [] and search.requests == []
    interaction.refresh_from_db()
    assert interaction.guard_status == "blocked"
    assert interaction.answer_type == "blocked" and interaction.model == "guard"
    assert interaction.guard_fields == ["url:email", "url:phone", "url:sin"]
    assert "e-mail address" in interaction.answer
    assert interaction.referring_url == REDACTED_URL  # no personal value is stored


def test_fields_name_the_question_and_the_url_apart(servers, settings):
    settings.GUARD_PII_ACTION = "redact"
    interaction = process_message(
        chat=_chat(), question=f"Call me at {PHONE}", referring_url=PERSONAL_URL
    )
    interaction.refresh_from_db()
    assert interaction.guard_fields == [
        "question:phone",
        "url:email",
        "url:phone",
        "url:sin",
    ]
    assert interaction.question == "Call me at [PHONE]"


def test_a_clean_url_passes_unchanged(servers):
    ai, _search = servers
    url = "https://www.canada.ca/en/services/benefits/ei.html?utm_source=x&lang=en#apply"

    interaction = process_message(chat=_chat(), question="When is EI paid?", referring_url=url)

    assert f"The user asked from this page: {url}" in ai.requests[0].body["messages"][0]["content"]
    interaction.refresh_from_db()
    assert interaction.guard_status == "passed"
    assert interaction.referring_url == url
    assert interaction.guard_reasons == [] and interaction.guard_fields == []


def test_store_original_keeps_the_url_but_sends_it_redacted(servers, settings):
    ai, search = servers
    settings.GUARD_PII_ACTION = "redact"
    settings.GUARD_STORE_ORIGINAL = True

    interaction = process_message(
        chat=_chat(), question="When is my EI paid?", referring_url=PERSONAL_URL
    )

    for value in URL_VALUES:
        assert value not in _everything_sent(ai, search)
    interaction.refresh_from_db()
    assert interaction.referring_url == PERSONAL_URL
    assert interaction.guard_fields == ["url:email", "url:phone", "url:sin"]


def test_history_replays_the_redacted_question_under_the_default_storage(servers, settings):
    ai, search = servers
    settings.GUARD_PII_ACTION = "redact"
    chat = _chat()

    process_message(chat=chat, question=f"Call {PHONE} or {URL_EMAIL} about my claim")
    process_message(chat=chat, question="And when will it be paid?")

    history = ai.requests[1].body["messages"]
    assert {"role": "user", "content": "Call [PHONE] or [EMAIL] about my claim"} in history
    assert PHONE not in _everything_sent(ai, search)
    assert URL_EMAIL not in _everything_sent(ai, search)
