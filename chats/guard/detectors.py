"""The guard's detectors: where personal information and abuse are in a question.

`find(text)` returns every `Finding` (start, end, kind), in no particular order; the
policy (`chats.guard.policy`) decides what they mean and `chats.guard.redaction` replaces
them. Pure: no database, no network, no settings besides the word lists' additions.

Detection is bilingual whatever the page language: a French page gets English questions
and the other way round. Detectors run cheapest first, each skipped when a cheap test
says it cannot match (no digit, no `@`, no `<`...), so an ordinary question costs a few
precompiled regex scans (about 0.05 ms; see docs/providers-and-guard.md). Patterns built
from a word list (`data/`) are compiled at first use. Detectors read the text with its
disguises undone (`chats.guard.normalise`); findings are mapped back to the original.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import phonenumbers

from chats.guard import words as lists
from chats.guard.finding import Finding
from chats.guard.names import find_names
from chats.guard.normalise import normalise
from chats.guard.words import WORD, fold

_DIGIT = re.compile(r"\d")
_NO_DIGITS = str.maketrans("", "", "0123456789")

# E-mail addresses, also written out: "jean . tremblay @ gmail . com", "jean at gmail dot
# com", "jean arobase videotron point ca". The spelled-out forms need a known top-level
# domain at the end (data/tlds.txt), so "meet at home" never matches.
_EMAIL = re.compile(r"[\w+-]+(?:\.[\w+-]+)*@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,24}\b")
_AT = r"(?:\s*@\s*|\s*[\(\[\{]\s*(?:at|arobase)\s*[\)\]\}]\s*|\s+(?:at|arobase|chez)\s+)"
_DOT = r"(?:\s*\.\s*|\s*[\(\[\{]\s*(?:dot|point)\s*[\)\]\}]\s*|\s+(?:dot|point)\s+)"


@functools.cache
def _spaced_email() -> re.Pattern[str]:
    tlds = lists.alternation("tlds")
    return re.compile(
        rf"[\w+-]+(?:{_DOT}[\w+-]+)*{_AT}[\w-]+(?:{_DOT}[\w-]+)*?{_DOT}(?:{tlds})\b", re.IGNORECASE
    )


_SPACED_EMAIL_NEEDLES = ("@", " at ", "(at)", "[at]", "{at}", "arobase", " chez ")

# Web addresses; personal ones are judged by `_personal_url`.
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'()]+|\b[\w-]+\.(?:com|ca|org|net|me)/[^\s<>\"']*")

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
_PHONE_SHAPE = re.compile(
    r"(?<![\w.\-])(?:\+?1[ .\-]?)?(?:\(\d{3}\)\s?|\d{3}[ .\-])\d{3}[ .\-]\d{4}(?![\w]|[.\-]\d)"
)
_LOCAL_PHONE = re.compile(r"(?<![\w.\-])\d{3}[.\-]\d{4}(?![\w]|[.\-]\d)")

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
# street name, so "40 hours on the street" passes. The word lists are data files.


@functools.cache
def _address_patterns() -> tuple[re.Pattern[str], ...]:
    not_name_word = rf"(?!(?:{lists.alternation('not_street_name_words')})\b)"
    english = re.compile(
        rf"(?<![\w])\d{{1,6}}[A-Za-z]?(?:-\d{{1,6}})?,?\s+(?:{not_name_word}"
        rf"[A-Za-zÀ-ÿ0-9][\w'’.\-]*\s+){{1,4}}(?i:{lists.alternation('street_types_en')})\b\.?"
        r"(?:[ \t]+(?-i:North|South|East|West|NE|NW|SE|SW|N|S|E|W)\b\.?)?",
        re.IGNORECASE,
    )
    french = re.compile(
        rf"(?<![\w])\d{{1,6}}[A-Za-z]?(?:-\d{{1,6}})?,?\s+(?:{lists.alternation('street_types_fr')})"
        rf"\.?\s+(?:(?:de\s+la|de|du|des|d'|d’|l'|l’)\s*)?[A-Za-zÀ-ÿ][\w'’\-]+"
        # more of the name ("de Maisonneuve", "Saint-Denis") and a direction ("Ouest")
        r"(?-i:(?:[ \t]+(?:(?:de|du|des|la|le)[ \t]+|d['’]|l['’])?[A-ZÀ-Ý][\w'’\-]*){0,3})"
        r"(?:[ \t]+(?-i:Est|Ouest|Nord|Sud|E|O|N|S)\b\.?)?",
        re.IGNORECASE,
    )
    return english, french, _PO_BOX


@functools.cache
def _street_words() -> frozenset[str]:
    """Words one of which a question needs for the address patterns to run (folded)."""
    types = (*lists.word_list("street_types_en"), *lists.word_list("street_types_fr"))
    return frozenset(lists.fold("|".join([*types, "box", "postale", "c"])).split("|"))


_PO_BOX = re.compile(
    r"(?:\bP\.?\s?O\.?\s?Box|\bpost\s+office\s+box|\bcase\s+postale|\bC\.P\.|"
    r"\bbo[iî]te\s+postale)\s*(?:no\.?|#)?\s*\d{1,6}\b",
    re.IGNORECASE,
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


def _public_host(host: str) -> bool:
    """A government's or a well-known site (data/public_hosts.txt), never a person's."""
    return any(
        host == suffix or host.endswith("." + suffix) for suffix in lists.word_list("public_hosts")
    )


# Social handles ("@jsmith_88", "@marie.roy.qc"): an `@` that does not follow a word (an
# e-mail's `@` does, and e-mails are claimed first).
_HANDLE = re.compile(r"(?<![\w@.])@(?=[\w.]*[A-Za-z])\w(?:[\w.]{0,28}\w)?(?![\w@])")
_SOCIAL_BEFORE = re.compile(
    r"\b(?:instagram|insta|ig|twitter|x|tiktok|facebook|fb|threads|snapchat|snap|youtube|"
    r"bluesky|bsky|mastodon|linkedin|telegram|reddit|twitch|pinterest|handle|pseudo)\b"
    r"[^.!?\n@]{0,20}$",
    re.IGNORECASE,
)
# A web address with no scheme or path ("johnsmithphotography.ca", "www.lucbergeron.ca").
_DOMAIN = re.compile(
    r"(?<![\w@./-])(?:https?://)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?P<tld>[A-Za-z]{2,6})"
    r"(?:/[^\s<>\"']*)?(?![\w@])"
)


@functools.cache
def _my_site() -> re.Pattern[str]:
    """'my website', 'mon site', 'my blog'...: the writer's own site follows."""
    words = lists.alternation("personal_site_words").replace("\\ ", r"\s+")
    return re.compile(
        rf"\b(?:my|mon|ma|our|notre)\s+(?:own\s+|personal\s+)?(?:{words})\b", re.IGNORECASE
    )


