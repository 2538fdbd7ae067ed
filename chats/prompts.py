"""Prompt assembly and answer parsing for the chat pipeline.

The model is asked to answer in a small tag format:

    <answer>...</answer><citation-url>...</citation-url><citation-title>...</citation-title>

`parse_answer` is tolerant: models forget closing tags, swap `-` for `_`, wrap the
reply in a code fence, or ignore the format entirely (then the raw text is the answer and
the citation is the first search-result URL the text mentions, if any).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db.models import Q

from chats.models import URL_MAX_LENGTH, AnswerType
from chats.providers import uses_language_model
from chats.providers.base import Message
from chats.search.base import SearchResult

MAX_CITATION_URL = URL_MAX_LENGTH  # Interaction.citation_url max_length
MAX_CITATION_TITLE = 500  # Interaction.citation_title max_length
MAX_SNIPPET = 1200  # characters of each search result put in the prompt

LANGUAGE_NAMES = {"en": "English", "fr": "French (français)"}

ROLE = (
    "You are the question-answering assistant of a public service website. Answer the "
    "user's question accurately and briefly, using the search results below as your "
    "sources. If they do not contain the answer, say that you could not find it and "
    "suggest where the user could look; never invent facts, URLs, phone numbers or dates."
)

FORMAT = (
    "Reply in exactly this format and nothing else:\n"
    "<answer>your answer</answer>\n"
    "<citation-url>the URL of the one search result that best supports the answer</citation-url>\n"
    "<citation-title>the title of that search result</citation-title>\n"
    "Cite only a URL that appears in the search results. If no result supports the "
    "answer, leave both citation tags empty.\n"
    "Inside <answer>, wrap your whole answer in one of these tags when it applies:\n"
    "<not-gc>...</not-gc> when the question is not about this government's services "
    "(answer with a polite refusal);\n"
    "<pt-muni>...</pt-muni> when it belongs to a province, territory or municipality "
    "(say so and point the user there);\n"
    "<clarifying-question>...</clarifying-question> when you need to ask the user a "
    "question before you can answer."
)


def build_system_prompt(
    *,
    language: str,
    search_results: Sequence[SearchResult],
    referring_url: str = "",
    override_text: str = "",
) -> str:
    """The system prompt: role, page language, numbered search results, the citation
    format, then the uploader's override (appended, so it can refine everything above)."""
    language_name = LANGUAGE_NAMES.get(language, LANGUAGE_NAMES["en"])
    parts = [
        ROLE,
        f"The page language is {language_name}: write the answer in {language_name}, "
        "whatever the language of the question.",
    ]
    if search_results:
        lines = ["Search results:"]
        for number, result in enumerate(search_results, start=1):
            lines.append(f"[{number}] {_one_line(result.title) or '(untitled)'}")
            lines.append(f"URL: {result.url}")
            snippet = _one_line(result.snippet)[:MAX_SNIPPET]
            if snippet:
                lines.append(snippet)
            lines.append("")
        parts.append("\n".join(lines).rstrip())
    else:
        parts.append("Search results: none were found for this question.")
    if referring_url:
        parts.append(f"The user asked from this page: {referring_url}")
    parts.append(FORMAT)
    if override_text.strip():
        parts.append("Additional instructions:\n" + override_text.strip())
    return "\n\n".join(parts)


def build_messages(*, history: Iterable[tuple[str, str]], question: str) -> list[Message]:
    """Earlier turns as alternating user/assistant messages, then the question.

    Stored answers are the parsed text; an empty one becomes a placeholder because some
    providers (Anthropic) reject empty assistant messages."""
    messages: list[Message] = []
    for earlier_question, earlier_answer in history:
        messages.append(Message("user", earlier_question))
        messages.append(Message("assistant", earlier_answer or "(no answer)"))
    messages.append(Message("user", question))
    return messages


@dataclass(frozen=True)
class ParsedAnswer:
    answer: str
    citation_url: str = ""
    citation_title: str = ""
    answer_type: str = AnswerType.NORMAL


def _tag_pattern(name: str) -> re.Pattern[str]:
    # `citation-url`, `citation_url` and `citation url` are all accepted; the content ends
    # at the closing tag, at the next opening tag of ours, or at the end of the text (a
    # model cut off by max_tokens leaves tags open).
    name_re = name.replace("-", r"[-_ ]?")
    return re.compile(
        rf"<\s*{name_re}\s*>(.*?)(?:<\s*/\s*{name_re}\s*>|(?=<\s*(?:answer|citation)[-_ ]?)|\Z)",
        re.IGNORECASE | re.DOTALL,
    )


