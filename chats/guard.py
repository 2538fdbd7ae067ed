"""The guard: personal information and abuse found before a question leaves the server.

`screen(question, language=...)` is pure and deterministic (no database, no network): it
returns a `GuardResult` with the status (`passed`, `redacted`, `blocked`), the question
with every finding replaced by a placeholder (`[PHONE]`, `[EMAIL]`, ...), and the kinds
found (never the values). The policy comes from settings:

- `GUARD_PII_ACTION` (`block` | `redact`, default `block`) for personal information;
- `GUARD_ABUSE_ACTION` (`block` | `redact`, default `block`) for profanity, threats,
  prompt injection and scanner probes;
- `GUARD_PROFANITY_WORDS` / `GUARD_THREAT_WORDS` add to the built-in lists of
  `chats.guard_words`.

A question with any finding whose action is `block` is blocked; otherwise, with
findings, it is redacted. The fixed answer to a blocked question (`blocked_message`) and
the human labels of the kinds (`reason_labels`) are translated (English, French).

Detection is bilingual whatever the page language: a French page gets English questions
and the other way round. Detectors, cheapest first, each skipped when a cheap test says
it cannot match (no digit, no `@`, no `<`...), so an ordinary question costs a few
precompiled regex scans (about 0.05 ms; see the README, "The guard").

The optional second stage (`ai_check`, awaited on the provider loop) asks an AI model
for personal information the patterns missed; it takes the provider's `agenerate` as a
callable so the guard itself never touches the network.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, urlsplit

import phonenumbers
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from chats import guard_words
from chats.providers.base import Generation, GenerationRequest, Message

logger = logging.getLogger(__name__)

PASSED = "passed"
REDACTED = "redacted"
BLOCKED = "blocked"
STATUSES = (PASSED, REDACTED, BLOCKED)
BLOCK = "block"
REDACT = "redact"
ACTIONS = (BLOCK, REDACT)

# Kinds of findings. PII kinds follow GUARD_PII_ACTION, abuse kinds GUARD_ABUSE_ACTION.
PII_KINDS = (
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
    "ai_personal",  # found by the optional AI check
)
ABUSE_KINDS = ("profanity", "threat", "injection", "probe")
KINDS = PII_KINDS + ABUSE_KINDS

KIND_LABELS = {
    "phone": _("phone number"),
    "email": _("e-mail address"),
    "postal_code": _("postal code"),
    "sin": _("social insurance number"),
    "card": _("credit card number"),
    "id_number": _("identity, account or file number"),
    "ip_address": _("IP address"),
    "url": _("personal web address"),
    "address": _("street address"),
    "name": _("a person's name"),
    "ai_personal": _("personal information (AI check)"),
    "profanity": _("profanity"),
    "threat": _("threat"),
    "injection": _("instructions aimed at the AI model"),
    "probe": _("code or a security probe"),
}

# What replaces a finding in the redacted text: the same in both languages, so that
# search and the model see a marker rather than a hole, and never re-triggered by screen().
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


@dataclass(frozen=True)
class GuardResult:
    """What the guard decided. `text` is the redacted question (the question itself when
    nothing was found); `reasons` the sorted kinds found, never the values."""

    status: str
    text: str
    reasons: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return self.status == BLOCKED

    @property
    def changed(self) -> bool:
        return self.status != PASSED


@dataclass(frozen=True, order=True)
class Finding:
    start: int
    end: int
    kind: str = field(compare=False)


# --- Policy -----------------------------------------------------------------------------


def action_for(kind: str) -> str:
    setting = "GUARD_ABUSE_ACTION" if kind in ABUSE_KINDS else "GUARD_PII_ACTION"
    action = str(getattr(settings, setting, BLOCK)).strip().lower()
    return action if action in ACTIONS else BLOCK


def screen(question: str, *, language: str = "en") -> GuardResult:
    """Screen one question (pure, deterministic): see the module docstring.

    `language` is the page language; detection covers English and French either way.
    """
    findings = find(question)
    if not findings:
        return GuardResult(PASSED, question)
    kinds = tuple(sorted({finding.kind for finding in findings}))
    status = BLOCKED if any(action_for(kind) == BLOCK for kind in kinds) else REDACTED
    return GuardResult(status, redact(question, findings), kinds)


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


# --- Messages ---------------------------------------------------------------------------


def reason_labels(reasons: Iterable[str], language: str | None = None) -> list[str]:
    """Human labels of the kinds found, in `language` (default: the active one)."""
    with translation.override(language) if language else contextlib.nullcontext():
        return [str(KIND_LABELS.get(kind, kind)) for kind in reasons]


def blocked_message(reasons: Iterable[str], *, language: str) -> str:
    """The fixed answer to a blocked question, in the page language."""
    reasons = list(reasons)
    with translation.override(language):
        labels = ", ".join(reason_labels(reasons))
        if any(kind in PII_KINDS for kind in reasons):
            return gettext(
                "This question was not answered: it contains personal information "
                "(%(reasons)s). For your privacy it was not sent to search or to the AI "
                "model. Ask again without names, numbers, addresses or other personal "
                "details."
            ) % {"reasons": labels}
        return gettext(
            "This question was not answered: it contains %(reasons)s. It was not sent to "
            "search or to the AI model. Ask again in other words."
        ) % {"reasons": labels}


# --- Batch rows -------------------------------------------------------------------------


def redacted_row(row: dict, question_column: str | None, result: GuardResult | str) -> dict:
    """A copy of an uploaded row whose question cell holds the redacted text.

    Pure: the batch engine calls it when it records a screened row, so that with the
    default policy (GUARD_STORE_ORIGINAL off) no unredacted question remains once the row
    is answered. `result` is the guard's result or the redacted text itself. A passed
    result, or no question column in the row, returns the row unchanged.
    """
    if isinstance(result, GuardResult):
        if not result.changed:
            return row
        result = result.text
    if not question_column or question_column not in row:
        return row
    return {**row, question_column: result}


# --- Detectors --------------------------------------------------------------------------

_DIGIT = re.compile(r"\d")
_NO_DIGITS = str.maketrans("", "", "0123456789")

# E-mail addresses, also written out: "jean . tremblay @ gmail . com", "jean at gmail dot
# com", "jean arobase videotron point ca". The spelled-out forms need a known top-level
# domain at the end, so "meet at home" never matches.
_TLDS = r"(?:com|ca|org|net|edu|gov|info|biz|io|fr|be|ch|us|uk|co|me|qc\.ca|on\.ca|gc\.ca)"
_EMAIL = re.compile(r"[\w+-]+(?:\.[\w+-]+)*@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,24}\b")
_AT = r"(?:\s*@\s*|\s*[\(\[\{]\s*(?:at|arobase)\s*[\)\]\}]\s*|\s+(?:at|arobase|chez)\s+)"
_DOT = r"(?:\s*\.\s*|\s*[\(\[\{]\s*(?:dot|point)\s*[\)\]\}]\s*|\s+(?:dot|point)\s+)"
_SPACED_EMAIL = re.compile(
    rf"[\w+-]+(?:{_DOT}[\w+-]+)*{_AT}[\w-]+(?:{_DOT}[\w-]+)*?{_DOT}{_TLDS}\b", re.IGNORECASE
)
_SPACED_EMAIL_NEEDLES = ("@", " at ", "(at)", "[at]", "{at}", "arobase", " chez ")

# Web addresses; personal ones are judged by `_personal_url`.
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'()]+|\b[\w-]+\.(?:com|ca|org|net|me)/[^\s<>\"']*")
_SOCIAL_HOSTS = (
    "facebook.com",
    "fb.com",
    "instagram.com",
    "linkedin.com",
    "twitter.com",
    "x.com",
    "tiktok.com",
    "threads.net",
    "bsky.app",
    "github.com",
    "youtube.com",
    "reddit.com",
    "snapchat.com",
    "pinterest.com",
    "medium.com",
    "onlyfans.com",
)
_PERSONAL_QUERY_KEYS = frozenset(
    [
        "email",
        "e-mail",
        "mail",
        "courriel",
        "name",
        "nom",
        "firstname",
        "lastname",
        "prenom",
        "phone",
        "tel",
        "telephone",
        "token",
        "session",
        "sessionid",
        "sid",
        "password",
        "pwd",
        "key",
        "auth",
        "sin",
        "nas",
        "dob",
    ]
)

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_VERSION_BEFORE = re.compile(r"(?:version|\bv|\bver\.?)\s*$", re.IGNORECASE)

# Runs of digits with single spaces, dots or hyphens between them ("046 454 286",
# "4111-1111-1111-1111", "1.613.555"); letters on either side make it a code ("GST34-2",
# "123456789RT0001"), not a run.
_DIGIT_RUN = re.compile(r"(?<![\w])\d(?:[ .\-]?\d)+(?![\w])")
_CURRENCY_BEFORE = re.compile(r"[$€£¥]\s*$|\b(?:CAD|USD|EUR)\s*$", re.IGNORECASE)
_CURRENCY_AFTER = re.compile(
    r"^\s*(?:[$€£¥%]|\$|dollars?\b|cents?\b|CAD\b|USD\b|EUR\b|euros?\b|k\$|M\$)", re.IGNORECASE
)
# A run named as a product serial, model, part or form number is not personal.
_SERIAL_BEFORE = re.compile(
    r"(?:serial|model|part|product|catalog(?:ue)?|form|formulaire|s/n|"
    r"num[ée]ro\s+de\s+(?:s[ée]rie|mod[èe]le|pi[èe]ce|produit)|n[o°º]\s+de\s+s[ée]rie)"
    r"(?:\s+(?:number|no\.?|num(?:ber)?|#|code))?\s*[:#]?\s*$",
    re.IGNORECASE,
)
_NUMERIC = re.compile(r"\d[\d .\-]*")
_PHONE_CANDIDATE = re.compile(r"\+?\(?\d[\d ().\-/]{5,30}\d")
_LOCAL_PHONE = re.compile(r"(?<![\w.\-])\d{3}[.\-]\d{4}(?![\w]|[.\-]\d)")
_TOLL_FREE = frozenset({"800", "833", "844", "855", "866", "877", "888"})

# Canadian postal codes, also spaced out ("K1A 0B1", "k1a0b1", "K 1 A 0 B 1").
_POSTAL = re.compile(
    r"(?<![\w])[ABCEGHJ-NPRSTVXY]\s?\d\s?[ABCEGHJ-NPRSTV-Z][ \-]{0,2}\d\s?[ABCEGHJ-NPRSTV-Z]\s?\d"
    r"(?![\w])",
    re.IGNORECASE,
)

# A number introduced as an identity, account, file or reference number ("passport
# number: AB123456", "numéro de dossier 4521 887", "UCI 1234-5678").
_ID_CONTEXT = re.compile(
    r"\b(?:passport|passeport|account|compte|file|dossier|reference|référence|reference|ref|"
    r"client|case|cas|confirmation|application|demande|policy|police|member(?:ship)?|"
    r"membre|uci|iuc|student|étudiant|employee|employé|licen[cs]e|permis|health\s+card|"
    r"carte\s+santé|carte\s+d'assurance\s+maladie|ramq|ohip|tracking|suivi|invoice|facture|"
    r"customer|business|entreprise|id|identification|identifiant|pr\s+card|carte\s+rp|"
    r"citizenship\s+certificate|certificat\s+de\s+citoyenneté)\b"
    r"(?:\s+(?:number|num(?:ber)?\.?|no\.?|n[o°º]|#|numéro|code|id))?\s*(?:is|est|:|#|=)?\s*"
    r"(?P<value>(?:[A-Z]{1,3}[ \-]?)?\d[\d \-]{3,20}\d[A-Z]?)(?![\w])",
    re.IGNORECASE,
)
# Passport-like: two letters and six digits ("AB123456"); form numbers have fewer digits.
_PASSPORT = re.compile(r"(?<![\w])[A-Z]{2}\d{6}(?![\w])")

# Street addresses. English: number, 1-4 name words, street type ("24 Sussex Drive",
# "1200 rue Sainte-Catherine" is French below). Words like "hours" or "the" cannot be a
# street name, so "40 hours on the street" passes.
_NOT_NAME_WORD = (
    r"(?!(?:on|the|in|at|a|an|to|of|my|your|our|his|her|their|for|and|or|by|from|with|"
    r"per|is|was|are|were|each|every|more|less|than|hours?|days?|weeks?|months?|years?|"
    r"minutes?|times?|people|kids|children|cars?|lanes?|blocks?|km|miles?)\b)"
)
_STREET_TYPES_EN = (
    r"street|st|avenue|ave|road|rd|boulevard|blvd|drive|dr|lane|ln|crescent|cres|court|ct|"
    r"way|place|pl|terrace|circle|cir|highway|hwy|parkway|pkwy|square|sq|trail|trl|private|"
    r"gate|grove|heights|hts|mews"
)
_STREET_TYPES_FR = (
    r"rue|avenue|av|boulevard|boul|bd|chemin|ch|route|rang|place|allée|allee|impasse|"
    r"montée|montee|côte|promenade|croissant|terrasse|carré|quai|ruelle|voie"
)
_ADDRESS_EN = re.compile(
    rf"(?<![\w])\d{{1,6}}[A-Za-z]?(?:-\d{{1,6}})?,?\s+(?:{_NOT_NAME_WORD}"
    rf"[A-Za-zÀ-ÿ0-9][\w'’.\-]*\s+){{1,4}}(?i:{_STREET_TYPES_EN})\b\.?",
    re.IGNORECASE,
)
_ADDRESS_FR = re.compile(
    rf"(?<![\w])\d{{1,6}}[A-Za-z]?(?:-\d{{1,6}})?,?\s+(?:{_STREET_TYPES_FR})\.?\s+"
    rf"(?:(?:de\s+la|de|du|des|d'|d’|l'|l’)\s*)?[A-Za-zÀ-ÿ][\w'’\-]+",
    re.IGNORECASE,
)
_PO_BOX = re.compile(
    r"(?:\bP\.?\s?O\.?\s?Box|\bpost\s+office\s+box|\bcase\s+postale|\bC\.P\.|"
    r"\bbo[iî]te\s+postale)\s*(?:no\.?|#)?\s*\d{1,6}\b",
    re.IGNORECASE,
)
# Names after an introduction ("my name is Jane Doe", "je m'appelle Marie", "Nom : Roy").
_NAME_INTRO = re.compile(
    r"\b(?:my\s+name\s+is|my\s+name's|my\s+full\s+name\s+is|i\s+am\s+called|"
    r"je\s+m['’]\s*appelle|mon\s+nom\s+est|mon\s+nom\s+c['’]est|mon\s+nom\s+complet\s+est|"
    r"(?:full\s+|first\s+|last\s+|family\s+)?name\s*:|"
    r"(?:nom(?:\s+de\s+famille|\s+complet)?|prénom|prenom)\s*:)\s*",
    re.IGNORECASE,
)
# "I'm Sarah Connor", "je suis Julie Roy": only two capitalised words make a name here
# ("I am Canadian", "I'm in Ottawa" pass).
_SELF_INTRO = re.compile(
    r"\b(?:i['’]?m|i\s+am|je\s+suis|moi\s+c['’]est)\s+"
    r"(?P<name>[A-ZÀ-Ý][a-zà-ÿ'’\-]+\s+[A-ZÀ-Ý][a-zà-ÿ'’\-]+)",
    re.IGNORECASE,
)
_NOT_FIRST_NAME = frozenset(
    [
        "canadian",
        "indigenous",
        "first",
        "metis",
        "métis",
        "inuit",
        "québécois",
        "quebecois",
        "french",
        "english",
        "not",
        "new",
        "permanent",
    ]
)
_NAME_WORD = re.compile(r"[^\W\d_][\w'’\-]*")
# Words that follow "my name is" without being a name ("my name is misspelled").
_NOT_A_NAME = frozenset(
    [
        "not",
        "on",
        "in",
        "at",
        "the",
        "a",
        "an",
        "also",
        "still",
        "wrong",
        "incorrect",
        "misspelled",
        "spelled",
        "written",
        "different",
        "missing",
        "listed",
        "shown",
        "showing",
        "printed",
        "changed",
        "changing",
        "legally",
        "same",
        "too",
        "pas",
        "mal",
        "sur",
        "dans",
        "écrit",
        "ecrit",
        "différent",
        "different",
        "incorrect",
        "erroné",
        "errone",
        "absent",
        "inscrit",
        "changé",
        "change",
        "le",
        "la",
        "les",
        "un",
        "une",
        "aussi",
        "toujours",
    ]
)

# Paired XML-style tags (<system>...</system>) and chat-template markers.
_TAGS = re.compile(
    r"<\s*([A-Za-z][\w:\-]{0,40})\b[^<>]*>.*?<\s*/\s*\1\s*>", re.DOTALL | re.IGNORECASE
)
_TEMPLATE_MARKERS = re.compile(r"<\|[\w\-]+\|>|\[/?INST\]|<</?SYS>>")

_PROBES = re.compile(
    r"<\s*script\b|javascript\s*:|\bon(?:error|load|mouseover|focus)\s*=|"
    r"(?:\.\./){2,}|(?:\.\.\\){2,}|/etc/(?:passwd|shadow|hosts)\b|\bunion\s+(?:all\s+)?select\b|"
    r"'\s*or\s+'?\w+'?\s*=\s*'?\w+|;\s*drop\s+table\b|\$\{\s*jndi\s*:|\{\{\s*\d+\s*\*\s*\d+\s*\}\}|"
    r"<\?php|\bwp-(?:admin|login)(?:\.php)?\b|\bphpinfo\s*\(|%00|%3Cscript|\bcmd\.exe\b|"
    r"\b(?:sleep|benchmark|pg_sleep)\s*\(\s*\d+|\bxp_cmdshell\b|\binformation_schema\b|"
    r"\bselect\s+\*\s+from\b|/bin/(?:ba)?sh\b|\b(?:alert|confirm)\s*\(\s*['\"\d]|/\.env\b|"
    r"/\.git/|\bnmap\b|\bsqlmap\b",
    re.IGNORECASE,
)

# Word lists are matched on words, not with one big regex (an alternation of a hundred
# accent-blind phrases costs ~0.4 ms a question; a dictionary look-up per word ~0.01 ms).
# Text is folded character for character (lower case, accents and typographic
# apostrophes removed), so positions in the folded text are positions in the question.
_FOLD = str.maketrans(
    "ÀÂÄÁÃÅàâäáãåÈÉÊËèéêëÎÏÍÌîïíìÔÖÓÒÕôöóòõÙÛÜÚùûüúÇçŸÝÿýÑñ’‘",
    "AAAAAAaaaaaaEEEEeeeeIIIIiiiiOOOOOoooooUUUUuuuuCcYYyyNn''",
)
_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    """Lower case without accents, one character for one (positions are kept)."""
    folded = text.translate(_FOLD).lower()
    if len(folded) != len(text):  # a rare character whose lower case is longer ("İ")
        folded = "".join((char.translate(_FOLD).lower() or " ")[0] for char in text)
    return folded


@dataclass(frozen=True)
class _Entry:
    words: tuple[str, ...]
    wildcard: bool  # the last word may go on ("fuck*": "fucking")
    kind: str


@dataclass(frozen=True)
class _WordIndex:
    exact: dict[str, tuple[_Entry, ...]]  # the word -> one-word entries
    pairs: dict[tuple[str, str], tuple[_Entry, ...]]  # first two words -> longer entries
    first_words: frozenset[str]
    prefixes: tuple[str, ...]  # first words of wildcard single-word entries
    by_prefix: dict[str, tuple[_Entry, ...]]


def _entry(text: str, kind: str) -> _Entry | None:
    wildcard = text.strip().endswith("*")
    words = tuple(_WORD.findall(fold(text.strip().rstrip("*"))))
    return _Entry(words, wildcard, kind) if words else None


@functools.lru_cache(maxsize=16)
def _word_index(extra_threats: tuple[str, ...], extra_profanity: tuple[str, ...]) -> _WordIndex:
    """The index of the built-in lists plus the settings' words (cached per settings)."""
    exact: dict[str, list[_Entry]] = {}
    pairs: dict[tuple[str, str], list[_Entry]] = {}
    by_prefix: dict[str, list[_Entry]] = {}
    lists = (
        ("injection", guard_words.INJECTION_PHRASES),
        ("threat", guard_words.THREATS + extra_threats),
        ("profanity", guard_words.PROFANITY + extra_profanity),
    )
    for kind, entries in lists:
        for text in entries:
            entry = _entry(text, kind)
            if entry is None:
                continue
            if entry.wildcard and len(entry.words) == 1:
                by_prefix.setdefault(entry.words[0], []).append(entry)
            elif len(entry.words) == 1:
                exact.setdefault(entry.words[0], []).append(entry)
            else:
                pairs.setdefault(entry.words[:2], []).append(entry)
    return _WordIndex(
        exact={word: tuple(entries) for word, entries in exact.items()},
        pairs={pair: tuple(entries) for pair, entries in pairs.items()},
        first_words=frozenset([*exact, *(pair[0] for pair in pairs)]),
        prefixes=tuple(by_prefix),
        by_prefix={word: tuple(entries) for word, entries in by_prefix.items()},
    )


