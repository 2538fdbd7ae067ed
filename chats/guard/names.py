"""Names of private persons in a question (the guard's `name` kind).

`find_names(text, folded, words)` returns `Finding`s over `text` (already normalised by
the caller, `chats.guard.detectors.find`). A name is found by one of these cues:

1. an introduction, in English or French: "my name is", "my first/last name is", "Name:",
   "je m'appelle", "je me nomme", "je me présente", "mon (pré)nom est", "Nom :" (the
   words after it, over particles: "Jean de la Fontaine", "Omar al Rashid"); and two
   capitalised words after "I'm" / "je suis" / "moi c'est";
2. a family member or a title: "my son Liam", "ma fille Chloé", "Mr. Okafor", "Mme
   Tremblay", "Dr. Anjali Mehta";
3. a signature: "Thanks, John Smith" / "Cordialement,\\nPierre Gagnon" / "- Daniel K." at
   the end of the question;
4. no cue at all (and the question is not in Title Case): two or more capitalised words the first of which is a known first name
   ("Gurpreet Sandhu", "Mohammed Al-Khatib", "Stéphane Ouellet"), or a Chinese, Vietnamese
   or Korean surname followed by a known first name ("Xu Jing", "Tran Minh Quan").

Known first names are `data/first_names.txt` (about 80,000 names of 105 countries, from
the `names-dataset` package: see `bin/guard_names_from_dataset.py`), read once per
process at the first question that holds two capitalised words (about 20 ms).

What the origin's policy says to leave alone is data too, each list a file with its
source: `public_figures.txt` (prime ministers and governors general, current and past,
deceased public figures, famous people), `place_names.txt` (provinces and countries: "Regina Saskatchewan"),
`not_a_person_words.txt` (a name inside a
building, event, institution or nation name: "Terry Fox Run", "édifice Jean-Talon", "Cree
Nation"), `archival_words.txt` (a question about census, war or immigration records asks
about people of the past: no name is found by cues 2-4 in it).
"""

from __future__ import annotations

import functools
import re

from chats.guard import words as lists
from chats.guard.finding import Finding
from chats.guard.words import fold