@functools.cache
def _site_words() -> frozenset[str]:
    """Words one of which a question needs for `_own_sites` to run (folded)."""
    return frozenset(fold(" ".join(lists.word_list("personal_site_words"))).split())


def _own_sites(text: str, claim: Callable[[int, int, str], None]) -> None:
    """The web address within a few words after 'my website' and the like, unless it is a
    government's or a well-known site."""
    for cue in _my_site().finditer(text):
        window = text[cue.end() : cue.end() + 60]
        for match in _DOMAIN.finditer(window):
            url = match.group(0).rstrip(".,;:!?")
            host = urlsplit(url if "://" in url else "http://" + url).hostname or ""
            tld = match.group("tld").lower()
            if tld in lists.word_set("tlds") and not _public_host(host.removeprefix("www.")):
                start = cue.end() + match.start()
                claim(start, start + len(url), "url")
                break


def _personal_url(url: str) -> bool:
    candidate = url if "://" in url else "http://" + url
    try:
        parts = urlsplit(candidate)
        host = (parts.hostname or "").lower().removeprefix("www.")
    except ValueError:
        return False
    path = parts.path.strip("/")
    if _public_host(host):
        return False
    if parts.username or "/~" in parts.path or "@" in parts.path:
        return True
    first_segment = path.split("/")[0].lower()
    if (
        path
        and first_segment not in lists.word_set("social_non_profile_paths")
        and any(
            host == social or host.endswith("." + social)
            for social in lists.word_list("social_hosts")
        )
    ):
        return True
    for key, _value in parse_qsl(parts.query, keep_blank_values=True):
        if key.lower().replace("_", "") in lists.word_set("personal_query_keys"):
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
        for match in _HANDLE.finditer(text):
            # "on instagram @tomas.rivera.ca": a handle, not "instagram @ …" as an e-mail.
            if _SOCIAL_BEFORE.search(text[max(0, match.start() - 40) : match.start()]):
                claim(match.start(), match.end(), "url")
        for match in _EMAIL.finditer(text):
            claim(match.start(), match.end(), "email")
    if any(needle in folded for needle in _SPACED_EMAIL_NEEDLES):
        for match in _spaced_email().finditer(text):
            claim(match.start(), match.end(), "email")
    if "@" in text:
        for match in _HANDLE.finditer(text):
            claim(match.start(), match.end(), "url")
    if "." in text and not _site_words().isdisjoint(words):
        _own_sites(text, claim)
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