def _settings_words(name: str) -> tuple[str, ...]:
    value = getattr(settings, name, ()) or ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(word) for word in value if str(word).strip())


def _current_word_index() -> _WordIndex:
    return _word_index(
        _settings_words("GUARD_THREAT_WORDS"), _settings_words("GUARD_PROFANITY_WORDS")
    )


def _find_listed_words(folded: str, words: list[str], found: list[Finding]) -> None:
    """Profanity, threats and injection phrases: whole words, case and accents ignored.
    `words` are the words of `folded` (`_WORD.findall`)."""
    index = _current_word_index()
    prefixes = index.prefixes
    if index.first_words.isdisjoint(words) and not (
        prefixes and any(word.startswith(prefixes) for word in words)
    ):
        return  # the usual case: no word starts an entry
    tokens = [(match.group(0), match.start(), match.end()) for match in _WORD.finditer(folded)]
    words = [token[0] for token in tokens]
    count = len(words)
    first_words = index.first_words
    for position, word in enumerate(words):
        if word not in first_words and not (prefixes and word.startswith(prefixes)):
            continue
        candidates = index.exact.get(word, ())
        if position + 1 < count:
            candidates += index.pairs.get((word, words[position + 1]), ())
        if prefixes and word.startswith(prefixes):
            candidates += tuple(
                entry
                for prefix in prefixes
                if word.startswith(prefix)
                for entry in index.by_prefix[prefix]
            )
        for entry in candidates:
            last = position + len(entry.words) - 1
            if last >= count:
                continue
            head, tail = words[position:last], words[last]
            if head != list(entry.words[:-1]):
                continue
            if tail == entry.words[-1] or (entry.wildcard and tail.startswith(entry.words[-1])):
                found.append(Finding(tokens[position][1], tokens[last][2], entry.kind))


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _is_year(group: str) -> bool:
    return len(group) == 4 and 1900 <= int(group) <= 2099