_NAME_INTRO = re.compile(
    r"\b(?:my\s+name\s+is|my\s+name's|my\s+(?:full|first|last|middle|family|given)\s+name\s+is|"
    r"i\s+am\s+called|"
    r"je\s+m['’]\s*appelle|je\s+me\s+nomme|je\s+me\s+pr[ée]sente\s*:?|"
    r"mon\s+(?:pr[ée]nom|nom\s+de\s+famille)\s+est|"
    r"mon\s+nom\s+est|mon\s+nom\s+c['’]est|mon\s+nom\s+complet\s+est|"
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
_NAME_WORD = re.compile(r"[^\W\d_][\w'’\-]*")

# A capitalised word ("Al-Khatib", "O'Brien", "Côté", "Ka-Ho") or an initial ("B.").
_CAP = r"(?:[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ]+(?:['’][A-Za-zà-ÿ]+)?(?:-[A-ZÀ-Þa-zà-ÿ][a-zà-ÿ]+)*|[A-Z]\.)"


@functools.cache
def _particle() -> str:
    """The particles of names (data/name_particles.txt) as a regex alternation."""
    return rf"(?:{lists.alternation('name_particles')})"


@functools.cache
def _run() -> re.Pattern[str]:
    """Two or more capitalised words, with particles between them ("Maria de los Santos")."""
    return re.compile(rf"(?<![\w'’-]){_CAP}(?:[ \t]+(?:{_particle()}[ \t]+)*{_CAP})+")


@functools.cache
def _word_of_run() -> re.Pattern[str]:
    return re.compile(rf"{_CAP}|{_particle()}")


_RELATIVE = re.compile(
    r"\b(?i:(?:my|our|ma|mon|notre)\s+(?:(?:late|eldest|youngest|little|older|younger|ex-?)\s+)?"
    r"(?:son|daughter|wife|husband|partner|spouse|mother|father|mom|mum|dad|brother|sister|"
    r"child|kid|baby|grandson|granddaughter|nephew|niece|fianc[ée]e?|boyfriend|girlfriend|"
    r"fils|fille|femme|[ée]pouse|[ée]poux|mari|conjoint|conjointe|m[èe]re|p[èe]re|fr[èe]re|"
    r"s[œo]e?ur|enfant|b[ée]b[ée]|petit-fils|petite-fille|neveu|ni[èe]ce|copain|copine|"
    r"chum|blonde))\s*,?\s+"
    rf"(?P<name>{_CAP}(?:[ \t]+{_CAP}){{0,2}})"
)


@functools.cache
def _title() -> re.Pattern[str]:
    return re.compile(
        r"(?<![\w])(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Mme|Mlle|Madame|Monsieur|Mademoiselle|M)\.?[ \t]+"
        rf"(?P<name>{_CAP}(?:[ \t]+(?:{_particle()}[ \t]+)*{_CAP}){{0,3}})"
    )


@functools.cache
def _signature() -> re.Pattern[str]:
    return re.compile(
        # The cue is case-blind, the name is not ("Merci beaucoup" is no signature).
        r"(?:(?i:thanks|thank\s+you|many\s+thanks|regards|best\s+regards|kind\s+regards|best|"
        r"sincerely|cheers|respectfully|merci(?:\s+beaucoup)?|cordialement|salutations|"
        r"bien\s+à\s+vous|amicalement)\s*[,!.:]?|(?:^|\s)[-–—]{1,2})\s*"
        rf"(?P<name>{_CAP}(?:[ \t]+(?:{_particle()}[ \t]+)*{_CAP}){{0,3}})\s*[.!]?\s*$"
    )


@functools.cache
def _public_figures() -> tuple[str, ...]:
    return tuple(fold(name) for name in lists.word_list("public_figures"))


_NAME_PART = re.compile(r"[\w'-]+")


def _padded(name: str) -> str:
    return " " + " ".join(_NAME_PART.findall(name)) + " "


def _is_public(folded_name: str) -> bool:
    """The name is a public figure's, or part of one at word boundaries ("Pierre Elliott
    Trudeau", "Trudeau"), or holds one ("Dr. Frederick Banting")."""
    name = _padded(folded_name)
    if len(name.strip()) < 3:
        return False
    for figure in _public_figures():
        padded = _padded(figure)
        if padded in name or (name in padded and (" " in name.strip() or padded.endswith(name))):
            return True
    return False


@functools.cache
def _street_types() -> frozenset[str]:
    return frozenset(fold(word) for word in lists.word_list("street_types_en"))


def _archival(words: set[str], folded: str) -> bool:
    archival = lists.word_set("archival_words")
    if not archival.isdisjoint(words):
        return True
    return any(" " in entry and entry in folded for entry in archival) or bool(
        re.search(r"\b1[789]\d\d\b|\b19[0-5]\d\b", folded)
    )


def _in_institution(text: str, start: int, end: int, run_words: list[str]) -> bool:
    """The name is part of a building, event, institution or nation name."""
    before_words = lists.word_set("not_a_person_words")
    words = before_words | _street_types()
    places = lists.word_set("place_names")  # inside the run only ("Regina Saskatchewan")
    if any(fold(word) in words or fold(word) in places for word in run_words):
        return True
    before = re.findall(r"[\w'’-]+", text[max(0, start - 24) : start])
    after = re.match(r"[ \t]*([\w'’-]+)", text[end : end + 24])
    last_before = fold(before[-1]).split("'")[-1] if before else ""
    return last_before in before_words or bool(after and fold(after.group(1)) in words)


def _run_name(text: str, run: re.Match) -> tuple[int, int] | None:
    """The span of the private person's name in a run of capitalised words, if any."""
    first_names = lists.word_set("first_names")
    surnames = lists.word_set("east_asian_surnames")
    stop = lists.word_set("not_first_name")
    tokens = list(_word_of_run().finditer(run.group(0)))
    capitalised = [token for token in tokens if token.group(0)[0].isupper()]
    for index, token in enumerate(capitalised[:-1]):
        word = token.group(0).lower()
        following = capitalised[index + 1].group(0)
        following_folded = following.lower()
        if following_folded in stop or len(following) < 2:
            continue
        if word in stop:
            continue
        if (
            word in first_names
            or word.split("-")[0] in first_names
            or word in surnames
            and following_folded in first_names
        ):
            start = token.start()
        else:
            continue
        end = capitalised[-1].end()
        name = run.group(0)[start:end]
        if name.endswith(("'s", "’s")):
            end -= 2
        return run.start() + start, run.start() + end
    return None


def _intro_names(text: str, found: list[Finding]) -> None:
    particles = lists.word_set("name_particles")
    for intro in _NAME_INTRO.finditer(text):
        position = intro.end()
        end = None
        for count in range(6):
            word = _NAME_WORD.match(text, position)
            if word is None:
                break
            value = word.group(0)
            capitalised = value[0].isupper()
            if count == 0 and not capitalised and value.lower() in lists.word_set("not_a_name"):
                break
            if count > 0 and not capitalised:
                # A particle is part of the name only when a capitalised word follows
                # ("Jean de la Fontaine"); "Luc de Gatineau" is taken whole too, which
                # redacts a town along with a name rather than leave a surname behind.
                if value.lower() not in particles or end is None:
                    break
                nxt = _after_particles(text, word.end(), particles)
                if nxt is None:
                    break
                end = nxt.end()
                gap = re.match(r"[ \t]+", text[end:])
                if gap is None:
                    break
                position = end + gap.end()
                continue
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
            and words[0].lower() not in lists.word_set("not_first_name")
            and not possessive
            and not _is_public(fold(name))
        ):
            found.append(Finding(match.start("name"), match.end("name"), "name"))