_ANSWER = _tag_pattern("answer")
_CITATION_URL = _tag_pattern("citation-url")
_CITATION_TITLE = _tag_pattern("citation-title")
# The origin's answer-type tags, wrapped around the answer text (`<not-gc>…</not-gc>`).
TYPE_TAGS = {
    "not-gc": AnswerType.NOT_GC,
    "pt-muni": AnswerType.PT_MUNI,
    "clarifying-question": AnswerType.CLARIFYING,
}
_TYPE_BY_LETTERS = {code.replace("-", ""): kind for code, kind in TYPE_TAGS.items()}
_TYPE_NAMES = r"not[-_ ]?gc|pt[-_ ]?muni|clarifying[-_ ]?question"
_TYPE_TAG = re.compile(rf"<\s*/?\s*({_TYPE_NAMES})\s*>", re.IGNORECASE)
_ANY_TAG = re.compile(
    rf"<\s*/?\s*(?:answer|citation[-_ ]?(?:url|title)|{_TYPE_NAMES})\s*>", re.IGNORECASE
)
_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)
_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)


def parse_answer(
    text: str, search_results: Sequence[SearchResult] = (), *, language: str = "en"
) -> ParsedAnswer:
    """Split a model reply into answer, citation URL, title and answer type (see module
    docstring).

    The answer type is the first of the origin's type tags in the answer (`TYPE_TAGS`),
    else `not-found` for an empty answer or one in the not-found words of `language`
    (`is_not_found`), else `normal`.

    Only http(s) URLs are kept as citations: the URL is rendered as a link on the chat
    page, so `javascript:` or other schemes from a confused model are dropped."""
    text = text or ""
    fenced = _FENCE.match(text)
    if fenced and _ANY_TAG.search(fenced.group(1)):
        text = fenced.group(1)

    answer_match = _ANSWER.search(text)
    if answer_match:
        answer = answer_match.group(1)
    else:
        # No <answer>: the reply minus any citation tags is the answer.
        answer = _CITATION_TITLE.sub("", _CITATION_URL.sub("", text))
    type_match = _TYPE_TAG.search(answer)
    answer = _ANY_TAG.sub("", answer).strip()
    if not answer and answer_match:
        # `<answer></answer>` with the text outside the tags: keep what the model said.
        outside = _CITATION_TITLE.sub("", _CITATION_URL.sub("", _ANSWER.sub("", text)))
        answer = _ANY_TAG.sub("", outside).strip()

    url_match = _CITATION_URL.search(text)
    citation_url = _clean_url(url_match.group(1)) if url_match else ""
    if not url_match:
        citation_url = _first_result_url_in(answer, search_results)
    title_match = _CITATION_TITLE.search(text)
    citation_title = _one_line(html.unescape(title_match.group(1))) if title_match else ""
    if citation_url and not citation_title:
        citation_title = _title_for(citation_url, search_results)
    if not citation_url:
        citation_title = ""
    if type_match:
        answer_type = _TYPE_BY_LETTERS[re.sub(r"[-_ ]", "", type_match.group(1).lower())]
    else:
        answer_type = answer_type_of(answer, language)
    return ParsedAnswer(
        answer=answer,
        citation_url=citation_url[:MAX_CITATION_URL],
        citation_title=citation_title[:MAX_CITATION_TITLE],
        answer_type=answer_type,
    )


def _one_line(value: str) -> str:
    return " ".join((value or "").split())


def _clean_url(value: str) -> str:
    match = _URL.search(html.unescape(value or ""))
    if not match:
        return ""
    return match.group(0).rstrip(".,;:!?)]}")


def _normalise(url: str) -> str:
    return url.strip().rstrip("/").lower()


def _title_for(url: str, search_results: Sequence[SearchResult]) -> str:
    wanted = _normalise(url)
    for result in search_results:
        if _normalise(result.url) == wanted:
            return _one_line(result.title)
    return ""


def _first_result_url_in(text: str, search_results: Sequence[SearchResult]) -> str:
    """The first URL in `text` that is one of the search results (a model that ignored the
    format but still named its source)."""
    known = {_normalise(result.url): result.url for result in search_results}
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?)]}")
        if _normalise(url) in known:
            return known[_normalise(url)]
    return ""


class AnswerStreamFilter:
    """Turns the raw token stream (tags included) into the answer text as it grows, for
    showing to a person: `feed(token)` returns the new visible text (often "").

    The visible text is recomputed from everything received, with a tag that is still
    arriving held back, so "<ans" never flashes on screen. It only ever appends: if a later
    token changes the picture (chatter that turns out to precede `<answer>`), nothing more
    is shown and the stored, parsed answer is the reference.
    """

    def __init__(self) -> None:
        self.raw = ""
        self.shown = ""
        self._diverged = False

    def feed(self, token: str) -> str:
        self.raw += token
        if self._diverged:
            return ""
        visible = visible_answer(self.raw)
        if not visible.startswith(self.shown):
            self._diverged = True
            return ""
        new, self.shown = visible[len(self.shown) :], visible
        return new