def _date_or_years(raw: str) -> bool:
    """Dates (2024-03-01, 01/03/2024, 20240301) and years (2019-2020, 2019 2020 2021)."""
    groups = re.split(r"[ .\-]", raw)
    if all(_is_year(group) for group in groups):
        return True
    if len(groups) == 3:
        first, second, third = groups
        if _is_year(first) and len(second) <= 2 and len(third) <= 2:
            return 1 <= int(second) <= 12 and 1 <= int(third) <= 31
        if _is_year(third) and len(first) <= 2 and len(second) <= 2:
            return 1 <= int(first) <= 31 and 1 <= int(second) <= 31
        if _is_year(first) and len(second) == 2 and len(third) == 2:
            return True
    if len(groups) == 2 and _is_year(groups[0]) and len(groups[1]) == 2:  # 2019-20
        return True
    if len(groups) == 1 and len(raw) == 8 and raw[:2] in ("19", "20"):
        month, day = int(raw[4:6]), int(raw[6:8])
        return 1 <= month <= 12 and 1 <= day <= 31
    return False


def _decimal(raw: str) -> bool:
    """1234567.89: one dot, two decimals, and not three-digit groups (046.454.286)."""
    groups = raw.split(".")
    return len(groups) == 2 and len(groups[1]) <= 2 and " " not in raw and "-" not in raw