def _after_particles(text: str, position: int, particles: frozenset[str]) -> re.Match | None:
    """The capitalised word after up to two more particles from `position`, if any."""
    for _ in range(3):
        gap = re.match(r"[ \t]+", text[position:])
        if gap is None:
            return None
        word = _NAME_WORD.match(text, position + gap.end())
        if word is None:
            return None
        if word.group(0)[0].isupper():
            return word
        if word.group(0).lower() not in particles:
            return None
        position = word.end()
    return None


_INTRO_NEEDLES = ("name", "nom", "appel", "i'm", "im ", "i am", "je suis", "c'est", ":", "presente")


_LONG_WORD = re.compile(r"[^\W\d_]{3,}")


def _title_case(text: str) -> bool:
    """Most words capitalised ("What Is The Grace Period For Taxes?"): capitals say
    nothing there, so no name is taken from them without a cue. The first word and known
    first names are not counted ("Can Gurpreet Sandhu get EI?" is not in Title Case)."""
    first_names = lists.word_set("first_names")
    words = [word for word in _LONG_WORD.findall(text)[1:] if word.lower() not in first_names]
    capitalised = sum(1 for word in words if word[0].isupper())
    return capitalised >= 2 and capitalised >= 0.7 * len(words)


def find_names(text: str, folded: str, words: set[str]) -> list[Finding]:
    """Names of private persons in `text` (normalised; `folded` and `words` are its folded
    text and words): see the module docstring."""
    found: list[Finding] = []
    if any(needle in folded for needle in _INTRO_NEEDLES):
        _intro_names(text, found)
    cued = [match for pattern in (_RELATIVE, _title()) for match in pattern.finditer(text)]
    # A signature ends the question: only its last characters are read.
    signature = _signature().search(text, max(0, len(text) - 80))
    runs = list(_run().finditer(text))
    if not (cued or signature or runs):
        return found
    archival = _archival(words, folded)
    for match in [*cued, *([signature] if signature else [])]:
        start, end = match.span("name")
        name = match.group("name")
        if archival or _is_public(fold(name)) or _in_institution(text, start, end, name.split()):
            continue
        if name.endswith(("'s", "’s")):
            end -= 2
        found.append(Finding(start, end, "name"))
    if archival or _title_case(text):
        return found
    for run in runs:
        span = _run_name(text, run)
        if span is None:
            continue
        start, end = span
        name = text[start:end]
        if _is_public(fold(name)) or _in_institution(text, start, end, run.group(0).split()):
            continue
        found.append(Finding(start, end, "name"))
    return found