def visible_answer(partial: str) -> str:
    """The answer part of a reply that may still be arriving (see AnswerStreamFilter)."""
    text = partial
    last_open = text.rfind("<")
    if last_open != -1 and ">" not in text[last_open:] and len(text) - last_open < 24:
        text = text[:last_open]  # maybe the start of one of our tags: wait for the rest
    opening = re.search(r"<\s*answer\s*>", text, re.IGNORECASE)
    if opening:
        body = text[opening.end() :]
    else:
        stripped = text.lstrip()
        if stripped.startswith("```") or "<answer>".startswith(stripped.lower()):
            return ""
        body = text
    end = re.search(r"<\s*/\s*answer\s*>|<\s*citation", body, re.IGNORECASE)
    if end:
        body = body[: end.start()]
    return _ANY_TAG.sub("", body).strip()


# --- "Not found" answers ----------------------------------------------------------------
#
# One definition, used by the pages (counts, filters) and by the evaluation's
# `answer_found` grader: an answer is "not found" when it is empty or says, in the words
# the extractive answerer uses or the words ROLE asks a model for ("say that you could
# not find it"), that the sources did not hold the answer. Phrases are lower case and
# matched as substrings of the lower-cased answer, in the page language and in English
# (models sometimes answer in English whatever they are told).

# The answer of the extractive answerer (chats.providers.extractive) when the sources do
# not hold one; its phrases below come first.
NOT_FOUND = {
    "en": "I could not find this in the documents searched.",
    "fr": "Je n'ai pas trouvé cette information dans les documents consultés.",
}


def _phrase(sentence: str) -> str:
    return sentence.lower().rstrip(".")


NOT_FOUND_PHRASES: dict[str, tuple[str, ...]] = {
    "en": (
        _phrase(NOT_FOUND["en"]),
        "i could not find",
        "i couldn't find",
        "i couldn’t find",
        "i was unable to find",
        "i did not find",
        "i didn't find",
        "could not find the answer",
        "could not find any information",
        "i cannot answer",
        "i can't answer",
        "i am unable to answer",
        "i'm unable to answer",
        "i don't have enough information",
        "i do not have enough information",
    ),
    "fr": (
        _phrase(NOT_FOUND["fr"]),
        "je n'ai pas trouvé",
        "je n’ai pas trouvé",
        "je n'ai trouvé aucune",
        "je n’ai trouvé aucune",
        "je ne trouve pas",
        "impossible de trouver",
        "je n'ai pas pu trouver",
        "je n’ai pas pu trouver",
        "je ne sais pas",
        "aucune information à ce sujet",
        "aucune information sur",
        "je ne peux pas répondre",
    ),
}


def not_found_phrases(language: str | None = None) -> tuple[str, ...]:
    """The phrases that mark a not-found answer in `language` (and English); all
    languages' when `language` is None (a query over batches of several languages)."""
    if language is None:
        return tuple(dict.fromkeys(p for phrases in NOT_FOUND_PHRASES.values() for p in phrases))
    own = NOT_FOUND_PHRASES.get(language, ())
    return tuple(dict.fromkeys((*own, *NOT_FOUND_PHRASES["en"])))


def is_not_found(answer: str, language: str = "en") -> bool:
    """Whether `answer` says the sources did not hold the answer (or is empty)."""
    text = " ".join((answer or "").split()).lower()
    if not text:
        return True
    return any(phrase in text for phrase in not_found_phrases(language))


def answer_type_of(answer: str, language: str | None = None) -> str:
    """The type of an answer without a type tag (a reply without one, old data):
    not-found or normal."""
    return AnswerType.NOT_FOUND if is_not_found(answer, language) else AnswerType.NORMAL


def not_found_q(field: str = "answer", language: str | None = None):
    """`is_not_found` as a database filter on the text field `field`, for counting and
    filtering rows in one query. Same phrases; case-insensitive like the Python test
    (SQLite folds ASCII case only: every phrase starts with an ASCII letter)."""
    condition = Q(**{field: ""})
    for phrase in not_found_phrases(language):
        condition |= Q(**{f"{field}__icontains": phrase})
    return condition


# --- Providers that use no prompt -------------------------------------------------------
#
# An answerer that is no language model (the extractive one composes its answer from the
# search results) reads no system prompt (so prompt overrides do not apply to it), and its
# "tokens" are word counts (there is no tokenizer without a model). Pages say so instead
# of implying otherwise.


def uses_prompt(ai_provider: str) -> bool:
    """Whether the AI provider reads the system prompt (and so prompt overrides)."""
    return uses_language_model(ai_provider)


def counts_words(ai_provider: str) -> bool:
    """Whether the provider's input/output "tokens" are word counts."""
    return not uses_language_model(ai_provider)