def _overlaps(start: int, end: int, taken: list[Finding]) -> bool:
    return any(start < other.end and other.start < end for other in taken)


def _personal_url(url: str) -> bool:
    candidate = url if "://" in url else "http://" + url
    try:
        parts = urlsplit(candidate)
        host = (parts.hostname or "").lower().removeprefix("www.")
    except ValueError:
        return False
    path = parts.path.strip("/")
    if parts.username or "/~" in parts.path or "@" in parts.path:
        return True
    if path and any(host == social or host.endswith("." + social) for social in _SOCIAL_HOSTS):
        return True
    for key, _value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower().replace("_", "") in _PERSONAL_QUERY_KEYS:
            return True
    return False


def _find_structured(text: str, folded: str, words: set[str], found: list[Finding]) -> None:
    """E-mail, web and IP addresses, cards, phones, SINs, postal codes, identity numbers.

    These are exclusive: the first detector to claim characters keeps them, so a card
    number is not also a phone number and a SIN.
    """
    taken: list[Finding] = []

    def claim(start: int, end: int, kind: str) -> None:
        if not _overlaps(start, end, taken):
            taken.append(Finding(start, end, kind))

    if "." in text and ("/" in text or "www" in text.lower()):
        for match in _URL.finditer(text):
            url = match.group(0).rstrip(".,;:!?")
            if _personal_url(url):
                claim(match.start(), match.start() + len(url), "url")
    if "@" in text:
        for match in _EMAIL.finditer(text):
            claim(match.start(), match.end(), "email")
    if any(needle in folded for needle in _SPACED_EMAIL_NEEDLES):
        for match in _SPACED_EMAIL.finditer(text):
            claim(match.start(), match.end(), "email")
    digits = len(text) - len(text.translate(_NO_DIGITS))
    if "." in text and digits >= 4:
        for match in _IPV4.finditer(text):
            octets = match.group(0).split(".")
            before = text[max(0, match.start() - 12) : match.start()]
            if all(int(octet) <= 255 for octet in octets) and not _VERSION_BEFORE.search(before):
                claim(match.start(), match.end(), "ip_address")
    if text.count(":") >= 2:
        for match in _IPV6.finditer(text):
            candidate = match.group(0)
            if sum(1 for group in candidate.split(":") if group) < 3:
                continue
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            claim(match.start(), match.end(), "ip_address")
    if digits >= 5:
        _find_numbers(text, digits, words, claim)
    if digits >= 3:
        for match in _POSTAL.finditer(text):
            claim(match.start(), match.end(), "postal_code")
    found.extend(finding for finding in taken if finding.kind)