def _introduced_ids(text: str, words: set[str], claim: Callable[[int, int, str], None]) -> None:
    if lists.word_set("id_words").isdisjoint(words):
        return
    for match in _ID_CONTEXT.finditer(text):
        value = match.group("value").rstrip(" -")
        numeric = _NUMERIC.fullmatch(value)
        if numeric and _date_or_years(re.sub(r"\s+", " ", value)):
            continue  # "application 2024-2025", "case 2019 2020"
        if _PHONE_SHAPE.fullmatch(value):
            continue
        if sum(char.isdigit() for char in value) >= 5:
            start = match.start("value")
            before = text[max(0, start - 40) : start]
            if not _SERIAL_BEFORE.search(before):
                claim(start, start + len(value), "id_number")


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
    # A number introduced as a file, account or client number is one, even with ten
    # digits, unless it is written as a phone number ("file 613-555-0123" stays a phone).
    _introduced_ids(text, words, claim)
    if digit_count >= 7:
        for window_start, window in _phone_windows(text):
            for match in phonenumbers.PhoneNumberMatcher(window, "CA"):
                national = str(match.number.national_number)
                # Toll-free lines belong to organisations, not people: the span is kept
                # from the other detectors (an 11-digit run) but is no finding.
                toll_free = match.number.country_code == 1 and national[:3] in lists.word_set(
                    "toll_free_area_codes"
                )
                # "(613-555-0123)": the matcher takes the opening bracket along.
                bracket = match.raw_string[:1] == "(" and ")" not in match.raw_string
                start = window_start + match.start + bracket
                claim(start, window_start + match.end, "" if toll_free else "phone")
        # Ten digits in phone format that libphonenumber finds invalid (555-555-5555,
        # 123-456-7890) are still written as a phone number: labelled so, not an id.
        for match in _PHONE_SHAPE.finditer(text):
            claim(match.start(), match.end(), "phone")
        for match in _LOCAL_PHONE.finditer(text):
            claim(match.start(), match.end(), "phone")
    for start, end, digits in runs:
        if len(digits) == 9:
            claim(start, end, "sin")
        elif len(digits) >= 8:
            claim(start, end, "id_number")
    for match in _PASSPORT.finditer(text):
        claim(match.start(), match.end(), "id_number")


# The unit of an address, before it ("Unit 5, 123 Main Street", "app. 4 - 1200 rue ...")
# or after it ("123 Main Street, Apt 4"), is part of the value.
_UNIT_WORD = r"(?:apt|apartment|unit|suite|ste|app|appartement|unité|bureau|logement|#)"
_UNIT = rf"{_UNIT_WORD}\.?\s*#?\s*\w{{1,6}}"
# "Unit 5, 123 Main": the street pattern already starts at "5", so the unit word alone.
_UNIT_BEFORE = re.compile(rf"(?<![\w])(?i:{_UNIT_WORD})\.?\s*#?\s*(?:\w{{1,6}}\s*[,\-]?\s*)?$")
_UNIT_AFTER = re.compile(rf"^\s*,?\s*(?i:{_UNIT})(?![\w])")


def _find_addresses(text: str, words: set[str], found: list[Finding]) -> None:
    if _street_words().isdisjoint(words):
        return
    for pattern in _address_patterns():
        for match in pattern.finditer(text):
            start, end = match.start(), match.end()
            before = _UNIT_BEFORE.search(text[max(0, start - 30) : start])
            if before:
                start -= len(before.group(0))
            after = _UNIT_AFTER.match(text[end : end + 30])
            if after:
                end += after.end()
            found.append(Finding(start, end, "address"))


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
    """Every finding in `text`, in no particular order (see `screen`), over the characters
    as written: detection reads the text with its disguises undone (`normalise`)."""
    normalised = normalise(text)
    findings = _find(normalised.text)
    if normalised.starts is None:
        return findings
    return [
        Finding(*normalised.to_original(finding.start, finding.end), finding.kind)
        for finding in findings
    ]


def _find(text: str) -> list[Finding]:
    found: list[Finding] = []
    folded = fold(text)
    words = WORD.findall(folded)
    word_set = set(words)
    _find_structured(text, folded, word_set, found)
    if _DIGIT.search(text):
        _find_addresses(text, word_set, found)
    found.extend(find_names(text, folded, word_set))
    if "<" in text or "[" in text:
        for match in _TAGS.finditer(text):
            found.append(Finding(match.start(), match.end(), "injection"))
        for match in _TEMPLATE_MARKERS.finditer(text):
            found.append(Finding(match.start(), match.end(), "injection"))
    if any(needle in folded for needle in _PROBE_NEEDLES):
        for match in _PROBES.finditer(text):
            found.append(Finding(match.start(), match.end(), "probe"))
    found.extend(Finding(*span) for span in lists.find_listed_words(folded, words))
    return found