def _phone_windows(text: str) -> list[tuple[int, str]]:
    """Pieces of `text` that may hold a phone number: a run of 7+ digits with phone
    punctuation, plus room for a prefix and an extension. The matcher of `phonenumbers`
    costs ~0.1 ms per candidate number it finds, so it only reads these pieces."""
    windows = []
    for match in _PHONE_CANDIDATE.finditer(text):
        raw = match.group(0)
        if len(raw) - len(raw.translate(_NO_DIGITS)) >= 7:
            start = max(0, match.start() - 3)
            windows.append((start, text[start : match.end() + 12]))
    return windows


def _find_numbers(
    text: str, digit_count: int, words: set[str], claim: Callable[[int, int, str], None]
) -> None:
    runs = []
    for match in _DIGIT_RUN.finditer(text):
        raw = match.group(0)
        digits = re.sub(r"\D", "", raw)
        if len(digits) < 5:
            continue
        before = text[max(0, match.start() - 40) : match.start()]
        after = text[match.end() : match.end() + 8]
        if _CURRENCY_BEFORE.search(before) or _CURRENCY_AFTER.search(after):
            continue
        if _date_or_years(raw) or _decimal(raw) or _SERIAL_BEFORE.search(before):
            continue
        runs.append((match.start(), match.end(), digits))
    # Cards first: a 16-digit card must not be read as a phone number and more.
    for start, end, digits in runs:
        if 13 <= len(digits) <= 19 and _luhn(digits):
            claim(start, end, "card")
    if digit_count >= 7:
        for window_start, window in _phone_windows(text):
            for match in phonenumbers.PhoneNumberMatcher(window, "CA"):
                national = str(match.number.national_number)
                # Toll-free lines belong to organisations, not people: the span is kept
                # from the other detectors (an 11-digit run) but is no finding.
                toll_free = match.number.country_code == 1 and national[:3] in _TOLL_FREE
                # "(613-555-0123)": the matcher takes the opening bracket along.
                bracket = match.raw_string[:1] == "(" and ")" not in match.raw_string
                start = window_start + match.start + bracket
                claim(start, window_start + match.end, "" if toll_free else "phone")
        for match in _LOCAL_PHONE.finditer(text):
            claim(match.start(), match.end(), "phone")
    for start, end, digits in runs:
        if len(digits) == 9:
            claim(start, end, "sin")
        elif len(digits) >= 8:
            claim(start, end, "id_number")
    id_matches = () if _ID_WORDS.isdisjoint(words) else _ID_CONTEXT.finditer(text)
    for match in id_matches:
        value = match.group("value").rstrip(" -")
        numeric = _NUMERIC.fullmatch(value)
        if numeric and _date_or_years(re.sub(r"\s+", " ", value)):
            continue  # "application 2024-2025", "case 2019 2020"
        if sum(char.isdigit() for char in value) >= 5:
            start = match.start("value")
            before = text[max(0, start - 40) : start]
            if not _SERIAL_BEFORE.search(before):
                claim(start, start + len(value), "id_number")
    for match in _PASSPORT.finditer(text):
        claim(match.start(), match.end(), "id_number")


def _find_addresses(text: str, words: set[str], found: list[Finding]) -> None:
    if _STREET_WORDS.isdisjoint(words):
        return
    for pattern in (_ADDRESS_EN, _ADDRESS_FR, _PO_BOX):
        for match in pattern.finditer(text):
            found.append(Finding(match.start(), match.end(), "address"))


def _find_names(text: str, found: list[Finding]) -> None:
    for intro in _NAME_INTRO.finditer(text):
        position = intro.end()
        end = None
        for count in range(4):
            word = _NAME_WORD.match(text, position)
            if word is None:
                break
            value = word.group(0)
            capitalised = value[0].isupper()
            if count == 0 and not capitalised and value.lower() in _NOT_A_NAME:
                break
            if count > 0 and not capitalised:
                break
            end = word.end()
            gap = re.match(r"[ \t]+", text[end:])
            if gap is None:
                break
            position = end + gap.end()
        if end is not None:
            found.append(Finding(intro.end(), end, "name"))
    for match in _SELF_INTRO.finditer(text):
        name = match.group("name")
        # IGNORECASE lets "i'm"/"Je" match; the name itself must be capitalised.
        words = name.split()
        possessive = name.endswith(("'s", "’s"))  # "I am Justin Trudeau's fan"
        if (
            all(word[0].isupper() for word in words)
            and words[0].lower() not in _NOT_FIRST_NAME
            and not possessive
        ):
            found.append(Finding(match.start("name"), match.end("name"), "name"))


# Words that must be in a question for the address patterns to run (folded).
_STREET_WORDS = frozenset(fold(f"{_STREET_TYPES_EN}|{_STREET_TYPES_FR}|box|postale|c").split("|"))
# Words that must be in a question for the "file number 123456" pattern to run.
_ID_WORDS = frozenset(
    fold(
        "passport passeport account compte file dossier reference ref client case cas "
        "confirmation application demande policy police member membership membre uci iuc "
        "student etudiant employee employe license licence permis card carte ramq ohip "
        "tracking suivi invoice facture customer business entreprise id identification "
        "identifiant pr certificate certificat"
    ).split()
)

_NAME_NEEDLES = ("name", "nom", "appel", "i'm", "im ", "i am", "je suis", "c'est", ":")
# Substrings one of which every probe pattern needs (checked on the folded text): the
# probe regex only runs when one is there. "$" alone or ";" alone would run it for amounts.
_PROBE_NEEDLES = (
    "<",
    "%00",
    "%3c",
    "{{",
    "${",
    "../",
    "..\\",
    "/etc/",
    "/bin/",
    "/.env",
    "/.git/",
    "union",
    "select",
    "drop",
    "javascript",
    "sleep",
    "benchmark",
    "nmap",
    "sqlmap",
    "xp_cmdshell",
    "onerror",
    "onload",
    "onmouseover",
    "onfocus",
    "alert",
    "confirm",
    "wp-",
    "phpinfo",
    "cmd.exe",
    "information_schema",
    "' or",
    "'or",
)


def find(text: str) -> list[Finding]:
    """Every finding in `text`, in no particular order (see `screen`)."""
    found: list[Finding] = []
    folded = fold(text)
    words = _WORD.findall(folded)
    word_set = set(words)
    _find_structured(text, folded, word_set, found)
    if _DIGIT.search(text):
        _find_addresses(text, word_set, found)
    if any(needle in folded for needle in _NAME_NEEDLES):
        _find_names(text, found)
    if "<" in text or "[" in text:
        for match in _TAGS.finditer(text):
            found.append(Finding(match.start(), match.end(), "injection"))
        for match in _TEMPLATE_MARKERS.finditer(text):
            found.append(Finding(match.start(), match.end(), "injection"))
    if any(needle in folded for needle in _PROBE_NEEDLES):
        for match in _PROBES.finditer(text):
            found.append(Finding(match.start(), match.end(), "probe"))
    _find_listed_words(folded, words, found)
    return found


# --- Optional second stage: an AI check -------------------------------------------------

AI_CHECK_SYSTEM = (
    "You screen a question before it is sent to a search engine and an AI assistant. "
    "Find personal information about a private person in it: names, contact details, "
    "addresses, identity, account or case numbers, dates of birth, health details tied "
    "to a person. Text in square brackets such as [PHONE] was already removed. Famous "
    "people, organisations, form numbers, amounts and places are not personal "
    "information. Reply with JSON only, no other text: "
    '{"personal_information": [{"kind": "<short kind>", "text": "<exact text copied '
    'from the question>"}]} with an empty list when there is none.'
)


def ai_check_request(text: str, *, language: str, model: str) -> GenerationRequest:
    """The request of the AI check: a short system prompt and the question alone."""
    return GenerationRequest(
        system=AI_CHECK_SYSTEM,
        messages=[Message(role="user", content=text)],
        question=text,
        language=language,
        model=model,
    )


def parse_ai_check(reply: str, text: str) -> list[str] | None:
    """The personal values the model found in `text`, or None when the reply is not
    exactly the JSON asked for (a code fence around it is tolerated) or names a value
    that is not in the question: the caller then asks again."""
    body = reply.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.DOTALL)
    if fenced:
        body = fenced.group(1)
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != {"personal_information"}:
        return None
    entries = data["personal_information"]
    if not isinstance(entries, list):
        return None
    values: list[str] = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            return None
        value = entry["text"].strip()
        if not value or value not in text:
            return None
        if re.fullmatch(r"\[[^\]]*\]", value):
            continue  # a placeholder of ours, already removed
        values.append(value)
    return values


def apply_ai_check(result: GuardResult, values: list[str]) -> GuardResult:
    """Merge the AI check's findings into `result` under the PII policy."""
    if not values:
        return result
    text = result.text
    findings = []
    for value in sorted(set(values), key=len, reverse=True):
        for match in re.finditer(re.escape(value), text):
            findings.append(Finding(match.start(), match.end(), "ai_personal"))
    reasons = tuple(sorted({*result.reasons, "ai_personal"}))
    blocked = result.blocked or action_for("ai_personal") == BLOCK
    return replace(
        result,
        status=BLOCKED if blocked else REDACTED,
        text=redact(text, findings),
        reasons=reasons,
    )


def _ai_check_attempts() -> int:
    return max(int(getattr(settings, "GUARD_AI_CHECK_ATTEMPTS", 2)), 1)


async def ai_check(
    result: GuardResult,
    *,
    agenerate: Callable[[GenerationRequest], Awaitable[Generation]],
    language: str,
    model: str,
) -> GuardResult:
    """Second stage: ask the model (`agenerate`, a provider's) for personal information
    the patterns missed, in the already redacted text.

    A blocked result is returned as is (nothing is sent). An answer that does not parse
    is asked again, up to GUARD_AI_CHECK_ATTEMPTS times; after that the deterministic
    result stands (logged, without the text). Provider errors propagate: the provider's
    own retry policy has already run.
    """
    if result.blocked:
        return result
    request = ai_check_request(result.text, language=language, model=model)
    for _attempt in range(_ai_check_attempts()):
        values = parse_ai_check((await agenerate(request)).text, result.text)
        if values is not None:
            return apply_ai_check(result, values)
    logger.warning("guard AI check: no valid answer after %s attempts", _ai_check_attempts())
    return result
